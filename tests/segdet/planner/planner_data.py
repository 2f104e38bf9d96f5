"""Generated image/mask folders with known sizes, values and objects, for the planner tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def draw_discs(shape: tuple[int, int], discs: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(H, W) uint8 mask: 0 everywhere, ``value`` inside each disc (cy, cx, radius, value)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, np.uint8)
    for cy, cx, r, value in discs:
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value
    return mask


def random_discs(rng: np.random.Generator, shape, count: int, radii, values=(255,)) -> list[tuple]:
    """``count`` discs of random centre, radius in ``radii`` and value from ``values``, kept inside the image."""
    h, w = shape
    out = []
    for _ in range(count):
        r = int(rng.integers(radii[0], radii[1] + 1))
        out.append(
            (
                int(rng.integers(r, max(r + 1, h - r))),
                int(rng.integers(r, max(r + 1, w - r))),
                r,
                int(rng.choice(values)),
            )
        )
    return out


def write_pair(root: Path, stem: str, image: np.ndarray | None, mask: np.ndarray | None, mode: str | None = None):
    """Write ``root/images/<stem>.png`` (in PIL ``mode`` when given) and ``root/masks/<stem>.png``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    if image is not None:
        pic = Image.fromarray(image)
        if mode is not None:
            pic = pic.convert(mode)
        pic.save(root / "images" / f"{stem}.png")
    if mask is not None:
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")


def make_folder(
    root: Path,
    count: int,
    *,
    shape=(64, 64),
    radii=(3, 6),
    discs=4,
    values=(255,),
    seed: int = 0,
    mode: str | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``count`` pairs of noise images with disc masks in ``root``; returns stem -> (image, mask) as written."""
    rng = np.random.default_rng(seed)
    pairs = {}
    for i in range(count):
        size = shape[i % len(shape)] if isinstance(shape[0], tuple) else shape
        mask = draw_discs(size, random_discs(rng, size, discs, radii, values))
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        image[mask > 0] //= 2  # the objects are darker, so a model can find them
        stem = f"img{i:03d}"
        write_pair(root, stem, image, mask, mode)
        pairs[stem] = (image, mask)
    return pairs
