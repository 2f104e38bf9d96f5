"""Box cleaning of the VOC and YOLO loaders, with counted warnings."""

from __future__ import annotations

import warnings

import numpy as np


class BoxCleaner:
    """Clips boxes to their image and drops empty ones, counting both for one summary warning."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.clipped = 0
        self.dropped = 0
        self.first_clipped: str | None = None
        self.first_dropped: str | None = None

    def __call__(
        self, boxes: np.ndarray, labels: np.ndarray, height: int, width: int, source: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) xyxy pixels -> clipped boxes with positive area, and their labels."""
        kept, kept_labels, _ = self.clean(boxes, labels, height, width, source)
        return kept, kept_labels

    def clean(
        self, boxes: np.ndarray, labels: np.ndarray, height: int, width: int, source: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As calling the cleaner, and the (N,) bool keep-index of the input boxes (for per-box extras)."""
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
        return clipped[keep], labels[keep], keep

    def warn(self) -> None:
        parts = []
        if self.clipped:
            parts.append(
                f"{self.clipped} boxes partly outside their image were clipped (first in {self.first_clipped})"
            )
        if self.dropped:
            parts.append(
                f"{self.dropped} zero-area, inverted or fully outside boxes were dropped "
                f"(first in {self.first_dropped})"
            )
        if parts:
            warnings.warn(f"{self.what}: " + "; ".join(parts), stacklevel=3)
