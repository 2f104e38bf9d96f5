"""Reductions of per-term and per-element losses to the mean, the sum or the unreduced map."""

from __future__ import annotations

import torch


def mean0(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values``, or 0 (still attached to the graph) when there are none.

    An empty batch has nothing to score, like a batch whose every pixel is ignored: it scores 0
    with a zero gradient, where torch's mean (0 / 0) gives NaN.
    """
    return values.mean() if values.numel() else values.sum()


def reduce_terms(loss: torch.Tensor, weights: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Reduces per-term losses (..., C) with per-class ``weights`` (C,) over every term.

    mean = sum(w * L) / sum(w); sum = sum(w * L); none = L unchanged.
    """
    if reduction == "none":
        return loss
    if weights is None:
        return mean0(loss) if reduction == "mean" else loss.sum()
    w = weights.expand_as(loss)
    total = (loss * w).sum()
    if reduction == "sum":
        return total
    return total / w.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def reduce_ratio(
    num: torch.Tensor,
    den: torch.Tensor | None,
    reduction: str,
    per_image: bool,
) -> torch.Tensor:
    """Reduces a weighted element-wise loss ``num`` (N, ...) by its weights ``den``.

    ``num`` is weight times loss and ``den`` the weight (broadcastable to ``num``; None means
    every element has weight 1). mean = sum(num) / sum(den) over the batch, or per image and then
    averaged over images when ``per_image``; a batch (or image) of total weight 0 scores 0 with
    zero gradient, never NaN. sum = sum(num); none = ``num`` unchanged.
    """
    if reduction == "none":
        return num
    if reduction == "sum":
        return num.sum()
    if den is None:
        return mean0(num)
    tiny = torch.finfo(num.dtype).tiny
    den = den.expand_as(num)
    if per_image:
        return mean0(num.flatten(1).sum(1) / den.flatten(1).sum(1).clamp_min(tiny))
    return num.sum() / den.sum().clamp_min(tiny)
