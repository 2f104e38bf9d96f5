"""ResizeMix: the whole partner, shrunk into a rectangle of the primary, exact for every target.

Qin et al. 2020 (ResizeMix) paste the partner image resized, not a crop of it, so the pasted part
always holds the partner's objects whole. The rectangle has the primary's aspect ratio and a
side ratio ``tau ~ U(scale)``; the label weight is the exact pasted pixel fraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ._mosaic_layout import TilePlacement
from ._mosaic_tiles import keep_boxes, tile_boxes, tile_image, tile_instances, tile_nearest
from ._paste import paste
from ._sample import check_classes, check_count, check_rng, check_sources

__all__ = ["ResizeMix", "resizemix"]


def _check_filter(name: str, min_area: float) -> None:
    if not float(min_area) >= 0:
        raise ValueError(f"{name}: min_area is in pixels and must be >= 0, got {min_area}")


def _canvas(partner: dict, placement: TilePlacement, size: tuple[int, int], min_area: float) -> dict:
    """The partner resized onto ``placement.visible`` of a ``size`` canvas (nothing outside it is shown)."""
    h, w = size
    vy0, vx0, vy1, vx1 = placement.visible
    image = partner["image"]
    canvas = {"image": np.zeros((h, w) + image.shape[2:], dtype=image.dtype)}
    canvas["image"][vy0:vy1, vx0:vx1] = tile_image(image, placement, cv2.INTER_AREA)
    if "mask" in partner:
        mask = partner["mask"]
        canvas["mask"] = np.zeros((h, w) + mask.shape[2:], dtype=mask.dtype)
        canvas["mask"][vy0:vy1, vx0:vx1] = tile_nearest(mask, placement)
    if "bboxes" in partner:
        boxes, visible, full = tile_boxes(partner["bboxes"], placement)
        masks = partner.get("masks")
        if masks is not None and len(boxes):
            window, visible_px, full_px, boxes, by_mask = tile_instances(masks, placement, boxes)
            visible = np.where(by_mask, visible_px, visible)
            full = np.where(by_mask, full_px, full)
        placed, keep = keep_boxes(boxes, visible, full, 0.0, min_area, 0.0, math.inf)
        canvas["bboxes"] = placed[keep]
        for key in ("labels", "weights"):
            if key in partner:
                canvas[key] = np.asarray(partner[key])[keep]
        if masks is not None:
            pasted = np.zeros((int(keep.sum()), h, w), dtype=masks.dtype)
            if len(boxes):
                pasted[:, vy0:vy1, vx0:vx1] = window[keep]
            canvas["masks"] = pasted
    if "label_vector" in partner:
        canvas["label_vector"] = partner["label_vector"]
    return canvas


def resizemix(
    primary: dict,
    partner: dict,
    rect: tuple[int, int, int, int],
    *,
    min_visibility: float = 0.0,
    min_area: float = 0.0,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> tuple[dict, float]:
    """Pastes the whole ``partner``, resized to ``rect``, onto ``primary``.

    Inside ``rect = (y0, x0, y1, x1)`` (end-exclusive) the image is the partner resized with
    ``cv2.INTER_AREA`` (an area average when shrinking), the semantic mask and instance masks
    the partner's nearest neighbour at pixel centres (``src = floor((t + 1/2) * n / m)``), and
    the partner's boxes are scaled exactly into the rectangle, tightened to their resized
    instance masks when there are any; a resized partner box below ``min_area`` pixels is
    dropped. The primary's pixels, boxes and instances lose what the rectangle covers, with
    CutMix's rules (``min_visibility``, ``min_area``); the primary's instances come first and
    ``label_vector`` is mixed by the exact ``lam``. The partner may have another size than the
    primary (it is resized anyway), but the same channels and targets.

    Args:
        primary: sample dict (see :mod:`augment.sample`).
        partner: sample dict with the same target keys.
        rect: the rectangle of the primary the partner fills, with at least one pixel.
        min_visibility: fraction in [0, 1] of a primary box that must stay visible.
        min_area: pixels a box must keep (primary boxes after the cut, partner boxes resized).
        num_classes: hard masks must hold classes ``0..num_classes-1`` or ``ignore_index``.
        ignore_index: unlabelled value of hard semantic masks.

    Returns:
        ``(sample, lam)``: the mixed sample and the exact fraction of pixels from the primary.

    Example:
        >>> a = {"image": np.zeros((4, 4, 3), np.uint8), "mask": np.zeros((4, 4), np.int64)}
        >>> b = {"image": np.full((8, 8, 3), 9, np.uint8), "mask": np.ones((8, 8), np.int64)}
        >>> out, lam = resizemix(a, b, (0, 0, 2, 2))
        >>> lam, out["mask"][:2, :3].tolist()
        (0.75, [[1, 1, 0], [1, 1, 0]])
    """
    if not 0.0 <= float(min_visibility) <= 1.0:
        raise ValueError(f"ResizeMix: min_visibility must lie in [0, 1], got {min_visibility}")
    _check_filter("ResizeMix", min_area)
    primary, partner = check_sources([primary, partner], 2, "ResizeMix", same_size=False)
    h, w = primary["image"].shape[:2]
    y0, x0, y1, x1 = (int(v) for v in rect)
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(f"ResizeMix rect {tuple(rect)} (y0, x0, y1, x1) must hold a pixel inside the {h}x{w} image")
    if "mask" in primary:  # on the partner's own mask: the resized one may miss a bad pixel
        check_classes([primary["mask"], partner["mask"]], num_classes, ignore_index, "ResizeMix")
    ph, pw = partner["image"].shape[:2]
    placement = TilePlacement(source=1, cell=(y0, x0, y1, x1), crop=(0, 0, ph, pw), visible=(y0, x0, y1, x1))
    canvas = _canvas(partner, placement, (h, w), float(min_area))
    region = np.zeros((h, w), dtype=bool)
    region[y0:y1, x0:x1] = True
    return paste(
        primary,
        canvas,
        region,
        min_visibility=float(min_visibility),
        min_area=float(min_area),
        num_classes=num_classes,
        ignore_index=ignore_index,
        name="ResizeMix",
    )


class ResizeMix:
    """ResizeMix: the partner resized by ``tau ~ U(scale)`` per side and pasted at a uniform position.

    The rectangle is ``round(tau * H)`` by ``round(tau * W)`` pixels (at least one), placed where
    it fits entirely; see :func:`resizemix` for how each target is mixed. The paper's default
    range is ``(0.1, 0.8)``.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        scale: ``(low, high)`` side ratios, ``0 < low <= high <= 1``.
        min_visibility: keep a cut primary box when at least this fraction of it stays visible.
        min_area: keep a box when at least this many pixels stay visible (or remain after resizing).
        num_classes: number of semantic classes (hard masks: values checked; soft masks: channels).
        ignore_index: unlabelled value of hard semantic masks.

    Example:
        >>> mixer = ResizeMix(scale=(0.25, 0.5))
        >>> a = {"image": np.zeros((32, 48, 3), np.uint8), "bboxes": np.zeros((0, 4)), "labels": []}
        >>> mixer([a, a], np.random.default_rng(0))["image"].shape
        (32, 48, 3)
    """

    num_sources = 2

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.1, 0.8),
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        num_classes: int | None = None,
        ignore_index: int | None = None,
    ):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"ResizeMix p must lie in [0, 1], got {p}")
        try:
            low, high = (float(v) for v in scale)
        except (TypeError, ValueError):
            raise ValueError(f"ResizeMix scale must be two side ratios (low, high), got {scale!r}") from None
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"ResizeMix scale must satisfy 0 < low <= high <= 1, got {tuple(scale)}")
        if not 0.0 <= float(min_visibility) <= 1.0:
            raise ValueError(f"ResizeMix min_visibility must lie in [0, 1], got {min_visibility}")
        _check_filter("ResizeMix", min_area)
        self.p = float(p)
        self.scale = (low, high)
        self.min_visibility = float(min_visibility)
        self.min_area = float(min_area)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def rect(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """A rectangle ``(y0, x0, y1, x1)`` drawn as the class docstring says."""
        tau = float(rng.uniform(*self.scale))
        rh = min(height, max(1, int(round(height * tau))))
        rw = min(width, max(1, int(round(width * tau))))
        top = int(rng.integers(0, height - rh + 1))
        left = int(rng.integers(0, width - rw + 1))
        return top, left, top + rh, left + rw

    def mix(self, samples: Sequence[dict], rng: np.random.Generator) -> tuple[dict, float]:
        """Like ``__call__`` but also returns the exact ``lam``."""
        check_count(samples, 2, "ResizeMix")
        check_rng(rng, "ResizeMix")
        image = samples[0]["image"] if isinstance(samples[0], dict) and "image" in samples[0] else None
        if not isinstance(image, np.ndarray) or image.ndim < 2:
            raise ValueError("ResizeMix source 0 needs an 'image' array of shape (H, W, C)")
        return resizemix(
            samples[0],
            samples[1],
            self.rect(*image.shape[:2], rng),
            min_visibility=self.min_visibility,
            min_area=self.min_area,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
        )

    def __call__(self, samples: Sequence[dict], rng: np.random.Generator) -> dict:
        """Mixes ``samples = [primary, partner]``; returns a new sample, inputs are untouched.

        Raises:
            TypeError: ``rng`` is not a ``numpy.random.Generator``.
            ValueError: not 2 samples, or samples outside the contract (see :mod:`augment.sample`).
        """
        return self.mix(samples, rng)[0]

    def __repr__(self) -> str:
        return (
            f"ResizeMix(p={self.p}, scale={self.scale}, min_visibility={self.min_visibility}, min_area={self.min_area})"
        )
