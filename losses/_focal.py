"""Sigmoid focal loss summed per (image, channel), with a hand-written backward.

Per element, p = sigmoid(x), with any target t in [0, 1]:

    ce  = softplus(x) - t x                      (BCE with logits)
    u   = 1 - p_t = p (1 - 2 t) + t
    l   = a_t u^gamma ce,                         a_t = a t + (1 - a)(1 - t)
    dl/dx = a_t [gamma u^(gamma-1) (1 - 2t) p (1 - p) ce + u^gamma (p - t)]

Only the inputs are saved; backward recomputes p, ce and u. This halves the passes over memory of
the autograd graph and keeps no intermediate tensors alive between forward and backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _parts(x, t, gamma):
    p = torch.sigmoid(x)
    ce = F.softplus(x).addcmul_(t, x, value=-1.0)
    w1 = t.mul(-2.0).add_(1.0)  # 1 - 2t
    u = torch.addcmul(t, p, w1)  # >= 0 on [0, 1]^2 up to rounding
    if gamma != int(gamma):
        u.clamp_min_(0.0)  # a rounding error below 0 would give NaN for a fractional power
    return p, ce, w1, u


def _mul_alpha_t(a, w1, alpha):
    """Multiplies ``a`` by alpha_t in place, in two passes and without a temporary.

    alpha_t = alpha t + (1 - alpha)(1 - t) = 1/2 - (alpha - 1/2) w1, with w1 = 1 - 2t.
    """
    if alpha is None:
        return a
    if isinstance(alpha, float):
        return a.mul_(0.5).addcmul_(a, w1, value=-(2 * alpha - 1))
    return a.mul_(0.5 - (alpha - 0.5) * w1)


class _SigmoidFocalSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, t, w, alpha, gamma):  # noqa: D102
        p, ce, w1, u = _parts(x, t, gamma)
        del p
        if gamma == 2.0:
            loss = ce.mul_(u).mul_(u)
        elif gamma:
            loss = ce.mul_(u.pow_(gamma))
        else:
            loss = ce
        _mul_alpha_t(loss, w1, alpha)
        if w is not None:
            loss.mul_(w)
        ctx.alpha, ctx.gamma = alpha, gamma
        ctx.save_for_backward(x, t, w)
        return loss.sum(-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # noqa: D102
        x, t, w = ctx.saved_tensors
        alpha, gamma = ctx.alpha, ctx.gamma
        p, ce, w1, u = _parts(x, t, gamma)
        grad = p.sub(t)  # p - t
        if gamma:
            if gamma == 1.0:
                upow = None
            elif gamma == 2.0:
                upow = u
            elif gamma < 1.0:
                upow = torch.where(u > 0, u.pow(gamma - 1.0), 0.0)
            else:
                upow = u.pow(gamma - 1.0)
            pp = torch.addcmul(p, p, p, value=-1.0)  # p (1 - p)
            # gamma u^(g-1) w1 pp ce + u^g (p - t) = gamma u^(g-1) [w1 pp ce + u (p - t) / gamma]
            grad = ce.mul_(w1).mul_(pp).addcmul_(u, grad, value=1.0 / gamma)
            if upow is not None:
                grad.mul_(upow)
            g = g * gamma
        _mul_alpha_t(grad, w1, alpha)
        if w is not None:
            grad.mul_(w)
        return grad.mul_(g.unsqueeze(-1)), None, None, None, None


def sigmoid_focal_sums(
    x: torch.Tensor,
    t: torch.Tensor,
    w: torch.Tensor | None,
    alpha: float | torch.Tensor | None,
    gamma: float,
) -> torch.Tensor:
    """(N, C) sums over P of w * focal loss, for x, t of shape (N, C, P).

    Args:
        x: (N, C, P) logits.
        t: (N, C, P) targets in [0, 1].
        w: element weights broadcastable to (N, C, P), or None.
        alpha: None, a float, or a (1, C, 1) tensor.
        gamma: focusing exponent >= 0.
    """
    return _SigmoidFocalSums.apply(x, t, w, alpha, float(gamma))
