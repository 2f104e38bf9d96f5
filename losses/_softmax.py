"""Per-pixel softmax losses (cross-entropy, softmax focal) as weighted numerator/denominator."""

from __future__ import annotations

import torch

from ._layout import Prepared
from ._reduce import mean0


def log_probs(prob: torch.Tensor) -> torch.Tensor:
    """Log of probabilities, floored at -100 as torch's ``binary_cross_entropy`` floors its logs.

    A probability of 0 then costs 100 nats and no gradient instead of an infinite loss.
    """
    return torch.log(prob).clamp_min(-100.0)


def _log_p(x: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return torch.log_softmax(x, dim=1) if from_logits else log_probs(x)


def softmax_terms(
    p: Prepared,
    gamma: float,
    alpha: torch.Tensor | None,
    cw: torch.Tensor | None,
    label_smoothing: float,
    from_logits: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(num, den), each (N, 1, P), for a softmax loss over the channel axis.

        num = -sum_c cw_c a_c t'_c (1 - p_c) ** gamma log p_c
        den =  sum_c cw_c t_c

    with t' = (1 - eps) t + eps * mass / C the smoothed target (mass = sum_c t_c, 1 for a hard
    label) and a = ``alpha`` (1 when None). For hard labels this is torch's cross_entropy: the
    mean divides by sum_i cw_{y_i}. ``den`` is None when every pixel has weight 1. With
    ``from_logits`` False, ``p.x`` holds the probabilities themselves (:func:`log_probs`).
    """
    n, c, _ = p.x.shape
    logp = _log_p(p.x, from_logits)
    if p.idx is not None:
        term, den = _label_term(logp, p.idx, gamma, alpha, cw)
        nll = -term
        if label_smoothing:
            smooth = -(logp if cw is None else logp * cw.view(1, -1, 1)).sum(1, keepdim=True)
            nll = (1 - label_smoothing) * nll + (label_smoothing / c) * smooth
        if p.v is not None:
            nll = nll * p.v
            den = p.v if den is None else den * p.v
        return nll, den
    t = p.t
    weight = 1.0 if cw is None else cw.view(1, -1, 1)
    if label_smoothing:
        mass = p.v if p.v is not None else t.sum(1, keepdim=True)
        ts = (1 - label_smoothing) * t + (label_smoothing / c) * mass
    else:
        ts = t
    term = -logp * ts
    if gamma:
        term = term * (-torch.expm1(logp)).clamp_min(0) ** gamma
    if alpha is not None:
        term = term * alpha.view(1, -1, 1)
    num = (term * weight).sum(1, keepdim=True)
    den = (t * weight).sum(1, keepdim=True)
    return num, den


def _label_term(
    logp: torch.Tensor,
    idx: torch.Tensor,
    gamma: float,
    alpha: torch.Tensor | None,
    cw: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(term, wy), each (N, 1, P), for hard labels y.

    term = cw_y a_y (1 - p_y) ** gamma log p_y and wy = cw_y (None without class weights).
    """
    lp = logp.gather(1, idx.unsqueeze(1))
    term = lp
    if gamma:
        term = term * (-torch.expm1(lp)).clamp_min(0) ** gamma
    if alpha is not None:
        term = term * alpha[idx].unsqueeze(1)
    wy = None
    if cw is not None:
        wy = cw[idx].unsqueeze(1)
        term = term * wy
    return term, wy


def softmax_image_sums(
    p: Prepared,
    gamma: float,
    alpha: torch.Tensor | None,
    cw: torch.Tensor | None,
    label_smoothing: float,
    from_logits: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image sums (num, den), each (N,), of :func:`softmax_terms`, for mean/sum reductions.

    For hard labels the smoothing term is reduced before it is combined, so no (N, 1, P) map of
    it is ever built.
    """
    n, c, m = p.x.shape
    if p.idx is None:
        num, den = softmax_terms(p, gamma, alpha, cw, label_smoothing, from_logits)
        return num.sum((1, 2)), den.sum((1, 2))
    logp = _log_p(p.x, from_logits)
    term, wy = _label_term(logp, p.idx, gamma, alpha, cw)
    v = p.v
    if v is None:
        num = -term.sum((1, 2))
    else:
        num = -torch.bmm(term, v.transpose(1, 2)).reshape(n)
    if label_smoothing:
        per_class = logp.sum(-1) if v is None else torch.bmm(logp, v.transpose(1, 2))[..., 0]
        if cw is not None:
            per_class = per_class * cw
        num = (1 - label_smoothing) * num - (label_smoothing / c) * per_class.sum(1)
    if wy is None:
        den = torch.full_like(num, float(m)) if v is None else v.sum((1, 2))
    else:
        den = (wy if v is None else wy * v).sum((1, 2))
    return num, den


def reduce_image_sums(num: torch.Tensor, den: torch.Tensor, reduction: str, per_image: bool) -> torch.Tensor:
    """Mean (over the batch, or per image then over images) or sum of per-image sums."""
    if reduction == "sum":
        return num.sum()
    tiny = torch.finfo(num.dtype).tiny
    if per_image:
        return mean0(num / den.clamp_min(tiny))
    return num.sum() / den.sum().clamp_min(tiny)
