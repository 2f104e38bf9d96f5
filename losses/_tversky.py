"""The Tversky terms of the region sums, with a hand-written backward.

For every term (a class, in the batch or in one image when ``per_image``):

    FP = max(Sp - I, 0),  FN = max(St - I, 0),  D = I + a FP + b FN + s
    T  = (I + s) / D      (T = 1 where D = 0: empty prediction and empty target)
    B  = 1 - T            (or -log(max(T, eps)) when ``log_loss``)
    L  = max(B, c) ** gamma,  c = 1e-12 for gamma < 1, else 0   (L = B when gamma = 1)
    L  = L * [St > 0]     when s = 0 (an empty target scores 0)

and backward, with g = dLoss/dL:

    dL/dB = gamma max(B, c) ** (gamma - 1) [B >= c] [St > 0 when s = 0]
    dB/dT = -1            (or -1/T [T >= eps] when ``log_loss``)
    dT/dI = (1 - T (1 - a [Sp - I >= 0] - b [St - I >= 0])) / D,   dT/dSp = -T a [Sp - I >= 0] / D

(zero where D = 0). These are the derivatives autograd would take of the same expressions, in
a dozen operations on (N, C) tensors instead of a recorded graph of thirty; the region sums'
autograd function (:mod:`losses._region`) runs both, so a region loss is one graph node: on a
small batch the graph cost as much as the pixels.
"""

from __future__ import annotations

import torch


def terms_forward(inter, sp, st, alpha, beta, gamma, smooth, log_loss, per_image, eps):
    """(L, saved): the terms (N, C), or (C,) for the batch scope, and what :func:`terms_backward` needs."""
    n = inter.shape[0]
    if not per_image:
        inter, sp, st = inter.sum(0), sp.sum(0), st.sum(0)
    fp_raw, fn_raw = sp - inter, st - inter
    den = inter + smooth
    num = den.clone() if smooth else inter
    den.add_(fp_raw.clamp_min(0), alpha=alpha).add_(fn_raw.clamp_min(0), alpha=beta)
    # den is 0 only for an empty prediction against an empty target (T = 1); a NaN sum (from
    # a NaN or infinite logit) stays NaN, so a trainer's NaN guard sees it.
    empty = den == 0
    score = num / den.masked_fill(empty, 1.0)
    score.masked_fill_(empty, 1.0)
    base = -torch.log(score.clamp_min(eps)) if log_loss else 1.0 - score
    loss = base
    if gamma != 1.0:
        loss = base.clamp_min(1e-12 if gamma < 1 else 0.0) ** gamma
    keep = None
    if smooth == 0:
        keep = st > 0
        loss = loss * keep
    return loss, (n, fp_raw, fn_raw, den, empty, score, base, keep)


def terms_backward(saved, g, alpha, beta, gamma, smooth, log_loss, per_image, eps):
    """(dLoss/dI, dLoss/dSp), each (N, C), from ``g`` = dLoss/dL (formulas in the module docstring)."""
    n, fp_raw, fn_raw, den, empty, score, base, keep = saved
    if keep is not None:
        g = g * keep
    if gamma != 1.0:
        floor = 1e-12 if gamma < 1 else 0.0
        g = g * (gamma * base.clamp_min(floor) ** (gamma - 1)) * (base >= floor)
    g_score = -g / score.clamp_min(eps) * (score >= eps) if log_loss else -g
    g_score = g_score.masked_fill(empty, 0.0) / den.masked_fill(empty, 1.0)  # dLoss/dT / D
    m_fp = (fp_raw >= 0).to(g_score.dtype)
    g_sp = g_score * score * m_fp * (-alpha)
    g_inter = g_score - g_score * score * (1 - alpha * m_fp - beta * (fn_raw >= 0))
    if not per_image:
        g_inter, g_sp = g_inter.expand(n, -1), g_sp.expand(n, -1)
    return g_inter, g_sp


class TverskyTerms:
    """The Tversky terms as :func:`losses._region.region_terms` applies them: forward and backward."""

    def __init__(self, alpha, beta, gamma, smooth, log_loss, per_image, eps) -> None:
        self.opts = (alpha, beta, gamma, smooth, log_loss, per_image, eps)

    def forward(self, inter, sp, st):  # noqa: D102
        return terms_forward(inter, sp, st, *self.opts)

    def backward(self, saved, g):  # noqa: D102
        return terms_backward(saved, g, *self.opts)
