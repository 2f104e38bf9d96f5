"""Box and instance-mask helpers shared by the mixers (private; signatures are stable).

Boxes are pascal_voc pixels, ``(N, 4)`` float32 ``x_min, y_min, x_max, y_max``, where pixel
``(row i, column j)`` is the unit square ``[j, j + 1] x [i, i + 1]``. No boxes is always an
array of shape ``(0, 4)``.
"""

from __future__ import annotations

import numpy as np

# Boxes that overshoot the canvas by at most this many pixels (float round-off from a resize)
# are clipped silently; anything further out is an error.
_TOLERANCE = 1e-3


def empty_boxes() -> np.ndarray:
    """Returns the empty box array, shape ``(0, 4)`` float32."""
    return np.zeros((0, 4), dtype=np.float32)


def check_boxes(boxes, height: int, width: int, name: str = "bboxes") -> np.ndarray:
    """Validates pascal_voc boxes against a ``height x width`` canvas.

    Args:
        boxes: array-like ``(N, 4)`` pascal_voc pixels; ``None`` or empty means no boxes.
        height: canvas height in pixels.
        width: canvas width in pixels.
        name: how to call the boxes in error messages (e.g. ``"sample 3 bboxes"``).

    Returns:
        ``(N, 4)`` float32 copy, clipped to the canvas within a 1e-3 px tolerance.

    Raises:
        ValueError: wrong shape, non-finite values, ``x_max <= x_min`` / ``y_max <= y_min``,
            or a box further than 1e-3 px outside the canvas.

    Example:
        >>> check_boxes([[0, 0, 4, 2]], height=8, width=8)
        array([[0., 0., 4., 2.]], dtype=float32)
    """
    if boxes is None:
        return empty_boxes()
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return empty_boxes()
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) in pascal_voc pixels, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf: {arr[~np.isfinite(arr).all(1)][:3].tolist()}")
    bad = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}[{i}] = {arr[i].tolist()} has no area; pascal_voc boxes need x_max > x_min and "
            "y_max > y_min (convert coco/yolo boxes with augment.coco_to_pascal_voc/yolo_to_pascal_voc)"
        )
    lo = np.array([0, 0, 0, 0]) - _TOLERANCE
    hi = np.array([width, height, width, height]) + _TOLERANCE
    outside = ((arr < lo) | (arr > hi)).any(1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{name}[{i}] = {arr[i].tolist()} lies outside the {width}x{height} (WxH) image; "
            "clip boxes to the image first (albumentations BboxParams(clip=True))"
        )
    arr = np.clip(arr, 0, [width, height, width, height])
    return arr.astype(np.float32)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(N, 4)`` pascal_voc boxes, ``(N,)`` float64 (negative sides count as 0)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _cover(lo: float, hi: float, n: int) -> tuple[int, int, np.ndarray]:
    """Pixels ``[a, b)`` that the interval ``[lo, hi]`` overlaps and the overlap lengths."""
    a = max(int(np.floor(lo)), 0)
    b = min(int(np.ceil(hi)), n)
    if b <= a:
        return a, a, np.zeros(0)
    idx = np.arange(a, b, dtype=np.float64)
    return a, b, np.clip(np.minimum(hi, idx + 1) - np.maximum(lo, idx), 0, None)


