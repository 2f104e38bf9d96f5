"""Matthews correlation coefficient loss (Abhishek & Hamarneh, 2021): 1 - MCC per class.

For every scope (the whole batch, or each image when ``per_image``) and class c, from the region
sums of :mod:`losses._region` and the number of valid pixels V:

    TP = I,  FP = Sp - I,  FN = St - I,  TN = V - Sp - St + I     (each clamped at 0)
    MCC = (TP' TN' - FP' FN') / sqrt((TP' + FP') (TP' + FN') (TN' + FP') (TN' + FN')),
    X' = X + eps,   L_c = 1 - MCC in [0, 2]

the formula of smp's ``MCCLoss`` (eps = 1e-5 there too). smp has it for binary only; here binary
and multilabel run a sigmoid per channel and multiclass a softmax, one class against the rest.
For hard targets TP = sum q t; soft targets use TP = sum min(q, t), so TN = sum min(1 - q, 1 - t)
and the loss is 0 exactly at q = t (smp multiplies, q t, whose optimum is not at q = t).

Degenerate terms: a class whose target is empty in its scope (or fills it) has MCC 0 / 0; the eps
terms decide it as in smp, so an empty target predicted empty scores about 0.5, and a confident
false positive more. A term without a valid pixel (every pixel ignored) scores 0 with zero
gradient, and a NaN or infinite logit gives NaN.
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
from ._sums import sum64
from .constants import MULTICLASS_MODE


class MCCTerms:
    """1 - MCC per term from the (N, C) region sums, with a hand-written backward.

    With the counts X in (TP, FP, FN, TN) (eps added), a = TP + FP, b = TP + FN, c = TN + FP,
    d = TN + FN, P = a b c d and M = (TP TN - FP FN) / sqrt(P):

        dM/dTP = TN / sqrt(P) - M/2 (1/a + 1/b),   dM/dFP = -FN / sqrt(P) - M/2 (1/a + 1/c)
        dM/dFN = -FP / sqrt(P) - M/2 (1/b + 1/d),  dM/dTN = TP / sqrt(P) - M/2 (1/c + 1/d)

    and dTP/dI = 1, dFP/dI = -1, dFN/dI = -1, dTN/dI = 1, dFP/dSp = 1, dTN/dSp = -1 where the
    clamps at 0 pass (the derivatives autograd takes of the same expressions).

    Args:
        count: (N, C) valid pixels per image and class, or None when all M pixels are valid.
        m: pixels per image.
        eps: added to each count.
        per_image: one term per image and class; else per class over the batch.
    """

    def __init__(self, count: torch.Tensor | None, m: int, eps: float, per_image: bool) -> None:
        self.count, self.m, self.eps, self.per_image = count, m, eps, per_image

    def forward(self, inter, sp, st):  # noqa: D102
        n = inter.shape[0]
        count = torch.full_like(st, float(self.m)) if self.count is None else self.count
        if not self.per_image:
            inter, sp, st, count = inter.sum(0), sp.sum(0), st.sum(0), count.sum(0)
        eps = self.eps
        fp_raw, fn_raw = sp - inter, st - inter
        tn_raw = count - sp - fn_raw
        tp = inter + eps
        fp, fn, tn = fp_raw.clamp_min(0) + eps, fn_raw.clamp_min(0) + eps, tn_raw.clamp_min(0) + eps
        a, b, c, d = tp + fp, tp + fn, tn + fp, tn + fn
        root = (a * b * c * d).sqrt()
        mcc = (tp * tn - fp * fn) / root
        keep = count > 0
        loss = torch.where(keep, 1 - mcc, 0.0)
        masks = (fp_raw >= 0, fn_raw >= 0, tn_raw >= 0)
        return loss, (n, tp, fp, fn, tn, a, b, c, d, root, mcc, keep, masks)

    def backward(self, saved, g):  # noqa: D102
        n, tp, fp, fn, tn, a, b, c, d, root, mcc, keep, (m_fp, m_fn, m_tn) = saved
        g = -(g * keep)  # dLoss/dM
        half = mcc / 2
        d_tp = tn / root - half * (1 / a + 1 / b)
        d_fp = (-fn / root - half * (1 / a + 1 / c)) * m_fp
        d_fn = (-fp / root - half * (1 / b + 1 / d)) * m_fn
        d_tn = (tp / root - half * (1 / c + 1 / d)) * m_tn
        g_inter = g * (d_tp - d_fp - d_fn + d_tn)
        g_sp = g * (d_fp - d_tn)
        if not self.per_image:
            g_inter, g_sp = g_inter.expand(n, -1), g_sp.expand(n, -1)
        return g_inter, g_sp


def mcc_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    per_image: bool = False,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    from_logits: bool = True,
    reduction: str = "mean",
    eps: float = 1e-5,
) -> torch.Tensor:
    """MCC loss, 1 - MCC per class (module docstring formula).

    Args:
        logits: (N, C, *S) logits (probabilities if ``from_logits`` is False), any float dtype;
            the sums accumulate in float64, the loss is float32 (float64 for float64 input).
        target: hard or soft target, shapes in ``losses.constants``.
        mode: "binary", "multilabel" (sigmoid per channel) or "multiclass" (softmax, one class
            against the rest).
        per_image: one MCC per image and class, then the mean; default False counts the whole
            batch (as smp).
        classes: only these classes count. Default all.
        class_weights: (C,) weights of the class mean. Default equal.
        ignore_index: target value left out of all four counts. Default None.
        from_logits: apply the sigmoid/softmax first. Default True.
        reduction: "mean" (default), "sum" (of w_c L_c) or "none": the terms, (C,) or (N, C).
        eps: added to TP, FP, FN and TN, > 0. Default 1e-5 (smp's).

    Returns:
        A scalar, or the terms for ``reduction="none"``.

    Example:
        >>> mcc_loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)), "binary")
    """
    name = "mcc_loss"
    check_mode(mode, name)
    check_reduction(reduction, name)
    eps = number(eps, "eps", name, 0.0, above=True)
    check_class_options(mode, classes, class_weights, name)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        if not from_logits:
            act = IDENTITY
        else:
            act = SOFTMAX if mode == MULTICLASS_MODE else SIGMOID
        n, c, m = p.x.shape
        count = None if p.v is None else sum64(p.v).expand(n, c)
        terms = MCCTerms(count, m, eps, per_image)
        loss = region_terms(p.x, p.t, p.idx, p.v, act, p.hard, p.v_mask, terms)
        weights = class_weight_vector(classes, class_weights, c, p.x.device, loss.dtype, name)
        return poisoned(reduce_terms(loss, weights, reduction).to(p.x.dtype), p)


class MCCLoss(nn.Module):
    """Module form of :func:`mcc_loss`; stores its options.

    Example:
        >>> loss = MCCLoss("binary", ignore_index=255)
        >>> value = loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str,
        per_image: bool = False,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        from_logits: bool = True,
        reduction: str = "mean",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_mode(mode, "MCCLoss")
        check_reduction(reduction, "MCCLoss")
        self.mode = mode
        self.per_image = per_image
        self.classes, self.class_weights = check_class_options(mode, classes, class_weights, "MCCLoss")
        self.ignore_index = ignore_index
        self.from_logits = from_logits
        self.reduction = reduction
        self.eps = number(eps, "eps", "MCCLoss", 0.0, above=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """1 - MCC of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return mcc_loss(
            logits,
            target,
            self.mode,
            self.per_image,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.from_logits,
            self.reduction,
            self.eps,
        )
