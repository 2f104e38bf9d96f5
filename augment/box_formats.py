"""Conversions between coco, yolo and pascal_voc boxes.

segdet keeps boxes as pascal_voc pixels inside (``x_min, y_min, x_max, y_max``). Every function
takes an array-like ``(N, 4)`` and returns ``(N, 4)`` float32; no boxes is shape ``(0, 4)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["coco_to_pascal_voc", "pascal_voc_to_coco", "yolo_to_pascal_voc", "pascal_voc_to_yolo"]


def _as_boxes(boxes, name: str) -> np.ndarray:
    arr = np.asarray(boxes if boxes is not None else [], dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} boxes must have shape (N, 4), got {arr.shape}")
    return arr


def _check_size(height: int, width: int) -> None:
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")


def coco_to_pascal_voc(boxes) -> np.ndarray:
    """Coco ``(x_min, y_min, w, h)`` pixels to pascal_voc ``(x_min, y_min, x_max, y_max)``.

    Args:
        boxes: ``(N, 4)`` coco boxes.

    Returns:
        ``(N, 4)`` float32 pascal_voc boxes.

    Example:
        >>> coco_to_pascal_voc([[10, 20, 5, 4]])
        array([[10., 20., 15., 24.]], dtype=float32)
    """
    b = _as_boxes(boxes, "coco")
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).astype(np.float32)


def pascal_voc_to_coco(boxes) -> np.ndarray:
    """pascal_voc ``(x_min, y_min, x_max, y_max)`` to coco ``(x_min, y_min, w, h)`` pixels.

    Example:
        >>> pascal_voc_to_coco([[10, 20, 15, 24]])
        array([[10., 20.,  5.,  4.]], dtype=float32)
    """
    b = _as_boxes(boxes, "pascal_voc")
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1).astype(np.float32)


def yolo_to_pascal_voc(boxes, height: int, width: int) -> np.ndarray:
    """Yolo ``(cx, cy, w, h)`` normalised by the image size to pascal_voc pixels.

    Args:
        boxes: ``(N, 4)`` yolo boxes in ``[0, 1]``.
        height: image height in pixels.
        width: image width in pixels.

    Example:
        >>> yolo_to_pascal_voc([[0.5, 0.5, 0.5, 0.25]], height=40, width=80)
        array([[20., 15., 60., 25.]], dtype=float32)
    """
    _check_size(height, width)
    b = _as_boxes(boxes, "yolo")
    scale = np.array([width, height], dtype=np.float64)
    centre, size = b[:, :2] * scale, b[:, 2:] * scale
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)


def pascal_voc_to_yolo(boxes, height: int, width: int) -> np.ndarray:
    """pascal_voc pixels to yolo ``(cx, cy, w, h)`` normalised by the image size.

    Example:
        >>> pascal_voc_to_yolo([[20, 15, 60, 25]], height=40, width=80)
        array([[0.5 , 0.5 , 0.5 , 0.25]], dtype=float32)
    """
    _check_size(height, width)
    b = _as_boxes(boxes, "pascal_voc")
    scale = np.array([width, height], dtype=np.float64)
    centre, size = (b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]
    return np.concatenate([centre / scale, size / scale], axis=1).astype(np.float32)
