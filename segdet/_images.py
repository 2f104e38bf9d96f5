"""Reading image files: one decoder for training data, evaluation and prediction alike.

Pillow decodes the file; grey is repeated over three channels, alpha is dropped, 16/32-bit and
float grey is scaled by 255 / its maximum, and the EXIF orientation is not applied (pixels are
read as stored), so a picture is predicted exactly as it was trained on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "UnreadableImageError", "image_size", "read_image"]

#: file endings recognised as images or masks (compared case-insensitively)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class UnreadableImageError(ValueError):
    """An image file is missing, empty, truncated or not an image; the message names it and the fix."""


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) read from the file header only (no pixel decoding).

    Raises:
        UnreadableImageError: (a ``ValueError``) the file is missing or not an image; the message
            names it and the fix.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as exc:  # Pillow raises several types for missing or broken files
        raise _unreadable(path, exc) from exc
    return height, width


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to a writable (H, W, 3) uint8 RGB array.

    Raises:
        UnreadableImageError: (a ``ValueError``) the file is missing, empty, truncated or not an
            image; the message names it.

    Example:
        >>> read_image("photos/0001.jpg").shape
        (480, 640, 3)
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "I;16", "F"):
                grey = np.asarray(im).astype(np.float64)
                grey = np.clip(grey * (255.0 / max(float(grey.max()), 1.0)), 0, 255).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # Pillow raises several types for missing or broken files
        raise _unreadable(path, exc) from exc


def _unreadable(path: str | os.PathLike, exc: Exception) -> UnreadableImageError:
    if isinstance(exc, FileNotFoundError):
        return UnreadableImageError(f"image file {Path(path)} does not exist; restore it or remove it from the dataset")
    return UnreadableImageError(
        f"cannot read image file {Path(path)}: {exc}; re-export it as PNG or JPEG, or remove it"
    )
