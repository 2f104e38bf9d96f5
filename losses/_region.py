"""Per-image, per-class sums of the region losses (Dice, Jaccard, Tversky) in one pass.

``region_sums`` returns, for every image n and class c,

    I[n, c]  = sum_j min(q_j, t_j) = sum_j (q_j + t_j - |q_j - t_j|) / 2   (soft intersection)
    Sp[n, c] = sum_j q_j                                                   (predicted mass)
    St[n, c] = sum_j t_j                                                   (target mass)

with q = act(x) * v (the activated prediction times the validity weight) and t the target (zero
where ignored). For 0/1 targets min(q, t) = q t, so hard targets use the product (a dot product
per row); for soft targets the L1 form is the one whose minimum is at q == t. Hard multiclass
targets are never one-hot encoded: I is a gather of the target class's probability followed by a
scatter-add.

Every sum is float64 whatever the input dtype: dense sums through :func:`losses._sums.sum64`
(float32 blocks, float64 across them), the scatter of hard multiclass targets in float64, and
their counts St as exact integers. So I <= Sp and I <= St hold to float64 rounding at any number
of pixels, and a near-perfect prediction cannot score a negative loss. The gradient comes back
in the input's dtype.

The autograd function saves its inputs and the activation (backward needs nothing else), so a
loss call holds a few (N, C, P) temporaries, not a whole graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ._sums import blocks, total64

SIGMOID = "sigmoid"
SOFTMAX = "softmax"
IDENTITY = "identity"


def activate(x: torch.Tensor, act: str) -> torch.Tensor:
    if act == SIGMOID:
        return torch.sigmoid(x)
    if act == SOFTMAX:
        return torch.softmax(x, dim=1)
    return x


class _RegionSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t, idx, v, act, with_bce, hard, v_mask, terms):  # noqa: D102
        n, c, m = x.shape
        parts = []  # float32 block sums, totalled in float64 in one reduction at the end
        if with_bce:
            # one activation for both terms: log-sigmoid, then p = exp(log-sigmoid).
            ls = F.logsigmoid(x)
            p = ls.exp()
            # per element v ((1 - t) x - log s(x)), built in place of ls; t is 0 wherever v is.
            elem = ls.neg_().add_(x).addcmul_(t, x, value=-1.0)
            if v is not None:
                elem.mul_(v)
            parts.append(blocks(elem))
            del ls, elem
        else:
            p = activate(x, act)
        # q = p * v; with a 0/1 mask and t = 0 where v = 0, p can stand in for q in I.
        q = p if v is None or v_mask else p * v
        parts.append(blocks(p if v is None else (p * v if v_mask else q)))  # Sp
        if idx is not None:
            # I: a float64 scatter of the target class's probability; St: exact counts.
            picked = q.gather(1, idx.unsqueeze(1)).squeeze(1).to(torch.float64)
            inter = torch.zeros(n, c, dtype=torch.float64, device=x.device)
            if v is None:
                ones = torch.ones((), dtype=torch.int64, device=x.device).expand(n, m)
                st = torch.zeros(n, c, dtype=torch.int64, device=x.device).scatter_add_(1, idx, ones)
                st = st.to(torch.float64)
            else:
                valid = v.squeeze(1).to(torch.float64)
                picked.mul_(valid)
                st = torch.zeros(n, c, dtype=torch.float64, device=x.device).scatter_add_(1, idx, valid)
            inter.scatter_add_(1, idx, picked)
            del picked
            *bce, sp = total64(*parts).unbind(0)
        else:
            parts.append(blocks(q * t if hard else torch.minimum(q, t)))
            parts.append(blocks(t))
            *bce, sp, inter, st = total64(*parts).unbind(0)
        if not with_bce:
            # sigmoid(inf) = 1 would hide an infinite logit: adding 0 * sum(x) to Sp keeps a NaN or
            # infinite logit as NaN (the BCE sum carries x itself). float32 sum(x) overflows only
            # for logits beyond ~1e30.
            sp = sp.add(x.sum(), alpha=0)
        saved_p = None if p is x else p
        ctx.act = act
        ctx.with_bce = with_bce
        ctx.hard = hard
        ctx.v_mask = v_mask
        ctx.save_for_backward(x, t, idx, v, saved_p)
        ctx.terms = terms
        bce = bce[0] if with_bce else None
        if terms is not None:
            loss, ctx.terms_saved = terms.forward(inter, sp, st)
            return (loss, bce) if with_bce else loss
        ctx.mark_non_differentiable(st)
        return (inter, sp, st, bce) if with_bce else (inter, sp, st)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):  # noqa: D102
        if ctx.terms is not None:
            g_inter, g_sp = ctx.terms.backward(ctx.terms_saved, grads[0])
            g_bce = grads[1] if ctx.with_bce else None
        else:
            g_inter, g_sp = grads[:2]
            g_bce = grads[3] if ctx.with_bce else None
        x, t, idx, v, p = ctx.saved_tensors
        act = ctx.act
        p = x if p is None else p
        n, c, m = x.shape
        g_inter, g_sp = g_inter.to(x.dtype), g_sp.to(x.dtype)
        gi, gs = g_inter.unsqueeze(-1), g_sp.unsqueeze(-1)
        if idx is not None:
            # dI/dq = onehot(target), dSp/dq = 1; both times v.
            gq = gs.expand(n, c, m).contiguous()
            gq.scatter_add_(1, idx.unsqueeze(1), g_inter.gather(1, idx).unsqueeze(1))
        elif ctx.hard:
            gq = t.mul(gi).add_(gs)  # dI/dq = t
        else:
            q = p if v is None or ctx.v_mask else p * v
            # dI/dq = d min(q, t)/dq: 1 below the target, 0 on or above it (a subgradient).
            gq = torch.gt(t, q, out=torch.empty_like(q)).mul_(gi).add_(gs)
        if act == SIGMOID:
            gq.mul_(torch.addcmul(p, p, p, value=-1.0))  # p (1 - p)
            if ctx.with_bce:
                gb = g_bce.to(x.dtype).unsqueeze(-1)
                gq.addcmul_(p, gb).addcmul_(t, gb, value=-1.0)  # d BCE / dx = p - t
            if v is not None:
                gq.mul_(v)
            return gq, None, None, None, None, None, None, None, None
        if v is not None:
            gq.mul_(v)
        if act == SOFTMAX:
            gq.sub_((gq * p).sum(1, keepdim=True)).mul_(p)
        return gq, None, None, None, None, None, None, None, None


def region_sums(
    x: torch.Tensor,
    t: torch.Tensor | None,
    idx: torch.Tensor | None,
    v: torch.Tensor | None,
    act: str,
    hard: bool = False,
    v_mask: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(I, Sp, St), each (N, C), of the activated ``x`` (N, C, P) against the target.

    Args:
        x: (N, C, P) logits (``act`` sigmoid/softmax) or probabilities (``act`` identity).
        t: (N, C, P) dense target (zero where ignored), or None when ``idx`` is given.
        idx: (N, P) long class indices for hard multiclass targets, or None.
        v: validity weight, (N, 1, P) or (N, C, P), or None.
        act: "sigmoid", "softmax" or "identity".
        hard: ``t`` holds only 0 and 1.
        v_mask: ``v`` holds only 0 and 1.

    Returns:
        (I, Sp, St), float64 (N, C) each; St carries no gradient.
    """
    return _RegionSums.apply(x, t, idx, v, act, False, hard, v_mask, None)


