"""What a segmentation dataset is: the figures ``segdet init`` plans from (as nnU-Net's fingerprint).

Read from every file header: the image sizes and colour modes of both splits. Read from a bounded
sample of the training pairs (all of them up to ``max_files``, else a seeded random choice), decoded
exactly as training decodes them (:func:`segdet._images.read_image`: RGBA and grey become RGB):

- per stored mask value: its pixels, the masks holding it, its pixels in the top/bottom/left/right
  halves, and the equivalent diameter ``sqrt(4 * area / pi)`` of each of its 8-connected
  components (OpenCV's ``connectedComponentsWithStats``);
- the per-channel mean and standard deviation of the images in ``[0, 1]`` (every pixel counts the
  same; exact integer sums from per-channel histograms, so the figure does not drift with the
  number of pixels);
- the mean squared difference of neighbouring grey values down the rows and along the columns
  (which way the picture's edges run).

Values are kept per *stored* value, before any mapping to classes: the mapping proposed from them
(:func:`segdet.planner.plan.propose_mask_values`) is one-to-one, so these are the class figures.

Example:
    >>> fp = fingerprint(find_layout("data/nuclei"), max_files=200)  # doctest: +SKIP
    >>> fp.typical_size, sorted(fp.value_pixels)  # doctest: +SKIP
    ((256, 320), [0, 255])
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segdet._images import read_image
from segdet.data import read_mask

from .layout import DataLayout

__all__ = ["MAX_FILES", "MAX_MASK_VALUES", "Fingerprint", "fingerprint", "sample_indices"]

#: training pairs decoded at most (the rest are known from their headers only)
MAX_FILES = 256
#: a semantic mask holds at most this many different values (more looks like instance ids)
MAX_MASK_VALUES = 64


@dataclass(frozen=True)
class Fingerprint:
    """Measured figures of a dataset (see the module docstring for how each is read).

    Attributes:
        layout: the pairs (:class:`~segdet.planner.layout.DataLayout`).
        train_sizes: (height, width) of every training image, in stem order.
        val_sizes: (height, width) of every validation image, in stem order (the loader's order).
        modes: PIL colour mode -> number of images (both splits).
        read: training pairs decoded.
        value_pixels: stored mask value -> pixels holding it, over the pairs read.
        value_masks: stored mask value -> masks holding it.
        value_halves: stored mask value -> its pixels in the (top, bottom, left, right) half of
            the mask (the middle row or column of an odd size counts in neither).
        diameters: stored mask value -> equivalent diameter in pixels of each 8-connected
            component of that value.
        mean: per-channel (R, G, B) mean of the images read, in ``[0, 1]``.
        std: per-channel standard deviation (population), in ``[0, 1]``.
        edge_energy: mean squared difference of neighbouring grey values (0..255) down the rows
            (horizontal edges) and along the columns (vertical edges).
        read_s: seconds to decode one pair (image and mask), on average.
    """

    layout: DataLayout
    train_sizes: tuple[tuple[int, int], ...]
    val_sizes: tuple[tuple[int, int], ...]
    modes: dict[str, int]
    read: int
    value_pixels: dict[int, int]
    value_masks: dict[int, int]
    value_halves: dict[int, tuple[int, int, int, int]]
    diameters: dict[int, tuple[float, ...]]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    edge_energy: tuple[float, float]
    read_s: float

    @property
    def typical_size(self) -> tuple[int, int]:
        """Median height and median width of the training images (the lower median of an even count)."""
        return _median_size(self.train_sizes)

    @property
    def min_size(self) -> tuple[int, int]:
        """Smallest height and smallest width over both splits (not necessarily one image)."""
        sizes = self.train_sizes + self.val_sizes
        return min(h for h, _ in sizes), min(w for _, w in sizes)

    @property
    def max_size(self) -> tuple[int, int]:
        """Largest height and largest width over both splits."""
        sizes = self.train_sizes + self.val_sizes
        return max(h for h, _ in sizes), max(w for _, w in sizes)

    @property
    def values(self) -> list[int]:
        """The stored mask values found, sorted."""
        return sorted(self.value_pixels)


def sample_indices(count: int, limit: int, seed: int = 0) -> list[int]:
    """Indices of the items to read: all when ``count <= limit``, else ``limit`` drawn without replacement.

    Example:
        >>> sample_indices(5, 10)
        [0, 1, 2, 3, 4]
        >>> len(sample_indices(1000, 10)), sample_indices(1000, 10) == sample_indices(1000, 10)
        (10, True)
    """
    if count <= limit:
        return list(range(count))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(count, size=limit, replace=False))


def fingerprint(layout: DataLayout, max_files: int = MAX_FILES, seed: int = 0) -> Fingerprint:
    """Measure ``layout``'s pairs (headers of all, pixels of up to ``max_files`` training pairs).

    Raises:
        ValueError: an unreadable image or mask, a colour mask, a mask with more than
            :data:`MAX_MASK_VALUES` values, or a decoded mask whose size is not its image's; the
            message names the file and the fix.
    """
    if max_files < 1:
        raise ValueError(f"max_files must be at least 1, got {max_files}")
    from PIL import Image

    modes: Counter[str] = Counter()
    sizes: dict[Path, tuple[int, int]] = {}
    for path in layout.train_images + layout.val_images:
        try:
            with Image.open(path) as im:
                modes[im.mode] += 1
                sizes[path] = (im.size[1], im.size[0])
        except Exception as exc:  # Pillow raises several types for missing or broken files
            raise ValueError(
                f"cannot read image file {path}: {exc}; re-export it as PNG or JPEG, or remove it"
            ) from exc

    pixels: Counter[int] = Counter()
    masks_with: Counter[int] = Counter()
    halves: dict[int, np.ndarray] = {}
    diameters: dict[int, list[float]] = {}
    levels = np.zeros((3, 256), np.int64)  # per-channel histograms of the images read
    edges = np.zeros(2, np.float64)
    edge_count = np.zeros(2, np.int64)
    chosen = sample_indices(len(layout.train_images), max_files, seed)
    begin = time.perf_counter()
    for i in chosen:
        image = read_image(layout.train_images[i])
        mask = read_mask(layout.train_masks[i])
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"mask {layout.train_masks[i]} is {mask.shape[0]}x{mask.shape[1]} but image "
                f"{layout.train_images[i]} is {image.shape[0]}x{image.shape[1]}; resize the mask "
                f"with nearest-neighbour interpolation to the image size"
            )
        for c in range(3):
            levels[c] += np.bincount(image[:, :, c].ravel(), minlength=256)
        grey = image.astype(np.float32).mean(axis=2)
        for axis in (0, 1):
            d = np.diff(grey, axis=axis)
            edges[axis] += float(np.square(d, dtype=np.float64).sum())
            edge_count[axis] += d.size
        _add_mask(mask, layout.train_masks[i], pixels, masks_with, halves, diameters)
    read_s = (time.perf_counter() - begin) / max(len(chosen), 1)

    total = levels.sum(axis=1)
    scale = np.arange(256, dtype=np.float64)
    mean = (levels * scale).sum(axis=1) / total
    var = (levels * scale**2).sum(axis=1) / total - mean**2
    return Fingerprint(
        layout=layout,
        train_sizes=tuple(sizes[p] for p in layout.train_images),
        val_sizes=tuple(sizes[p] for p in layout.val_images),
        modes=dict(sorted(modes.items())),
        read=len(chosen),
        value_pixels=dict(sorted(pixels.items())),
        value_masks=dict(sorted(masks_with.items())),
        value_halves={v: tuple(int(x) for x in h) for v, h in sorted(halves.items())},
        diameters={v: tuple(d) for v, d in sorted(diameters.items())},
        mean=tuple(float(m / 255.0) for m in mean),
        std=tuple(float(math.sqrt(max(v, 0.0)) / 255.0) for v in var),
        edge_energy=(float(edges[0] / max(edge_count[0], 1)), float(edges[1] / max(edge_count[1], 1))),
        read_s=read_s,
    )


def _add_mask(mask: np.ndarray, path: Path, pixels, masks_with, halves, diameters) -> None:
    import cv2

    values, counts = np.unique(mask, return_counts=True)
    if len(values) > MAX_MASK_VALUES:
        raise ValueError(
            f"mask {path} holds {len(values)} different values; a semantic mask holds one class index per "
            f"pixel (at most {MAX_MASK_VALUES} classes here); if {path.parent} holds instance ids, point "
            "segdet init at a folder of class masks"
        )
    h, w = mask.shape
    top, bottom, left, right = slice(0, h // 2), slice(h - h // 2, h), slice(0, w // 2), slice(w - w // 2, w)
    for value, count in zip(values.tolist(), counts.tolist()):
        inside = mask == value
        pixels[value] += count
        masks_with[value] += 1
        part = np.array(
            [inside[top].sum(), inside[bottom].sum(), inside[:, left].sum(), inside[:, right].sum()], np.int64
        )
        halves[value] = halves.get(value, np.zeros(4, np.int64)) + part
        _, _, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        diameters.setdefault(value, []).extend(np.sqrt(4.0 * areas / math.pi).tolist())


def _median_size(sizes: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    heights = sorted(h for h, _ in sizes)
    widths = sorted(w for _, w in sizes)
    mid = (len(sizes) - 1) // 2
    return heights[mid], widths[mid]
