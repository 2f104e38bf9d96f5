"""Pixel-space targets of a feature-level mix: the weight each pixel keeps of its own sample.

A feature mix blends sample ``i`` with sample ``index[i]`` by a weight ``w`` per position of the
mixed feature map (a number for Manifold Mixup, a block mask for PatchUp). A feature cell of a
stage with stride ``s`` is computed from, and decoded back to, the ``s x s`` pixels it covers, so
the target of a pixel is the mix of the two targets with the weight of its cell:
:func:`pixel_weights` maps the weights to pixels, :func:`mix_targets` mixes the targets.
"""

from __future__ import annotations

import torch

__all__ = ["mix_targets", "copy_targets", "pixel_weights"]


def pixel_weights(weights: torch.Tensor, stride: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The (h, w) cell weights of a stage repeated over the pixels each cell covers, cropped to ``size``.

    Args:
        weights: (h, w) weights of the feature map (one map for the whole batch).
        stride: pixels per cell (down, across) of the padded input.
        size: (H, W) of the target, at most ``(h * stride[0], w * stride[1])`` (the padding is cropped).

    Returns:
        (H, W) weights.

    Raises:
        ValueError: the stage does not cover ``size``.
    """
    sh, sw = stride
    if weights.shape[0] * sh < size[0] or weights.shape[1] * sw < size[1]:
        raise ValueError(
            f"a feature map of {tuple(weights.shape)} cells at stride {stride} covers "
            f"{weights.shape[0] * sh} x {weights.shape[1] * sw} pixels, less than the target's {size}"
        )
    full = weights.repeat_interleave(sh, 0).repeat_interleave(sw, 1)
    return full[: size[0], : size[1]]


def _one_hot(target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(B, K, H, W) float32 one-hot of a hard (B, H, W) mask; unlabelled pixels (ignore_index, out of range): zero."""
    valid = (target >= 0) & (target < num_classes) & (target != ignore_index)
    out = torch.zeros((target.shape[0], num_classes, *target.shape[1:]), dtype=torch.float32, device=target.device)
    out.scatter_(1, torch.where(valid, target, 0).long()[:, None], valid[:, None].to(torch.float32))
    return out


def mix_targets(
    target: torch.Tensor, index: torch.Tensor, weights: torch.Tensor | float, num_classes: int, ignore_index: int
) -> torch.Tensor:
    """Soft (B, K, H, W) targets ``w * t_i + (1 - w) * t_index[i]``, renormalised over the labelled share.

    A hard mask becomes one-hot probabilities (the all-zero vector where unlabelled); a soft target
    is taken as it is. With ``m`` a target's mass (1 labelled, 0 unlabelled)::

        out = (w * t_i + (1 - w) * t_j) / (w * m_i + (1 - w) * m_j),   0 where the denominator is 0

    so a pixel labelled in both samples gets the blend, a pixel labelled in one sample only takes
    that label where it has any weight (``0 < w < 1``, the rule of MixUp), and a pixel whose weight
    lies wholly on an unlabelled sample (``w = 1`` or ``w = 0``) stays unlabelled.

    Args:
        target: hard (B, H, W) integer or soft (B, K, H, W) float targets.
        index: (B,) partner of each sample.
        weights: a number, or (H, W) pixel weights (:func:`pixel_weights`) shared by the batch.
        num_classes: K of a hard mask.
        ignore_index: unlabelled value of a hard mask.

    Returns:
        (B, K, H, W) float32 (float64 stays float64).

    Raises:
        ValueError: a single-channel soft target (its mass is not a label share).
    """
    if target.dim() == 3:
        t = _one_hot(target, num_classes, ignore_index)
    elif target.shape[1] >= 2 and target.is_floating_point():
        t = target if target.dtype == torch.float64 else target.float()
    else:
        raise ValueError(
            f"feature mixing mixes hard (B, H, W) masks or soft (B, K >= 2, H, W) probabilities, got "
            f"{target.dtype} {tuple(target.shape)}"
        )
    w = torch.as_tensor(weights, dtype=t.dtype, device=t.device)
    t2 = t[index]
    num = w * t + (1 - w) * t2
    den = w * t.sum(1, keepdim=True) + (1 - w) * t2.sum(1, keepdim=True)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(t.dtype).tiny), torch.zeros_like(num))


def copy_targets(target: torch.Tensor, index: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The target of ``index[i]`` inside ``region`` (H, W) bool, sample ``i``'s outside: hard stays hard.

    Works on every target layout of a batch ((B, H, W) masks, (B, K, H, W) channels or
    probabilities); pixels are copied exactly, ``ignore_index`` included.
    """
    return torch.where(region, target[index], target)  # (H, W) broadcasts over batch and channels
