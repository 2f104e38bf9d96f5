"""Mosaic: an N x N grid of samples on one canvas, exact for masks, instance masks and boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ._mosaic_layout import FITS, TilePlacement, plan_mosaic
from ._mosaic_tiles import keep_boxes, tile_boxes, tile_image, tile_instances, tile_nearest
from ._sample import (
    check_classes,
    check_label_channels,
    check_rng,
    check_sources,
    mix_dtype,
    mix_label_vectors,
    soft_mask,
)

__all__ = ["Mosaic"]

_INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_LANCZOS4)


class Mosaic:
    """``grid x grid`` samples tiled on one canvas (YOLOv4 Mosaic for 2x2; RICAP with ``fit="none"``).

    Geometry. The canvas is ``size = (H, W)``. A centre ``(cy, cx)`` is drawn uniformly from
    ``center_range`` per axis; inner grid line ``k`` (1..grid-1) sits at
    ``round((k + 2 c - 1) * L / grid)`` (clipped to the canvas), so for 2x2 the split is at
    ``c * L`` and a larger grid shifts by up to one cell. Cells are filled row-major by
    ``samples`` in a random order (``shuffle=True``) or in the given order. Each tile keeps
    its aspect ratio: ``"cover"`` fills its cell with the largest crop of the tile that has the
    cell's aspect ratio (rounded to whole source pixels), taken at a random source offset and
    resized to the cell; ``"contain"`` scales the whole tile to fit inside the cell, at a random
    position; ``"none"`` keeps the tile's size (RICAP): cropped at a random offset when larger
    than the cell, placed at a random position when smaller. Canvas no tile covers gets
    ``fill`` (image), ``mask_fill`` (semantic mask) and 0 (instance masks).

    Targets. The crop is resampled with ``interpolation`` by ``cv2.resize`` (uint8 stays
    uint8, float stays float32; mixed dtypes give float32); only the visible pixels are
    computed. Semantic and instance masks use nearest neighbour with pixel centres aligned:
    when ``c`` source pixels from ``c0`` span ``n`` canvas pixels, canvas pixel ``t`` reads
    source pixel ``c0 + floor((t + 1/2) * c / n)``. A soft mask ``(H, W, C)`` float32
    gets, on empty canvas, the one-hot vector of ``mask_fill`` when ``0 <= mask_fill < C`` and
    the all-zero (unlabelled) vector otherwise; a hard mask mixed with soft masks is one-hot
    encoded with ``ignore_index`` as all-zero. Boxes are scaled, shifted and clipped to the
    part of their cell the tile fills. A box is kept when its clipped area is positive, at least
    ``min_area`` pixels and at least ``min_visibility`` of the area of the whole scaled box
    before any crop (all in canvas pixels), both its sides are at least ``min_side`` pixels and
    ``max(w / h, h / w) <= max_aspect_ratio``. With instance masks, visibility is counted on
    mask pixels instead (visible pixels over the pixels of the whole scaled mask, that is the
    nearest-neighbour grid extended over the whole source; an instance whose mask vanishes when
    scaled down is dropped, one whose mask was empty to begin with is judged by its box) and
    the box is also tightened to the visible mask. One keep-index selects ``bboxes``,
    ``labels``, ``masks`` and ``weights`` (``weights`` appear when any source has them, 1 where
    missing).
    ``label_vector`` becomes the mean of the sources' vectors weighted by the pixels each
    tile fills. Other keys are copied from ``samples[0]``.

    A 1x1 mosaic with ``size`` equal to the image size (or ``None``) is the identity.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        grid: cells per side; ``num_sources = grid * grid``.
        size: ``(H, W)`` of the output; ``None`` keeps the primary's size.
        center_range: ``(lo, hi)`` fractions in ``[0, 1]`` for the grid centre.
        fit: ``"cover"``, ``"contain"`` or ``"none"``.
        shuffle: assign samples to cells in a random order.
        fill: image value of empty canvas, a scalar or one value per channel.
        mask_fill: semantic mask value of empty canvas; default ``ignore_index``, else 0.
        ignore_index: unlabelled value of hard semantic masks.
        num_classes: when given, hard masks must hold classes ``0..num_classes-1`` or
            ``ignore_index``, and soft masks this many channels.
        min_visibility: fraction in ``[0, 1]``.
        min_area: pixels.
        min_side: pixels.
        max_aspect_ratio: ``>= 1``.
        interpolation: OpenCV flag for the image.

    Example:
        >>> tiles = [{"image": np.full((32, 48, 3), i, np.uint8), "mask": np.full((32, 48), i),
        ...           "bboxes": np.array([[4, 4, 20, 20]], np.float32), "labels": np.array([i])}
        ...          for i in range(4)]
        >>> out = Mosaic(size=(64, 64), min_visibility=0.3)(tiles, np.random.default_rng(0))
        >>> out["image"].shape, out["mask"].shape, out["bboxes"].shape[1]
        ((64, 64, 3), (64, 64), 4)
    """

    def __init__(
        self,
        p: float = 0.5,
        grid: int = 2,
        size: tuple[int, int] | None = None,
        center_range: tuple[float, float] = (0.25, 0.75),
        fit: str = "cover",
        shuffle: bool = True,
        fill: float | Sequence[float] = 0,
        mask_fill: int | None = None,
        ignore_index: int | None = 255,
        num_classes: int | None = None,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        min_side: float = 0.0,
        max_aspect_ratio: float = math.inf,
        interpolation: int = cv2.INTER_LINEAR,
    ):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"Mosaic p must lie in [0, 1], got {p}")
        if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
            raise ValueError(f"Mosaic grid must be an int >= 1 (2 for the classic 2x2), got {grid!r}")
        if size is not None:
            if len(size) != 2 or any(int(v) != v or v < 1 for v in size):
                raise ValueError(f"Mosaic size must be (height, width) positive ints, got {size!r}")
            size = (int(size[0]), int(size[1]))
        lo, hi = (float(v) for v in center_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"Mosaic center_range must satisfy 0 <= lo <= hi <= 1, got {center_range!r}")
        if fit not in FITS:
            raise ValueError(f"Mosaic fit must be one of {FITS}, got {fit!r}")
        if not 0.0 <= float(min_visibility) <= 1.0:
            raise ValueError(
                f"Mosaic min_visibility is a fraction of the box before any crop and "
                f"must lie in [0, 1], got {min_visibility}"
            )
        for name, value in (("min_area", min_area), ("min_side", min_side)):
            if not float(value) >= 0:
                raise ValueError(f"Mosaic {name} is in pixels and must be >= 0, got {value}")
        if not float(max_aspect_ratio) >= 1:
            raise ValueError(f"Mosaic max_aspect_ratio must be >= 1 (inf keeps all), got {max_aspect_ratio}")
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"Mosaic interpolation must be a cv2.INTER_* flag among {_INTERPOLATIONS}, got {interpolation!r}"
            )
        self.p = float(p)
        self.grid = int(grid)
        self.size = size
        self.center_range = (lo, hi)
        self.fit = fit
        self.shuffle = bool(shuffle)
        self.fill = fill
        self.ignore_index = ignore_index
        self.mask_fill = mask_fill if mask_fill is not None else (ignore_index if ignore_index is not None else 0)
        self.num_classes = num_classes
        self.min_visibility = float(min_visibility)
        self.min_area = float(min_area)
        self.min_side = float(min_side)
        self.max_aspect_ratio = float(max_aspect_ratio)
        self.interpolation = int(interpolation)

    @property
    def num_sources(self) -> int:
        """Samples per call: ``grid * grid``."""
        return self.grid * self.grid

    def layout(self, shapes: Sequence[tuple[int, int]], rng: np.random.Generator) -> list[TilePlacement]:
        """Draws where every tile goes (``__call__`` applies these placements with :meth:`apply`).

        Args:
            shapes: ``(h, w)`` of each source image, primary first (``num_sources`` of them).
            rng: draws, in order, the cell order (when ``shuffle``), the centre ``(cy, cx)`` and
                each tile's row and column offset.

        Returns:
            One :class:`TilePlacement` per cell, row-major.
        """
        check_rng(rng, f"Mosaic(grid={self.grid})")
        shapes = [(int(h), int(w)) for h, w in shapes]
        size = self.size or shapes[0]
        n = self.num_sources
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        return plan_mosaic(shapes, size, self.grid, self._center(rng), self.fit, order, rng)

    def _center(self, rng: np.random.Generator) -> tuple[float, float]:
        """The grid centre ``(cy, cx)``: uniform over ``center_range`` per axis."""
        lo, hi = self.center_range
        return float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))

    def __call__(self, samples: Sequence[dict], rng: np.random.Generator) -> dict:
        """Mixes ``num_sources`` samples (primary first); returns a new sample, inputs untouched.

        Raises:
            TypeError: ``rng`` is not a ``numpy.random.Generator``.
            ValueError: not ``num_sources`` samples, or samples outside the contract (see
                :mod:`augment.sample`).
        """
        checked = self._check(samples)
        return self._apply(checked, self.layout([s["image"].shape[:2] for s in checked], rng))

    def apply(self, samples: Sequence[dict], placements: Sequence[TilePlacement]) -> dict:
        """Builds the mosaic of ``samples`` for given placements (see :meth:`layout`)."""
        return self._apply(self._check(samples), placements)

    def _apply(self, samples: list[dict], placements: Sequence[TilePlacement]) -> dict:
        size = self.size or samples[0]["image"].shape[:2]
        first = samples[0]
        out = {k: v for k, v in first.items() if k not in ("weights",)}
        out["image"] = self._image(samples, placements, size)
        if "mask" in first:
            out["mask"] = self._mask(samples, placements, size)
        if "bboxes" in first:
            out.update(self._instances(samples, placements, size))
        if "label_vector" in first:
            out["label_vector"] = self._label_vector(samples, placements)
        return out

    def _check(self, samples: Sequence[dict]) -> list[dict]:
        checked = check_sources(samples, self.num_sources, f"Mosaic(grid={self.grid})", same_size=False)
        for i, s in enumerate(checked):
            if "keypoints" in s:
                raise ValueError(
                    f"Mosaic source {i} has 'keypoints', which Mosaic does not move; drop them before mixing"
                )
            if s["image"].dtype not in (np.uint8, np.float32, np.float64):
                raise TypeError(f"Mosaic source {i} image is {s['image'].dtype}; use uint8 or float32")
        return checked

    def _image(self, samples, placements, size) -> np.ndarray:
        first = samples[0]["image"]
        dtype = mix_dtype(*[s["image"] for s in samples])
        channels = first.shape[2:]
        fill = np.asarray(self.fill, dtype=np.float64).reshape(-1)
        if fill.size not in (1, int(np.prod(channels)) if channels else 1):
            raise ValueError(
                f"Mosaic fill has {fill.size} values but images have {channels} channels; "
                "give one value or one per channel"
            )
        canvas = np.empty(tuple(size) + channels, dtype=dtype)
        if not all(_fills_cell(p) for p in placements):
            canvas[...] = fill.reshape((-1,) if channels else ()) if fill.size > 1 else fill[0]
        for p in placements:
            if p.is_empty:
                continue
            vy0, vx0, vy1, vx1 = p.visible
            canvas[vy0:vy1, vx0:vx1] = tile_image(samples[p.source]["image"], p, self.interpolation)
        return canvas

    def _mask(self, samples, placements, size) -> np.ndarray:
        masks = [s["mask"] for s in samples]
        check_classes(masks, self.num_classes, self.ignore_index, "Mosaic")
        label_channels = check_label_channels(masks, f"Mosaic(grid={self.grid})", self.num_classes)
        if label_channels or not any(m.ndim == 3 for m in masks):  # hard: class indices or per-class 0/1 channels
            dtype = np.result_type(*[m.dtype for m in masks])
            if np.issubdtype(dtype, np.integer) and not (np.iinfo(dtype).min <= self.mask_fill <= np.iinfo(dtype).max):
                raise ValueError(
                    f"Mosaic mask_fill={self.mask_fill} does not fit the masks' dtype "
                    f"{dtype}; pick a mask_fill/ignore_index the dtype can hold"
                )
            canvas = np.empty(tuple(size) + masks[0].shape[2:], dtype=dtype)
            if not all(_fills_cell(p) for p in placements):
                canvas[...] = self.mask_fill
        else:
            channels = {m.shape[2] for m in masks if m.ndim == 3}
            if len(channels) > 1 or (self.num_classes is not None and channels != {self.num_classes}):
                raise ValueError(
                    f"Mosaic: soft masks have {sorted(channels)} channels, "
                    f"num_classes={self.num_classes}; give them one class count"
                )
            c = channels.pop()
            masks = [soft_mask(m, c, self.ignore_index, f"Mosaic source {i}") for i, m in enumerate(masks)]
            canvas = np.zeros(tuple(size) + (c,), dtype=np.float32)
            if 0 <= self.mask_fill < c:
                canvas[..., self.mask_fill] = 1.0
        for p in placements:
            if not p.is_empty:
                vy0, vx0, vy1, vx1 = p.visible
                canvas[vy0:vy1, vx0:vx1] = tile_nearest(masks[p.source], p)
        return canvas

    def _instances(self, samples, placements, size) -> dict:
        boxes, labels, weights, inst = [], [], [], []
        with_masks = "masks" in samples[0]
        with_weights = any("weights" in s for s in samples)
        for p in placements:
            s = samples[p.source]
            clipped, visible, full = tile_boxes(s["bboxes"], p)
            if with_masks and len(clipped) and not p.is_empty:
                window, visible_px, full_px, clipped, by_mask = tile_instances(s["masks"], p, clipped)
                visible = np.where(by_mask, visible_px, visible)
                full = np.where(by_mask, full_px, full)
            placed, keep = keep_boxes(
                clipped, visible, full, self.min_visibility, self.min_area, self.min_side, self.max_aspect_ratio
            )
            if with_masks and keep.any():
                vy0, vx0, vy1, vx1 = p.visible
                pasted = np.zeros((int(keep.sum()),) + tuple(size), dtype=s["masks"].dtype)
                pasted[:, vy0:vy1, vx0:vx1] = window[keep]
                inst.append(pasted)
            boxes.append(placed[keep])
            labels.append(s["labels"][keep])
            weights.append(s.get("weights", np.ones(len(keep), np.float32))[keep])
        out = {
            "bboxes": np.concatenate(boxes).astype(np.float32).reshape(-1, 4),
            "labels": np.concatenate(labels).astype(np.int64),
        }
        if with_weights:
            out["weights"] = np.concatenate(weights).astype(np.float32)
        if with_masks:
            dtype = np.result_type(*[s["masks"].dtype for s in samples])
            out["masks"] = (
                np.concatenate(inst).astype(dtype, copy=False) if inst else np.zeros((0,) + tuple(size), dtype=dtype)
            )
        return out

    def _label_vector(self, samples, placements) -> np.ndarray:
        area = np.zeros(len(samples))
        for p in placements:
            vy0, vx0, vy1, vx1 = p.visible
            area[p.source] += max(0, vy1 - vy0) * max(0, vx1 - vx0)
        return mix_label_vectors([s["label_vector"] for s in samples], area / area.sum(), "Mosaic")

    def __repr__(self) -> str:
        return (
            f"Mosaic(p={self.p}, grid={self.grid}, size={self.size}, center_range={self.center_range}, "
            f"fit={self.fit!r}, min_visibility={self.min_visibility}, min_area={self.min_area})"
        )


def _fills_cell(p: TilePlacement) -> bool:
    return p.visible == p.cell
