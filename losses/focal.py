"""Focal loss (Lin et al., 2017) for segmentation: sigmoid per channel, or softmax for multiclass.

Sigmoid (binary, multilabel), per element with p = sigmoid(x):

    p_t = p t + (1 - p)(1 - t),    a_t = a t + (1 - a)(1 - t)
    l = a_t (1 - p_t) ** gamma * BCE(x, t)

(torchvision's ``sigmoid_focal_loss``; a_t = 1 when ``alpha`` is None). Softmax (multiclass), per
pixel with p = softmax(x):

    l = -sum_c a_c t_c (1 - p_c) ** gamma log p_c

which for a hard label y is -a_y (1 - p_y) ** gamma log p_y. smp's multiclass focal loss is
one-vs-rest sigmoid instead. ``mean`` divides by the valid weight: the number of valid elements,
or sum_i w_{y_i} with ``class_weights`` (as cross-entropy does); ``alpha`` is not normalised.
With gamma = 0 and alpha None it is BCE (sigmoid) or cross-entropy (softmax). Empty masks need
no special case (every pixel is scored against background).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_mode, check_reduction, class_weight_vector, constant
from ._focal import sigmoid_focal_sums
from ._layout import poisoned, prepare, sigmoid_target, spatial_view
from ._options import check_class_options, number, values
from ._precision import no_autocast
from ._reduce import mean0
from ._softmax import log_probs, reduce_image_sums, softmax_image_sums, softmax_terms
from .constants import BINARY_MODE, MULTICLASS_MODE


def _check_options(mode, gamma, alpha, classes, class_weights, name):
    """(gamma, alpha, classes, class_weights) checked.

    gamma >= 0; alpha in [0, 1] per value for the sigmoid modes (one value in binary mode), >= 0
    per class for softmax. A Python alpha comes back as a float or a tuple.
    """
    gamma = number(gamma, "gamma", name, 0.0)
    if alpha is not None and not (isinstance(alpha, torch.Tensor) and alpha.device.type != "cpu"):
        high = math.inf if mode == MULTICLASS_MODE else 1.0
        checked = values(alpha, "alpha", name, 0.0, high)
        if mode == BINARY_MODE and len(checked) != 1:
            raise ValueError(f"{name}: alpha has {len(checked)} values but mode='binary' has one channel")
        if not isinstance(alpha, torch.Tensor):
            alpha = checked[0] if isinstance(alpha, numbers.Real) else checked
    return (gamma, alpha, *check_class_options(mode, classes, class_weights, name))


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | torch.Tensor | None = None,
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    from_logits: bool = True,
) -> torch.Tensor:
    """Focal loss for dense segmentation (module docstring formulas).

    Args:
        logits: (N, C, *S) logits, any float dtype (reduced in float32); probabilities when
            ``from_logits`` is False.
        target: hard or soft target (see ``losses.constants``).
        mode: "binary"/"multilabel" (sigmoid) or "multiclass" (softmax).
        gamma: focusing exponent >= 0. Default 2.
        alpha: None (default, no balancing, as smp), a float in [0, 1] (sigmoid modes: weight of
            positives; torchvision uses 0.25), or one value per class (C,).
        per_image: average per image, then over images. Default False.
        classes: classes/channels that count. Default all.
        class_weights: (C,) weights, normalised in the mean like cross-entropy's.
        ignore_index: target value to leave out. Default None.
        reduction: "mean" (default), "sum", or "none": the element-wise map, (N, C, *S) for
            sigmoid modes and (N, *S) for multiclass.
        from_logits: False when the input already holds probabilities (after a sigmoid, or a
            softmax over C for multiclass); their logs are floored at -100, torch's convention
            in ``binary_cross_entropy``. Default True.

    Example:
        >>> focal_loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)), "multiclass",
        ...            alpha=[0.25, 1.0, 1.0])
    """
    name = "focal_loss"
    check_mode(mode, name)
    check_reduction(reduction, name)
    gamma, alpha, _, _ = _check_options(mode, gamma, alpha, classes, class_weights, name)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        c = p.x.shape[1]
        a = None
        if isinstance(alpha, float) and mode != MULTICLASS_MODE:
            a = alpha  # a Python number, used as one
        elif alpha is not None:
            if isinstance(alpha, torch.Tensor):
                a = alpha.detach().to(dtype=p.x.dtype, device=p.x.device).reshape(-1)
            else:
                a = constant(tuple(alpha) if isinstance(alpha, tuple) else (alpha,), p.x.device, p.x.dtype)
            if a.numel() not in (1, c) or (mode == MULTICLASS_MODE and a.numel() != c):
                need = f"{c} values (one per class)" if mode == MULTICLASS_MODE else f"1 or {c}"
                raise ValueError(f"{name}: alpha has {a.numel()} values, expected {need}")
        cw = class_weight_vector(classes, class_weights, c, p.x.device, p.x.dtype, name)
        if mode == MULTICLASS_MODE:
            if reduction != "none":
                num, den = softmax_image_sums(p, gamma, a, cw, 0.0, from_logits)
                return poisoned(reduce_image_sums(num, den, reduction, per_image), p)
            num, _ = softmax_terms(p, gamma, a, cw, 0.0, from_logits)
            return poisoned(num.reshape(num.shape[0], *p.spatial), p)
        t, w = sigmoid_target(p)
        if isinstance(a, torch.Tensor):
            a = a.view(1, -1, 1)  # (1, 1, 1) or (1, C, 1)
        if cw is not None:
            cwv = cw.view(1, -1, 1)
            w = cwv if w is None else w * cwv
        if not from_logits:
            loss = _probability_focal_map(p.x, t, a, gamma)
            num = loss if w is None else loss * w
            if reduction == "none":
                return poisoned(spatial_view(num, p), p)
            sums = num.sum(-1)
        elif reduction != "none":
            sums = sigmoid_focal_sums(p.x, t, w, a, gamma)
        if reduction != "none":
            if reduction == "sum":
                return poisoned(sums.sum(), p)
            n, c, m = p.x.shape
            count = torch.full_like(sums, float(m)) if w is None else w.expand(n, c, m).sum(-1)
            tiny = torch.finfo(sums.dtype).tiny
            if per_image:
                return poisoned(mean0(sums.sum(1) / count.sum(1).clamp_min(tiny)), p)
            return poisoned(sums.sum() / count.sum().clamp_min(tiny), p)
        loss = F.binary_cross_entropy_with_logits(p.x, t, reduction="none")
        if gamma:
            prob = torch.sigmoid(p.x)
            u = torch.addcmul(t, prob, 1 - 2 * t).clamp_min(0)
            loss = loss * u**gamma
        if a is not None:
            loss = loss * (t * (2 * a - 1) + (1 - a))
        num = loss if w is None else loss * w
        return poisoned(spatial_view(num, p), p)


def _probability_focal_map(prob, t, a, gamma):
    """a_t (1 - p_t) ** gamma BCE(p, t) per element for probabilities ``prob``, logs floored at -100."""
    loss = -(t * log_probs(prob) + (1 - t) * log_probs(1 - prob))
    if gamma:
        loss = loss * torch.addcmul(t, prob, 1 - 2 * t).clamp_min(0) ** gamma  # 1 - p_t
    if a is not None:
        loss = loss * (t * (2 * a - 1) + (1 - a))
    return loss


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`; stores its options.

    Example:
        >>> loss = FocalLoss("binary", gamma=2.0, alpha=0.25)
        >>> value = loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        reduction: str = "mean",
        from_logits: bool = True,
    ) -> None:
        super().__init__()
        check_mode(mode, "FocalLoss")
        check_reduction(reduction, "FocalLoss")
        self.mode = mode
        self.gamma, self.alpha, self.classes, self.class_weights = _check_options(
            mode, gamma, alpha, classes, class_weights, "FocalLoss"
        )
        self.per_image = per_image
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.from_logits = from_logits

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return focal_loss(
            logits,
            target,
            self.mode,
            self.gamma,
            self.alpha,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.reduction,
            self.from_logits,
        )
