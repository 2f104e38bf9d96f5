"""Pasting a region of one sample onto another, exactly for every target (private)."""

from __future__ import annotations

import numpy as np

from ._boxes import cut_instances
from ._sample import (
    check_classes,
    check_label_channels,
    concat_instances,
    mix_dtype,
    mix_label_vectors,
    soft_mask,
    take,
)


def _take_region(a: np.ndarray, b: np.ndarray, region: np.ndarray, dtype) -> np.ndarray:
    """Copy of ``a`` (as ``dtype``) with ``b`` inside ``region`` (over the first two axes)."""
    out = a.astype(dtype, copy=True)
    where = region.reshape(region.shape + (1,) * (a.ndim - 2))
    np.copyto(out, b, where=where, casting="unsafe")
    return out


def mix_masks(
    a: np.ndarray, b: np.ndarray, region: np.ndarray, num_classes: int | None, ignore_index: int | None, name: str
) -> np.ndarray:
    """Semantic mask taking ``b`` inside ``region`` and ``a`` elsewhere.

    Two hard masks stay hard, and so do two integer (H, W, C) masks of per-class 0/1 channels
    (every channel copied, ``ignore_index`` included); if either is soft (H, W, C) float both
    become soft and the hard one is one-hot encoded (``ignore_index`` pixels become all-zero
    vectors). Hard class-index masks must hold classes ``0..num_classes-1`` or ``ignore_index``
    when ``num_classes`` is given, as in MixUp.
    """
    check_classes([a, b], num_classes, ignore_index, name)
    if (a.ndim == 2 and b.ndim == 2) or check_label_channels([a, b], name, num_classes):
        return _take_region(a, b, region, np.result_type(a.dtype, b.dtype))
    channels = a.shape[2] if a.ndim == 3 else b.shape[2]
    if num_classes is not None and channels != num_classes:
        raise ValueError(f"{name}: a soft mask has {channels} channels but num_classes={num_classes}")
    a = soft_mask(a, channels, ignore_index, f"{name} source 0")
    b = soft_mask(b, channels, ignore_index, f"{name} source 1")
    return _take_region(a, b, region, np.float32)


def paste(
    primary: dict,
    partner: dict,
    region: np.ndarray,
    *,
    min_visibility: float,
    min_area: float,
    num_classes: int | None,
    ignore_index: int | None,
    name: str,
    partner_instances: np.ndarray | None = None,
) -> tuple[dict, float]:
    """Takes ``partner`` inside ``region`` and ``primary`` elsewhere (both already checked).

    Args:
        primary: checked sample whose pixels show outside ``region``.
        partner: checked sample of the same size, shown inside ``region``.
        region: (H, W) bool, True where the partner shows.
        min_visibility: keep a cut box or instance when at least this fraction of its area
            before the cut stays visible.
        min_area: keep a cut box or instance when at least this many pixels stay visible.
        num_classes: class count for turning a hard mask soft when the other one is soft.
        ignore_index: unlabelled value of hard masks (all-zero vector when turned soft).
        name: mixer name for messages.
        partner_instances: (N_partner,) bool, the partner instances that may appear (CopyPaste
            pastes a subset); default all.

    Returns:
        ``(sample, lam)`` with ``lam`` the exact fraction of pixels showing the primary.
    """
    h, w = region.shape
    out = {k: v for k, v in primary.items() if k not in ("weights",)}
    dtype = mix_dtype(primary["image"], partner["image"])
    out["image"] = _take_region(primary["image"], partner["image"], region, dtype)
    lam = float(h * w - np.count_nonzero(region)) / float(h * w)
    if "mask" in primary:
        out["mask"] = mix_masks(primary["mask"], partner["mask"], region, num_classes, ignore_index, name)
    if "bboxes" in primary:
        parts = []
        for src, keep_map in ((primary, ~region), (partner, region)):
            keep, boxes, masks = cut_instances(src["bboxes"], src.get("masks"), keep_map, min_visibility, min_area)
            if src is partner and partner_instances is not None:
                keep &= partner_instances
            parts.append(take(src, keep, boxes, masks))
        keep_weights = "weights" in primary or "weights" in partner
        out.update(concat_instances(parts, keep_weights, h, w))
    if "label_vector" in primary:
        out["label_vector"] = mix_label_vectors(
            [primary["label_vector"], partner["label_vector"]], [lam, 1.0 - lam], name
        )
    return out, lam
