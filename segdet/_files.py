"""Finding, reading and writing image files for inference."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segdet._atomic import atomic_write_bytes
from segdet._images import IMAGE_EXTENSIONS


def collect_image_paths(source: str | os.PathLike) -> list[Path]:
    """The image files to run on.

    Args:
        source: an image file; a folder (its images with an extension from
            :data:`IMAGE_EXTENSIONS`, not recursive, sorted by name); or a ``.txt`` list with one
            path per line (relative paths are taken from the list's folder; blank lines and lines
            starting with ``#`` are skipped).

    Returns:
        The image paths.

    Raises:
        ValueError: ``source`` does not exist, a listed file is missing, or no image was found.

    Example:
        >>> collect_image_paths("data/val/images")[:2]
        [PosixPath('data/val/images/0000.png'), PosixPath('data/val/images/0001.png')]
    """
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise ValueError(
                f"no images in folder {source} (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                "point --input at a folder of images, an image file or a .txt list"
            )
        return paths
    if not source.is_file():
        raise ValueError(f"input {source} does not exist; give an image file, a folder of images or a .txt list")
    if source.suffix.lower() in IMAGE_EXTENSIONS:
        return [source]
    if source.suffix.lower() != ".txt":
        raise ValueError(f"input {source} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a .txt list of paths")
    paths = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line) if Path(line).is_absolute() else source.parent / line
        if not path.is_file():
            raise ValueError(f"{source}, line {number}: image {path} does not exist")
        paths.append(path)
    if not paths:
        raise ValueError(f"list {source} names no image; write one image path per line")
    return paths


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write (H, W) uint8/uint16 or (H, W, 3) uint8 RGB as PNG, atomically."""
    import cv2

    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG (array {array.shape} {array.dtype})")
    return atomic_write_bytes(path, encoded.tobytes())
