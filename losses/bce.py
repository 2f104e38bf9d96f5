"""Binary cross-entropy with logits, plain and class-balanced (HED).

Per element, with x the logit and t the (smoothed) target:

    l = pw * t * softplus(-x) + (1 - t) * softplus(x)      (= -pw t log s(x) - (1-t) log(1-s(x)))

``mean`` divides by the number of valid elements (ignored elements are left out of numerator and
denominator; smp's SoftBCEWithLogitsLoss divides by all elements). Multiclass mode is one-vs-rest:
the class indices are one-hot encoded and every channel gets its own sigmoid. Empty masks need no
special case: an all-background target scores the plain BCE of every pixel against 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_mode, check_reduction, class_weight_vector, constant
from ._layout import poisoned, prepare, sigmoid_target, spatial_view
from ._options import check_class_options, number, values
from ._precision import no_autocast
from ._reduce import reduce_ratio
from .constants import BINARY_MODE


def _weights(p, t_weight, classes, class_weights, name):
    cw = class_weight_vector(classes, class_weights, p.x.shape[1], p.x.device, p.x.dtype, name)
    if cw is None:
        return t_weight
    cw = cw.view(1, -1, 1)
    return cw if t_weight is None else t_weight * cw


def _channel_vector(value, num_classes, ref, name, what):
    if isinstance(value, torch.Tensor):
        vec = value.detach().to(dtype=ref.dtype, device=ref.device).reshape(-1)
    else:
        vec = constant(values(value, what, name, 0.0), ref.device, ref.dtype)
    if vec.numel() not in (1, num_classes):
        raise ValueError(f"{name}: {what} has {vec.numel()} values; give one value or one per channel ({num_classes})")
    return vec.view(1, -1, 1)


def _check_bce_options(mode, pos_weight, label_smoothing, classes, class_weights, name):
    """pos_weight >= 0 (one value in binary mode), label_smoothing in [0, 1], the class options."""
    if pos_weight is not None:
        if isinstance(pos_weight, torch.Tensor) and pos_weight.device.type != "cpu":
            count = pos_weight.numel()  # values on the device are not read (that would wait for it)
        else:
            count = len(values(pos_weight, "pos_weight", name, 0.0))
        if mode == BINARY_MODE and count != 1:
            raise ValueError(f"{name}: pos_weight has {count} values but mode='binary' has one channel")
    label_smoothing = number(label_smoothing, "label_smoothing", name, 0.0, 1.0)
    return (label_smoothing, *check_class_options(mode, classes, class_weights, name))


def _check_beta(beta, name):
    if isinstance(beta, str):
        if beta not in ("image", "batch"):
            raise ValueError(f"{name}: beta={beta!r}; use 'image', 'batch' or a float in [0, 1]")
        return beta
    return number(beta, "beta", name, 0.0, 1.0)


def bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "binary",
    pos_weight: float | Sequence[float] | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary cross-entropy with logits, l = pw t softplus(-x) + (1 - t) softplus(x).

    Args:
        logits: (N, C, *S) logits, any float dtype (reduced in float32).
        target: hard or soft target (see ``losses.constants``).
        mode: "binary" (default), "multilabel", or "multiclass" (one-vs-rest on one-hot).
        pos_weight: pw, one value or one per channel (C,), applied along the channel axis (not
            the last axis, as torch's broadcasting would). Default None (1).
        label_smoothing: eps; the target becomes t (1 - eps) + eps / 2 (torch's convention for
            two classes; smp's ``smooth_factor=f`` is eps = 2 f). Default 0.
        per_image: average per image, then over images (differs only with ignored pixels or
            class weights). Default False.
        classes: channels that count. Default all.
        class_weights: (C,) per-channel weights w_c; mean = sum(w l) / sum(w). Default None.
        ignore_index: target value to leave out. Default None.
        reduction: "mean" (default), "sum", or "none": the (N, C, *S) map w * l, zero where
            ignored.

    Returns:
        Scalar (float32, float64 for float64 input), or the map for ``reduction="none"``.

    Example:
        >>> bce_loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)), pos_weight=3.0)
    """
    name = "bce_loss"
    check_mode(mode, name)
    check_reduction(reduction, name)
    _check_bce_options(mode, pos_weight, label_smoothing, classes, class_weights, name)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        t, w = sigmoid_target(p)
        if label_smoothing:
            t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
        pw = None
        if pos_weight is not None:
            pw = _channel_vector(pos_weight, p.x.shape[1], p.x, name, "pos_weight")
        w = _weights(p, w, classes, class_weights, name)
        if w is None and reduction == "mean" and p.x.numel():
            return poisoned(F.binary_cross_entropy_with_logits(p.x, t, pos_weight=pw), p)
        loss = F.binary_cross_entropy_with_logits(p.x, t, pos_weight=pw, reduction="none")
        num = loss if w is None else loss * w
        out = reduce_ratio(num, w, reduction, per_image)
        return poisoned(spatial_view(out, p) if reduction == "none" else out, p)


