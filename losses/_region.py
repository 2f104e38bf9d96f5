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

The autograd function saves only its inputs and recomputes the activation in backward, so a
loss call holds a few (N, C, P) temporaries, not a whole graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

SIGMOID = "sigmoid"
SOFTMAX = "softmax"
IDENTITY = "identity"


def activate(x: torch.Tensor, act: str) -> torch.Tensor:
    if act == SIGMOID:
        return torch.sigmoid(x)
    if act == SOFTMAX:
        return torch.softmax(x, dim=1)
    return x


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_j a[n, c, j] * b[n, c or 0, j] as (N, C), one pass, no (N, C, P) temporary."""
    n, c, m = a.shape
    if b.shape[1] == 1 and c > 1:
        return torch.bmm(a, b.reshape(n, m, 1)).reshape(n, c)
    return torch.bmm(a.reshape(n * c, 1, m), b.reshape(n * c, m, 1)).reshape(n, c)


class _RegionSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t, idx, v, act, with_bce, hard, v_mask):  # noqa: D102
        n, c, m = x.shape
        bce = None
        if with_bce:
            # one activation for both terms: log-sigmoid, then p = exp(log-sigmoid).
            ls = F.logsigmoid(x)
            p = ls.exp()
            # sum_j v ((1 - t) x - log s(x)); t is 0 wherever v is.
            if v is None:
                bce = x.sum(-1) - ls.sum(-1) - _rowdot(t, x)
            else:
                bce = _rowdot(v, x) - _rowdot(v, ls) - _rowdot(t, x)
            del ls
        else:
            p = activate(x, act)
        # q = p * v; with a 0/1 mask and t = 0 where v = 0, p can stand in for q in I.
        q = p if v is None or v_mask else p * v
        if v is None:
            sp = p.sum(-1)
        elif v_mask:
            sp = _rowdot(p, v)
        else:
            sp = q.sum(-1)
        if idx is not None:
            picked = q.gather(1, idx.unsqueeze(1)).squeeze(1)
            if v is not None:
                picked = picked * v.squeeze(1)
            inter = torch.zeros(n, c, dtype=x.dtype, device=x.device).scatter_add_(1, idx, picked)
            ones = v.squeeze(1) if v is not None else torch.ones_like(picked)
            st = torch.zeros(n, c, dtype=x.dtype, device=x.device).scatter_add_(1, idx, ones)
        else:
            st = t.sum(-1)
            inter = _rowdot(q, t) if hard else torch.minimum(q, t).sum(-1)
        ctx.act = act
        ctx.with_bce = with_bce
        ctx.hard = hard
        ctx.v_mask = v_mask
        ctx.save_for_backward(x, t, idx, v)
        ctx.mark_non_differentiable(st)
        if with_bce:
            return inter, sp, st, bce
        return inter, sp, st

    @staticmethod
    @once_differentiable
    def backward(ctx, g_inter, g_sp, g_st, g_bce=None):  # noqa: D102
        x, t, idx, v = ctx.saved_tensors
        act = ctx.act
        p = activate(x, act)
        n, c, m = x.shape
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
                gb = g_bce.unsqueeze(-1)
                gq.addcmul_(p, gb).addcmul_(t, gb, value=-1.0)  # d BCE / dx = p - t
            if v is not None:
                gq.mul_(v)
            return gq, None, None, None, None, None, None, None
        if v is not None:
            gq.mul_(v)
        if act == SOFTMAX:
            gq.sub_((gq * p).sum(1, keepdim=True)).mul_(p)
        return gq, None, None, None, None, None, None, None


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
    """
    return _RegionSums.apply(x, t, idx, v, act, False, hard, v_mask)


def region_bce_sums(
    x: torch.Tensor, t: torch.Tensor, v: torch.Tensor | None, hard: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(I, Sp, St, B), each (N, C), for sigmoid ``x`` against a dense target in one pass.

    B[n, c] = sum_j v_j ((1 - t_j) x_j - log sigmoid(x_j)), the summed BCE with logits; the
    sigmoid is computed once (as exp of the log-sigmoid) and shared by both terms. ``v`` must be
    a 0/1 mask (or None) and ``t`` zero wherever ``v`` is.
    """
    return _RegionSums.apply(x, t, None, v, SIGMOID, True, hard, True)