def visible_boxes(boxes: np.ndarray, keep_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area and bounding box of the part of each box that lies on kept pixels.

    The visible area is exact for float boxes: each pixel counts with the area it shares with
    the box. The new box is the bounding box of the box's intersection with the kept pixels,
    so a patch that removes a whole side shrinks the box and a hole in the middle does not.

    Args:
        boxes: ``(N, 4)`` pascal_voc pixels inside the canvas.
        keep_map: ``(H, W)`` bool, True where the box's source is still visible.

    Returns:
        ``(visible_area, new_boxes)``: ``(N,)`` float64 and ``(N, 4)`` float32. A box with
        nothing visible gets area 0 and a zero box.

    Example:
        >>> keep = np.ones((4, 6), bool); keep[:, 3:] = False
        >>> visible_boxes(np.array([[1, 0, 5, 2]], np.float32), keep)
        (array([4.]), array([[1., 0., 3., 2.]], dtype=float32))
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = keep_map.shape
    area = np.zeros(len(boxes))
    out = np.zeros((len(boxes), 4), dtype=np.float32)
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        c0, c1, wx = _cover(x0, x1, w)
        r0, r1, wy = _cover(y0, y1, h)
        if c1 <= c0 or r1 <= r0:
            continue
        window = keep_map[r0:r1, c0:c1] & (wy[:, None] > 0) & (wx[None, :] > 0)
        area[n] = wy @ window.astype(np.float64) @ wx
        if area[n] <= 0:
            continue
        cols = np.flatnonzero(window.any(0))
        rows = np.flatnonzero(window.any(1))
        out[n] = (max(x0, c0 + cols[0]), max(y0, r0 + rows[0]), min(x1, c0 + cols[-1] + 1), min(y1, r0 + rows[-1] + 1))
    return area, out


def masks_to_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tight pascal_voc box around the nonzero pixels of each instance mask.

    Args:
        masks: ``(K, H, W)`` instance masks (nonzero = instance).

    Returns:
        ``(boxes, nonempty)``: ``(K, 4)`` float32 boxes on pixel edges (``x_max`` is the last
        column + 1) and ``(K,)`` bool; an empty mask gets a zero box and False.

    Example:
        >>> m = np.zeros((1, 4, 5), np.uint8); m[0, 1:3, 2] = 1
        >>> masks_to_boxes(m)
        (array([[2., 1., 3., 3.]], dtype=float32), array([ True]))
    """
    masks = np.asarray(masks)
    k = masks.shape[0]
    boxes = np.zeros((k, 4), dtype=np.float32)
    nonempty = np.zeros(k, dtype=bool)
    for i in range(k):
        m = masks[i] != 0
        rows = np.flatnonzero(m.any(1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(m.any(0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        nonempty[i] = True
    return boxes, nonempty


def intersect_boxes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise intersection of two ``(N, 4)`` box arrays (may have non-positive sides)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])], axis=1)


def keep_by_visibility(
    visible_area: np.ndarray, original_area: np.ndarray, min_visibility: float = 0.0, min_area: float = 0.0
) -> np.ndarray:
    """Keep-index of boxes after a cut, measured against the box before any cut.

    A box is kept when it still has area and either was not cut at all, or its visible area
    is at least ``min_area`` pixels and at least ``min_visibility`` of ``original_area``.
    A mixer never drops a box it did not cut.

    Args:
        visible_area: ``(N,)`` visible area after the cut.
        original_area: ``(N,)`` area of the same boxes before any cut.
        min_visibility: fraction in ``[0, 1]``.
        min_area: pixels.

    Returns:
        ``(N,)`` bool.
    """
    visible_area = np.asarray(visible_area, dtype=np.float64)
    original_area = np.asarray(original_area, dtype=np.float64)
    uncut = visible_area >= original_area * (1 - 1e-9)
    ok = (visible_area >= min_area) & (visible_area >= min_visibility * original_area * (1 - 1e-9))
    return (visible_area > 0) & (uncut | ok)


def cut_instances(
    boxes: np.ndarray,
    masks: np.ndarray | None,
    keep_map: np.ndarray,
    min_visibility: float = 0.0,
    min_area: float = 0.0,
):
    """Boxes and instance masks of one source after hiding the pixels where ``keep_map`` is False.

    Without instance masks a box's visibility is its visible area (exact for float boxes) over
    its area before the cut, and its new box is the bounding box of the visible part. With
    instance masks the same is measured on mask pixels (visible pixels over pixels before the
    cut) and the new box is the geometric new box intersected with the bounding box of the
    visible mask, so a box never covers more background than before; an instance whose mask
    was already empty is judged by its box. Untouched instances are always kept unchanged.

    Args:
        boxes: ``(N, 4)`` pascal_voc pixels inside the canvas.
        masks: ``(N, H, W)`` instance masks or ``None``.
        keep_map: ``(H, W)`` bool, True where this source stays visible.
        min_visibility: fraction in ``[0, 1]`` of the area before the cut.
        min_area: pixels of visible area.

    Returns:
        ``(keep, new_boxes, new_masks)``: ``(N,)`` bool, ``(N, 4)`` float32 (rows of dropped
        boxes are meaningless) and ``(N, H, W)`` masks with hidden pixels zeroed (``None`` when
        ``masks`` is ``None``). Select all three with the one ``keep``.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    visible, new_boxes = visible_boxes(boxes, keep_map)
    original = box_areas(boxes)
    untouched = visible >= original * (1 - 1e-9)
    new_boxes[untouched] = boxes[untouched]
    if masks is None:
        return keep_by_visibility(visible, original, min_visibility, min_area), new_boxes, None
    # Visible pixels all lie in the bounding window of keep_map: work there only.
    rows, cols = np.flatnonzero(keep_map.any(1)), np.flatnonzero(keep_map.any(0))
    win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if rows.size else (slice(0, 0),) * 2
    new_masks = np.zeros_like(masks)
    visible_part = new_masks[(slice(None),) + win]
    np.multiply(masks[(slice(None),) + win], keep_map[win], out=visible_part, casting="unsafe")
    before = np.array([np.count_nonzero(m) for m in masks], dtype=np.float64)
    after = np.array([np.count_nonzero(m) for m in visible_part], dtype=np.float64)
    by_mask = before > 0
    visible = np.where(by_mask, after, visible)
    original = np.where(by_mask, before, original)
    keep = keep_by_visibility(visible, original, min_visibility, min_area)
    touched_mask = by_mask & ~((after >= before) & untouched)
    if touched_mask.any():
        mask_boxes, _ = masks_to_boxes(visible_part[touched_mask])
        mask_boxes += np.array([win[1].start, win[0].start] * 2, dtype=np.float32)
        new_boxes[touched_mask] = intersect_boxes(new_boxes[touched_mask], mask_boxes)
    sides = new_boxes[:, 2:] - new_boxes[:, :2]
    keep &= (sides > 0).all(1)
    return keep, new_boxes, new_masks