def balanced_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "binary",
    beta: str | float = "image",
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Class-balanced BCE of HED (Xie & Tu, 2015).

        l = beta * t' * softplus(-x) + (1 - beta) * (1 - t') * softplus(x)
        beta = |Y-| / |Y| = sum(1 - t) / sum(1)   over the valid elements
        t' = t (1 - eps) + eps / 2                 (label smoothing eps; beta reads the unsmoothed t)

    ``beta`` is a constant (no gradient flows through it). ``"image"`` computes it per image and
    channel, ``"batch"`` per channel over the batch, a float fixes it. A scope with no valid
    element uses beta = 0.5. HED sums the loss (``reduction="sum"``); ``mean`` divides by the
    number of valid elements so the value does not grow with the image size.

    Args:
        logits: (N, C, *S) logits.
        target: hard or soft target (see ``losses.constants``).
        mode: "binary" (default), "multilabel" or "multiclass" (one-vs-rest).
        beta: "image" (default), "batch", or a float in [0, 1].
        per_image: average per image, then over images (differs only with ignored pixels or
            class weights). Default False.
        classes: channels that count. Default all.
        class_weights: (C,) per-channel weights w_c; mean = sum(w l) / sum(w). Default None.
        ignore_index: target value to leave out. Default None.
        reduction: "mean" (default), "sum", or "none": the (N, C, *S) map w * l, zero where
            ignored.
        label_smoothing: eps in [0, 1], as in :func:`bce_loss`. Default 0.

    Returns:
        Scalar (float32, float64 for float64 input), or the map for ``reduction="none"``.

    Example:
        >>> balanced_bce_loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """
    name = "balanced_bce_loss"
    check_mode(mode, name)
    check_reduction(reduction, name)
    beta = _check_beta(beta, name)
    check_class_options(mode, classes, class_weights, name)
    label_smoothing = number(label_smoothing, "label_smoothing", name, 0.0, 1.0)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        t, v = sigmoid_target(p)
        if isinstance(beta, str):
            with torch.no_grad():
                dims = (-1,) if beta == "image" else (0, -1)
                valid = torch.ones_like(t) if v is None else v.expand_as(t)
                total = valid.sum(dims, keepdim=True)
                neg = ((1 - t) * valid).sum(dims, keepdim=True)
                b = torch.where(total > 0, neg / total.clamp_min(1e-12), 0.5)
        else:
            b = float(beta)
        if label_smoothing:
            t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing  # ignored elements: weight 0 below
        loss = b * t * F.softplus(-p.x) + (1 - b) * (1 - t) * F.softplus(p.x)
        w = _weights(p, v, classes, class_weights, name)
        num = loss if w is None else loss * w
        out = reduce_ratio(num, w, reduction, per_image)
        return poisoned(spatial_view(out, p) if reduction == "none" else out, p)


class BCELoss(nn.Module):
    """Module form of :func:`bce_loss` (with logits); stores its options.

    Example:
        >>> loss = BCELoss("binary", pos_weight=2.0, ignore_index=255)
        >>> value = loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str = "binary",
        pos_weight: float | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_mode(mode, "BCELoss")
        check_reduction(reduction, "BCELoss")
        self.mode = mode
        self.pos_weight = pos_weight
        self.label_smoothing, self.classes, self.class_weights = _check_bce_options(
            mode, pos_weight, label_smoothing, classes, class_weights, "BCELoss"
        )
        self.per_image = per_image
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return bce_loss(
            logits,
            target,
            self.mode,
            self.pos_weight,
            self.label_smoothing,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.reduction,
        )


class BalancedBCELoss(nn.Module):
    """Module form of :func:`balanced_bce_loss`; stores its options.

    Example:
        >>> loss = BalancedBCELoss("binary", beta="batch")
        >>> value = loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str = "binary",
        beta: str | float = "image",
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        check_mode(mode, "BalancedBCELoss")
        check_reduction(reduction, "BalancedBCELoss")
        self.mode = mode
        self.beta = _check_beta(beta, "BalancedBCELoss")
        self.per_image = per_image
        self.classes, self.class_weights = check_class_options(mode, classes, class_weights, "BalancedBCELoss")
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = number(label_smoothing, "label_smoothing", "BalancedBCELoss", 0.0, 1.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Balanced BCE of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return balanced_bce_loss(
            logits,
            target,
            self.mode,
            self.beta,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
        )
