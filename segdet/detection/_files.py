"""File helpers of the VOC and YOLO loaders: image reading, box cleaning with counted warnings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; ValueError naming the file when it is missing or not an image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except FileNotFoundError:
        raise ValueError(f"image file {path} does not exist; restore it or remove its annotation") from None
    except Exception as exc:
        raise ValueError(f"cannot read image file {path}: {exc}; re-export it as JPEG/PNG or remove it") from exc


def header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise ValueError(f"image file {path} does not exist; restore it or remove its annotation") from None
    except Exception as exc:
        raise ValueError(f"cannot read image file {path}: {exc}; re-export it as JPEG/PNG or remove it") from exc
    return h, w


class BoxCleaner:
    """Clips boxes to their image and drops empty ones, counting both for one summary warning."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.clipped = 0
        self.dropped = 0
        self.first_clipped: str | None = None
        self.first_dropped: str | None = None

    def __call__(self, boxes: np.ndarray, labels: np.ndarray, height: int, width: int,
                 source: str) -> tuple[np.ndarray, np.ndarray]:
        """boxes (N, 4) xyxy pixels -> clipped boxes with positive area, and their labels."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        clipped = boxes.copy()
        np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
        np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
        keep = valid & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        n_clipped = int((keep & np.any(clipped != boxes, axis=1)).sum())
        n_dropped = int((~keep).sum())
        if n_clipped:
            self.clipped += n_clipped
            self.first_clipped = self.first_clipped or source
        if n_dropped:
            self.dropped += n_dropped
            self.first_dropped = self.first_dropped or source
        return clipped[keep], labels[keep]

    def warn(self) -> None:
        parts = []
        if self.clipped:
            parts.append(f"{self.clipped} boxes partly outside their image were clipped (first in {self.first_clipped})")
        if self.dropped:
            parts.append(f"{self.dropped} zero-area, inverted or fully outside boxes were dropped "
                         f"(first in {self.first_dropped})")
        if parts:
            warnings.warn(f"{self.what}: " + "; ".join(parts), stacklevel=3)
