"""Reading images and masks from disk with errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: file endings recognised as images or masks (compared case-insensitively)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _pil():
    from PIL import Image

    return Image


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) read from the file header only (no pixel decoding)."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Exception as exc:  # PIL raises several types for broken files
        raise ValueError(
            f"cannot read image file {path}: {exc}; re-export it as PNG or JPEG, or remove it"
        ) from exc
    return height, width


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB.

    Raises:
        ValueError: the file is missing, truncated or not an image; the message names it.
    """
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "I;16" or im.mode == "I":
                arr = np.asarray(im)
                arr = (arr.astype(np.float64) * (255.0 / max(int(arr.max()), 1))).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
            return np.ascontiguousarray(np.asarray(im.convert("RGB")))
    except Exception as exc:
        raise ValueError(
            f"cannot read image file {path}: {exc}; re-export it as PNG or JPEG, or remove it"
        ) from exc


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask file to (H, W) integer values exactly as stored (no palette conversion).

    Single-channel files (L, P, I, I;16, 1) are read as stored. RGB(A) files are accepted when
    all colour channels are equal (grey masks saved as RGB); colour-coded masks are rejected.

    Raises:
        ValueError: unreadable file, or a colour mask; the message names the file and the fix.
    """
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except Exception as exc:
        raise ValueError(
            f"cannot read mask file {path}: {exc}; re-export it as a single-channel PNG"
        ) from exc
    if mode == "1":
        return arr.astype(np.uint8)
    if arr.ndim == 3:
        rgb = arr[:, :, :3]
        if not (np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2])):
            if mode == "LA":
                return np.ascontiguousarray(arr[:, :, 0])
            raise ValueError(
                f"mask {path} is a colour ({mode}) image; save masks as single-channel PNGs "
                f"holding one class index (or one value of data.folder.mask_values) per pixel"
            )
        return np.ascontiguousarray(rgb[:, :, 0])
    return arr


def files_by_stem(directory: Path, what: str) -> dict[str, Path]:
    """Map file stem -> path for every image file in ``directory`` (not recursive).

    Raises:
        ValueError: two files share a stem (e.g. ``a.png`` and ``a.jpg``).
    """
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in found:
            raise ValueError(
                f"{what} {found[path.stem]} and {path} share the stem {path.stem!r}; "
                f"keep one file per stem in {directory}"
            )
        found[path.stem] = path
    return found


def mask_dtype(num_classes: int, ignore_index: int) -> type:
    """Smallest dtype holding every class index and ``ignore_index``: uint8, else int32."""
    if 0 <= ignore_index <= 255 and num_classes <= 256:
        return np.uint8
    return np.int32
