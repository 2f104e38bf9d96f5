"""Reading images and masks from disk with errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segdet._images import IMAGE_EXTENSIONS


def _pil():
    from PIL import Image

    return Image


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
        raise ValueError(f"cannot read mask file {path}: {exc}; re-export it as a single-channel PNG") from exc
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
