"""Cross-entropy over the channel axis (softmax) with hard or soft targets.

    l_i = -sum_c w_c t'_c log softmax(x_i)_c,     t' = (1 - eps) t + eps * m_i / C
    mean = sum_i l_i / sum_i sum_c w_c t_ic

with w = ``class_weights``, eps = ``label_smoothing`` and m_i = sum_c t_ic the pixel's labelled
mass (1 for a hard label, 0 for an ignored pixel). For hard labels this is exactly
``torch.nn.functional.cross_entropy`` (weights, ignore_index and label smoothing included): with
``ignore_index`` and smoothing together the mean divides by the valid pixels, torch's rule (smp's
``SoftCrossEntropyLoss`` divides by all pixels, ignored ones included). For
soft targets torch divides a weighted mean by the pixel count; segdet divides by the target's
weight, so a soft pixel counts with its mass: an all-zero probability vector (unlabelled in both
MixUp sources) is left out like an ignored pixel, and every pixel left out gives 0, not NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_mode, check_reduction, class_weight_vector
from ._layout import poisoned, prepare
from ._options import check_class_options, number
from ._precision import no_autocast
from ._softmax import reduce_image_sums, softmax_image_sums, softmax_terms
from .constants import MULTICLASS_MODE


def _check_multiclass(mode: str, name: str) -> None:
    check_mode(mode, name)
    if mode != MULTICLASS_MODE:
        raise ValueError(
            f"{name}: cross-entropy is a softmax loss and needs mode='multiclass', got "
            f"mode={mode!r}; use bce for binary or multilabel targets"
        )


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = MULTICLASS_MODE,
    label_smoothing: float = 0.0,
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax cross-entropy with hard indices or soft probabilities (module docstring formula).

    Args:
        logits: (N, C, *S) logits, any float dtype (reduced in float32).
        target: (N, *S) long class indices (may hold ``ignore_index``) or float (N, C, *S)
            probabilities.
        mode: must be "multiclass".
        label_smoothing: eps in [0, 1]. Default 0.
        per_image: average per image, then over images. Default False.
        classes: only pixels labelled with these classes count (the others get weight 0).
        class_weights: (C,) weights w_c. Default None.
        ignore_index: hard-target value to leave out. Default None.
        reduction: "mean" (default), "sum", or "none": the (N, *S) map of l_i.

    Example:
        >>> cross_entropy_loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """
    name = "cross_entropy_loss"
    _check_multiclass(mode, name)
    check_reduction(reduction, name)
    label_smoothing = number(label_smoothing, "label_smoothing", name, 0.0, 1.0)
    check_class_options(mode, classes, class_weights, name)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        cw = class_weight_vector(classes, class_weights, p.x.shape[1], p.x.device, p.x.dtype, name)
        if reduction != "none":
            num, den = softmax_image_sums(p, 0.0, None, cw, label_smoothing)
            return poisoned(reduce_image_sums(num, den, reduction, per_image), p)
        num, _ = softmax_terms(p, 0.0, None, cw, label_smoothing)
        return poisoned(num.reshape(num.shape[0], *p.spatial), p)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy_loss`; stores its options.

    Example:
        >>> loss = CrossEntropyLoss(ignore_index=255, label_smoothing=0.1)
        >>> value = loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str = MULTICLASS_MODE,
        label_smoothing: float = 0.0,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _check_multiclass(mode, "CrossEntropyLoss")
        check_reduction(reduction, "CrossEntropyLoss")
        self.mode = mode
        self.label_smoothing = number(label_smoothing, "label_smoothing", "CrossEntropyLoss", 0.0, 1.0)
        self.per_image = per_image
        self.classes, self.class_weights = check_class_options(mode, classes, class_weights, "CrossEntropyLoss")
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of (N, C, *S) logits against (N, *S) class indices or (N, C, *S) probabilities."""
        return cross_entropy_loss(
            logits,
            target,
            self.mode,
            self.label_smoothing,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.reduction,
        )
