"""Region losses: Tversky and its special cases Dice (alpha = beta = 0.5) and Jaccard (1, 1).

For every scope (the whole batch, or each image when ``per_image``) and class c:

    TP = I,  FP = Sp - I,  FN = St - I          (sums of ``losses._region``)
    T_c = (TP + s) / (TP + alpha * FP + beta * FN + s)
    L_c = (1 - T_c) ** gamma        (or -log(max(T_c, eps)) ** gamma when ``log_loss``)

with s = ``smooth``. Dice is T with alpha = beta = 0.5, i.e. (2 TP + 2 s) / (Sp + St + 2 s);
Jaccard (soft IoU) is T with alpha = beta = 1, i.e. (TP + s) / (Sp + St - TP + s). These are the
formulas of segmentation-models-pytorch, so ``smooth`` means the same number there.

Empty masks: a term whose target is empty in its scope (St == 0) scores L = 0 when smooth == 0
(its Dice would be 0 for any prediction and carry no gradient) and still counts in the class
average, as in smp. With smooth > 0 the formula scores it: T = s / (alpha * Sp + s), which is 1
for an empty prediction and falls as predicted area grows, so false positives on empty images are
penalised (smp zeroes these terms even with smooth > 0; segdet does not). A term whose
denominator is exactly 0 scores T = 1. Every pixel ignored, and an empty batch (N = 0), give
loss 0 with zero gradient. A NaN or infinite logit gives a NaN loss (never a silent 0), so a
trainer's NaN guard fires.

Options are checked when a loss is built (and on every functional call): smooth >= 0, alpha and
beta >= 0 and not both 0, gamma > 0, eps > 0, and in binary mode (one channel) ``classes`` only
[0] and ``class_weights`` one value.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_mode, check_reduction, class_weight_vector
from ._layout import poisoned, prepare
from ._options import check_class_options, number
from ._precision import no_autocast
from ._reduce import reduce_terms
from ._region import IDENTITY, SIGMOID, SOFTMAX, region_terms
from ._tversky import TverskyTerms
from .constants import MULTICLASS_MODE


def check_tversky_options(
    alpha: float, beta: float, gamma: float, smooth: float, eps: float, name: str
) -> tuple[float, float, float, float, float]:
    """The options as floats: alpha, beta >= 0 and not both 0, gamma > 0, smooth >= 0, eps > 0.

    alpha = beta = 0 makes T = 1 whatever the prediction, gamma = 0 makes every term 1: neither
    loss has a gradient.

    Raises:
        ValueError: naming the option, its value and its range.
    """
    alpha = number(alpha, "alpha", name, 0.0)
    beta = number(beta, "beta", name, 0.0)
    if alpha == beta == 0:
        raise ValueError(f"{name}: alpha = beta = 0 scores T = 1 for any prediction; give alpha + beta > 0")
    gamma = number(gamma, "gamma", name, 0.0, above=True)
    smooth = number(smooth, "smooth", name, 0.0)
    eps = number(eps, "eps", name, 0.0, above=True)
    return alpha, beta, gamma, smooth, eps


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    smooth: float = 0.0,
    log_loss: bool = False,
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    from_logits: bool = True,
    reduction: str = "mean",
    eps: float = 1e-7,
    _name: str = "tversky_loss",
) -> torch.Tensor:
    """Tversky loss (focal Tversky when ``gamma != 1``); see the module docstring for formulas.

    Args:
        logits: (N, C, *S) raw scores (probabilities if ``from_logits`` is False); any float
            dtype. The region sums accumulate in float64; the loss comes back in float32
            (float64 for float64 input).
        target: hard or soft target, shapes in ``losses.constants``.
        mode: "binary", "multiclass" (softmax) or "multilabel" (sigmoid per channel).
        alpha: weight of false positives. Default 0.5.
        beta: weight of false negatives. Default 0.5.
        gamma: exponent applied to each term, L_c = (1 - T_c) ** gamma. Default 1.
        smooth: s in the formula. Default 0.
        log_loss: use -log(T) instead of 1 - T. Default False.
        per_image: compute T per image and class, then average; default False sums the whole
            batch into one T per class.
        classes: only these class indices count in the mean/sum. Default all.
        class_weights: (C,) weights; mean = sum(w_c L_c) / sum(w_c). Default equal.
        ignore_index: target value left out of TP, Sp and St. Default None.
        from_logits: apply softmax/sigmoid first. Default True.
        reduction: "mean" (default), "sum" (sum of w_c L_c), or "none": the unweighted terms,
            (C,) or (N, C) when ``per_image``.
        eps: floor of T inside the log when ``log_loss``.

    Returns:
        A float32 (or float64) scalar, or the terms for ``reduction="none"``.

    Example:
        >>> logits = torch.randn(2, 3, 8, 8)
        >>> target = torch.randint(0, 3, (2, 8, 8))
        >>> loss = tversky_loss(logits, target, "multiclass", alpha=0.3, beta=0.7)
    """
    check_mode(mode, _name)
    check_reduction(reduction, _name)
    alpha, beta, gamma, smooth, eps = check_tversky_options(alpha, beta, gamma, smooth, eps, _name)
    check_class_options(mode, classes, class_weights, _name)
    return _tversky(
        logits,
        target,
        mode,
        alpha,
        beta,
        gamma,
        smooth,
        log_loss,
        per_image,
        classes,
        class_weights,
        ignore_index,
        from_logits,
        reduction,
        eps,
        _name,
    )


def _tversky(
    logits,
    target,
    mode,
    alpha,
    beta,
    gamma,
    smooth,
    log_loss,
    per_image,
    classes,
    class_weights,
    ignore_index,
    from_logits,
    reduction,
    eps,
    _name,
):
    """:func:`tversky_loss` on options already checked (the modules check theirs when built)."""
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, _name)
        if not from_logits:
            act = IDENTITY
        else:
            act = SOFTMAX if mode == MULTICLASS_MODE else SIGMOID
        terms = TverskyTerms(alpha, beta, gamma, smooth, log_loss, per_image, eps)
        loss = region_terms(p.x, p.t, p.idx, p.v, act, p.hard, p.v_mask, terms)
        weights = class_weight_vector(classes, class_weights, p.x.shape[1], p.x.device, loss.dtype, _name)
        return poisoned(reduce_terms(loss, weights, reduction).to(p.x.dtype), p)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, mode: str, **kwargs) -> torch.Tensor:
    """Dice loss, 1 - (2 TP + 2 s) / (Sp + St + 2 s) per class.

    :func:`tversky_loss` with alpha = beta = 0.5; it takes the same options apart from those two.

    Example:
        >>> dice_loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)), "binary")
    """
    return tversky_loss(logits, target, mode, alpha=0.5, beta=0.5, _name="dice_loss", **kwargs)


def jaccard_loss(logits: torch.Tensor, target: torch.Tensor, mode: str, **kwargs) -> torch.Tensor:
    """Soft IoU loss, 1 - (TP + s) / (Sp + St - TP + s) per class.

    :func:`tversky_loss` with alpha = beta = 1; it takes the same options apart from those two.

    Example:
        >>> jaccard_loss(torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8)), "multiclass")
    """
    return tversky_loss(logits, target, mode, alpha=1.0, beta=1.0, _name="jaccard_loss", **kwargs)


class _RegionLoss(nn.Module):
    def __init__(
        self,
        mode: str,
        smooth: float = 0.0,
        log_loss: bool = False,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        from_logits: bool = True,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_mode(mode, name)
        check_reduction(reduction, name)
        _, _, _, self.smooth, self.eps = check_tversky_options(0.5, 0.5, 1.0, smooth, eps, name)
        self.mode = mode
        self.log_loss = log_loss
        self.per_image = per_image
        self.classes, self.class_weights = check_class_options(mode, classes, class_weights, name)
        self.ignore_index = ignore_index
        self.from_logits = from_logits
        self.reduction = reduction

    def _loss(self, logits, target, alpha, beta, gamma):
        return _tversky(
            logits,
            target,
            self.mode,
            alpha,
            beta,
            gamma,
            self.smooth,
            self.log_loss,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.from_logits,
            self.reduction,
            self.eps,
            type(self).__name__,
        )


class DiceLoss(_RegionLoss):
    """Module form of :func:`dice_loss`; stores the options of :func:`tversky_loss`.

    Example:
        >>> loss = DiceLoss("multiclass", ignore_index=255)(torch.randn(2, 3, 8, 8),
        ...                                                 torch.randint(0, 3, (2, 8, 8)))
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Dice loss of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return self._loss(logits, target, 0.5, 0.5, 1.0)


class JaccardLoss(_RegionLoss):
    """Module form of :func:`jaccard_loss` (soft IoU); options of :func:`tversky_loss`.

    Example:
        >>> loss = JaccardLoss("binary")(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Jaccard loss of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return self._loss(logits, target, 1.0, 1.0, 1.0)


class TverskyLoss(_RegionLoss):
    """Module form of :func:`tversky_loss`; ``alpha`` weighs FP, ``beta`` FN, ``gamma`` focuses.

    Defaults alpha = beta = 0.5, gamma = 1 (Dice).

    Example:
        >>> loss = TverskyLoss("binary", alpha=0.3, beta=0.7, gamma=0.75)
        >>> value = loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 1, 8, 8)))
    """

    def __init__(
        self,
        mode: str,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        smooth: float = 0.0,
        log_loss: bool = False,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        from_logits: bool = True,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> None:
        super().__init__(
            mode, smooth, log_loss, per_image, classes, class_weights, ignore_index, from_logits, reduction, eps
        )
        self.alpha, self.beta, self.gamma, _, _ = check_tversky_options(alpha, beta, gamma, smooth, eps, "TverskyLoss")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Tversky loss of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return self._loss(logits, target, self.alpha, self.beta, self.gamma)
