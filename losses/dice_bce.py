"""Dice + BCE in one pass: one sigmoid, one sweep over the pixels, no autograd graph.

    L = dice_weight * Dice + bce_weight * BCE

Dice is :func:`losses.dice_loss` (binary/multilabel, same ``smooth``, ``per_image``, empty-mask
rule and class average) and BCE is :func:`losses.bce_loss` (mean over valid elements, same
``label_smoothing``); the sum equals calling the two separately, in less time and memory.

Label smoothing eps changes the BCE target only, t' = t (1 - eps) + eps / 2 (Dice keeps the
target as given). The fused pass sums the BCE of t; since the BCE with logits is linear in the
target, the BCE of t' is that sum plus eps * sum_j v_j (t_j - 1/2) x_j, added per image and class
in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_mode, class_weight_vector
from ._layout import poisoned, prepare, sigmoid_target
from ._options import check_class_options, number
from ._precision import no_autocast
from ._reduce import mean0, reduce_terms
from ._region import region_bce_terms
from ._sums import sum64
from ._tversky import TverskyTerms
from .constants import MULTICLASS_MODE


def dice_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "binary",
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
    smooth: float = 0.0,
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Fused ``dice_weight * dice_loss + bce_weight * bce_loss`` for sigmoid outputs.

    Args:
        logits: (N, C, *S) logits, any float dtype (sums accumulate in float64, the loss is
            float32, float64 for float64 input).
        target: hard or soft target for mode "binary" or "multilabel".
        mode: "binary" (default) or "multilabel"; multiclass segmentation combines "dice" and
            "ce" in :class:`losses.ComboLoss` instead.
        dice_weight: weight of the Dice term. Default 1.
        bce_weight: weight of the BCE term. Default 1.
        smooth: Dice smoothing s, Dice = (2 TP + 2 s) / (Sp + St + 2 s). Default 0.
        per_image: Dice per image and BCE mean per image, then averaged. Default False.
        classes: channels that count in both terms. Default all.
        class_weights: (C,) channel weights of both terms. Default equal.
        ignore_index: target value left out of both terms. Default None.
        label_smoothing: eps in [0, 1] of the BCE term, whose target becomes t (1 - eps) + eps / 2
            (torch's and Keras' convention for binary targets, as :func:`losses.bce_loss`); the
            Dice term is not smoothed. Default 0.

    Returns:
        A scalar (float32, float64 for float64 input), mean reduction.

    Example:
        >>> dice_bce_loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """
    name = "dice_bce_loss"
    check_mode(mode, name)
    if mode == MULTICLASS_MODE:
        raise ValueError(
            f"{name}: mode='multiclass' is not sigmoid-based; use ComboLoss({{'dice': 1, "
            "'ce': 1}}, 'multiclass') or mode='multilabel' with one-hot targets"
        )
    _check_options(mode, dice_weight, bce_weight, smooth, classes, class_weights, name)
    label_smoothing = number(label_smoothing, "label_smoothing", name, 0.0, 1.0)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        t, v = sigmoid_target(p)
        dice, bce = region_bce_terms(p.x, t, v, p.hard, TverskyTerms(0.5, 0.5, 1.0, smooth, False, per_image, 1e-7))
        if label_smoothing:  # BCE of t' = BCE of t + eps * sum v (t - 1/2) x (module docstring)
            shift = t - 0.5 if v is None else (t - 0.5) * v
            bce = bce + label_smoothing * sum64(shift * p.x)
        n, c, m = p.x.shape
        w = class_weight_vector(classes, class_weights, c, p.x.device, torch.float64, name)
        dice = reduce_terms(dice, w, "mean")
        count = torch.full_like(bce, float(m)) if v is None else sum64(v.expand(n, c, m))
        if w is not None:
            bce, count = bce * w, count * w
        tiny = torch.finfo(bce.dtype).tiny
        if per_image:
            bce_mean = mean0(bce.sum(1) / count.sum(1).clamp_min(tiny))
        else:
            bce_mean = bce.sum() / count.sum().clamp_min(tiny)
        return poisoned((dice_weight * dice + bce_weight * bce_mean).to(p.x.dtype), p)


def _check_options(mode, dice_weight, bce_weight, smooth, classes, class_weights, name):
    """(dice_weight, bce_weight, smooth, classes, class_weights) checked: weights and smooth >= 0."""
    dice_weight = number(dice_weight, "dice_weight", name, 0.0)
    bce_weight = number(bce_weight, "bce_weight", name, 0.0)
    smooth = number(smooth, "smooth", name, 0.0)
    return (dice_weight, bce_weight, smooth, *check_class_options(mode, classes, class_weights, name))


class DiceBCELoss(nn.Module):
    """Module form of :func:`dice_bce_loss`; stores its options.

    Example:
        >>> loss = DiceBCELoss("binary", ignore_index=255)
        >>> value = loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str = "binary",
        dice_weight: float = 1.0,
        bce_weight: float = 1.0,
        smooth: float = 0.0,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        check_mode(mode, "DiceBCELoss")
        if mode == MULTICLASS_MODE:
            raise ValueError(
                "DiceBCELoss: mode='multiclass' is not sigmoid-based; combine 'dice' and 'ce' in ComboLoss instead"
            )
        self.mode = mode
        self.dice_weight, self.bce_weight, self.smooth, self.classes, self.class_weights = _check_options(
            mode, dice_weight, bce_weight, smooth, classes, class_weights, "DiceBCELoss"
        )
        self.per_image = per_image
        self.ignore_index = ignore_index
        self.label_smoothing = number(label_smoothing, "label_smoothing", "DiceBCELoss", 0.0, 1.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice + BCE of (N, C, *S) logits against a binary or multilabel hard or soft target; a scalar."""
        return dice_bce_loss(
            logits,
            target,
            self.mode,
            self.dice_weight,
            self.bce_weight,
            self.smooth,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.label_smoothing,
        )