def region_terms(
    x: torch.Tensor,
    t: torch.Tensor | None,
    idx: torch.Tensor | None,
    v: torch.Tensor | None,
    act: str,
    hard: bool,
    v_mask: bool,
    terms,
) -> torch.Tensor:
    """Per-term losses of :func:`region_sums` in one autograd node, float64 (N, C) or (C,).

    ``terms`` has ``forward(I, Sp, St) -> (L, saved)`` and ``backward(saved, dLoss/dL) ->
    (dLoss/dI, dLoss/dSp)`` on the (N, C) sums (:class:`losses._tversky.TverskyTerms`,
    :class:`losses.mcc.MCCTerms`), so no autograd graph is recorded between the sums and the loss.
    """
    return _RegionSums.apply(x, t, idx, v, act, False, hard, v_mask, terms)


def region_bce_terms(
    x: torch.Tensor, t: torch.Tensor, v: torch.Tensor | None, hard: bool, terms
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Dice terms, B) for sigmoid ``x`` against a dense target in one pass; B is (N, C) float64.

    B[n, c] = sum_j v_j ((1 - t_j) x_j - log sigmoid(x_j)), the summed BCE with logits; the
    sigmoid is computed once (as exp of the log-sigmoid) and shared by both terms. ``v`` must be
    a 0/1 mask (or None) and ``t`` zero wherever ``v`` is. ``terms`` as in :func:`region_terms`.
    """
    return _RegionSums.apply(x, t, None, v, SIGMOID, True, hard, True, terms)
