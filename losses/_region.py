"""Per-image, per-class sums of the region losses (Dice, Jaccard, Tversky) in one pass.

``region_sums`` returns, for every image n and class c,

    I[n, c]  = sum_j (q_j + t_j - |q_j - t_j|) / 2     (soft intersection, L1 form)
    Sp[n, c] = sum_j q_j                               (predicted mass)
    St[n, c] = sum_j t_j                               (target mass)

with q = act(x) * v (the activated prediction times the validity weight) and t the target (zero
where ignored). For 0/1 targets the L1 intersection equals the product form sum_j q_j t_j; for
soft targets it is the form whose minimum is at q == t. Hard multiclass targets are never one-hot
encoded: I is a gather of the target class's probability followed by a scatter-add.

The autograd function saves only its inputs and recomputes the activation in backward, so the
memory of a loss call is a few (N, C, P) temporaries, not the whole graph.
"""

from __future__ import annotations

import torch

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
    def forward(ctx, x, t, idx, v, act, with_bce):  # noqa: D102 - see module docstring
        bce = None
        if with_bce:
            # one activation for both terms: log-sigmoid, then p = exp(log-sigmoid).
            ls = torch.nn.functional.logsigmoid(x)
            q = ls.exp()
            el = (1 - t) * x - ls
            if v is not None:
                el = el * v
            bce = el.sum(-1)
            del el, ls
        else:
            q = activate(x, act)
        if v is not None:
            q = q * v
        sp = q.sum(-1)
        if idx is not None:
            n, c, _ = x.shape
            picked = q.gather(1, idx.unsqueeze(1)).squeeze(1)
            inter = torch.zeros(n, c, dtype=x.dtype, device=x.device).scatter_add_(1, idx, picked)
            ones = v.squeeze(1) if v is not None else torch.ones_like(picked)
            st = torch.zeros(n, c, dtype=x.dtype, device=x.device).scatter_add_(1, idx, ones)
        else:
            st = t.sum(-1)
            inter = (sp + st - (q - t).abs().sum(-1)) * 0.5
        ctx.act = act
        ctx.with_bce = with_bce
        ctx.save_for_backward(x, t, idx, v)
        ctx.mark_non_differentiable(st)
        if with_bce:
            return inter, sp, st, bce
        return inter, sp, st

    @staticmethod
    def backward(ctx, g_inter, g_sp, g_st, g_bce=None):  # noqa: D102
        x, t, idx, v = ctx.saved_tensors
        act = ctx.act
        p = activate(x, act)
        n, c, m = x.shape
        if idx is not None:
            # dI/dq = onehot(target), dSp/dq = 1; both times v.
            gq = g_sp.unsqueeze(-1).expand(n, c, m).contiguous()
            add = g_inter.gather(1, idx).unsqueeze(1)
            gq.scatter_add_(1, idx.unsqueeze(1), add)
            if v is not None:
                gq = gq * v
        else:
            q = p * v if v is not None else p
            # dI/dq = (1 - sign(q - t)) / 2
            gq = torch.sign(q - t).mul_(-0.5).add_(0.5).mul_(g_inter.unsqueeze(-1))
            gq.add_(g_sp.unsqueeze(-1))
            if v is not None:
                gq.mul_(v)
        if act == SIGMOID:
            gx = gq.mul_(p * (1 - p))
            if ctx.with_bce:
                # d BCE / dx = p - t
                gb = (p - t).mul_(g_bce.unsqueeze(-1))
                gx.add_(gb if v is None else gb.mul_(v))
        elif act == SOFTMAX:
            gx = (gq - (gq * p).sum(1, keepdim=True)).mul_(p)
        else:
            gx = gq
        return gx, None, None, None, None, None


def region_sums(
    x: torch.Tensor,
    t: torch.Tensor | None,
    idx: torch.Tensor | None,
    v: torch.Tensor | None,
    act: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(I, Sp, St), each (N, C), of the activated ``x`` (N, C, P) against the target.

    Args:
        x: (N, C, P) logits (``act`` sigmoid/softmax) or probabilities (``act`` identity).
        t: (N, C, P) dense target, or None when ``idx`` is given.
        idx: (N, P) long class indices for hard multiclass targets, or None.
        v: validity weight broadcastable to (N, C, P), or None.
        act: "sigmoid", "softmax" or "identity".
    """
    return _RegionSums.apply(x, t, idx, v, act, False)


def region_bce_sums(
    x: torch.Tensor, t: torch.Tensor, v: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(I, Sp, St, B), each (N, C), for sigmoid ``x`` against a dense target in one pass.

    B[n, c] = sum_j v_j ((1 - t_j) x_j - log sigmoid(x_j)), the summed BCE with logits; the
    sigmoid is computed once (as exp of the log-sigmoid) and shared by both terms.
    """
    return _RegionSums.apply(x, t, None, v, SIGMOID, True)
