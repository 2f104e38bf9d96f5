"""CutMix: a region of a partner pasted onto the primary, exact for every target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._paste import paste
from ._sample import check_count, check_rng, check_sources
from .regions import fmix_region, rect_region

__all__ = ["CutMix", "cutmix"]

_SHAPES = ("rect", "fmix")


def _check_filter(name: str, min_visibility: float, min_area: float) -> None:
    if not 0.0 <= float(min_visibility) <= 1.0:
        raise ValueError(
            f"{name}: min_visibility is a fraction of the box before the cut and must "
            f"lie in [0, 1], got {min_visibility}"
        )
    if float(min_area) < 0:
        raise ValueError(f"{name}: min_area is in pixels and must be >= 0, got {min_area}")


def cutmix(
    primary: dict,
    partner: dict,
    region: np.ndarray,
    *,
    min_visibility: float = 0.0,
    min_area: float = 0.0,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> tuple[dict, float]:
    """Pastes ``partner`` inside ``region`` onto ``primary``.

    Image and semantic mask pixels are copied exactly (the image is uint8 when both are uint8,
    float32 otherwise). Boxes and instance masks of both sources lose the pixels the other
    source covers; a box is kept when its visible area is at least ``min_visibility`` of its
    area before the cut and at least ``min_area`` pixels (measured on instance-mask pixels when
    ``masks`` is present), and becomes the bounding box of its visible part. Boxes the cut does
    not touch are always kept. One keep-index selects ``bboxes``, ``labels``, ``masks`` and
    ``weights``; the primary's instances come first. ``label_vector`` is mixed by the exact
    ``lam``. When one semantic mask is soft (H, W, C) the other is one-hot encoded and
    ``ignore_index`` pixels become all-zero vectors.

    Args:
        primary: sample dict (see DESIGN.md).
        partner: sample dict of the same size and with the same target keys.
        region: (H, W) bool, True where the partner shows (see :mod:`augment.regions`).
        min_visibility: fraction in [0, 1].
        min_area: pixels.
        num_classes: when given, hard masks must hold classes ``0..num_classes-1`` or
            ``ignore_index`` (as in MixUp), and soft masks this many channels; needed to one-hot
            a hard mask.
        ignore_index: unlabelled value of hard semantic masks.

    Returns:
        ``(sample, lam)``: the mixed sample and the exact fraction of pixels from the primary.

    Example:
        >>> a = {"image": np.zeros((2, 4, 3), np.uint8), "mask": np.zeros((2, 4), np.int64)}
        >>> b = {"image": np.full((2, 4, 3), 9, np.uint8), "mask": np.ones((2, 4), np.int64)}
        >>> region = np.zeros((2, 4), bool); region[:, 3] = True
        >>> out, lam = cutmix(a, b, region)
        >>> lam, out["mask"].tolist()
        (0.75, [[0, 0, 0, 1], [0, 0, 0, 1]])
    """
    _check_filter("cutmix", min_visibility, min_area)
    primary, partner = check_sources([primary, partner], 2, "CutMix")
    region = np.asarray(region)
    if region.dtype != bool or region.shape != primary["image"].shape[:2]:
        raise ValueError(
            f"CutMix region must be a bool array of the image size "
            f"{primary['image'].shape[:2]}, got {region.dtype} {region.shape}"
        )
    return paste(
        primary,
        partner,
        region,
        min_visibility=min_visibility,
        min_area=min_area,
        num_classes=num_classes,
        ignore_index=ignore_index,
        name="CutMix",
    )


class CutMix:
    """CutMix with a rectangle or an FMix-style low-frequency region.

    ``lam ~ Beta(alpha, alpha)`` is the target fraction of the primary kept; the region
    (:func:`augment.regions.rect_region` or :func:`augment.regions.fmix_region`) covers about
    ``1 - lam`` and everything downstream uses the exact pixel fraction. See :func:`cutmix` for
    how each target is mixed.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        alpha: Beta distribution parameter, > 0.
        shape: ``"rect"`` or ``"fmix"``.
        decay_power: smoothness of the ``"fmix"`` region.
        min_visibility: keep a cut box when at least this fraction of it stays visible.
        min_area: keep a cut box when at least this many pixels stay visible.
        num_classes: number of semantic classes (hard masks: values checked; soft masks: channels).
        ignore_index: unlabelled value of hard semantic masks.

    Example:
        >>> mixer = CutMix(alpha=1.0, min_visibility=0.3)
        >>> a = {"image": np.zeros((32, 48, 3), np.uint8), "bboxes": np.zeros((0, 4)), "labels": []}
        >>> out = mixer([a, a], np.random.default_rng(0))
        >>> out["bboxes"].shape
        (0, 4)
    """

    num_sources = 2

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 1.0,
        shape: str = "rect",
        decay_power: float = 3.0,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        num_classes: int | None = None,
        ignore_index: int | None = None,
    ):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"CutMix p must lie in [0, 1], got {p}")
        if not float(alpha) > 0:
            raise ValueError(f"CutMix alpha must be > 0, got {alpha}")
        if shape not in _SHAPES:
            raise ValueError(f"CutMix shape must be one of {_SHAPES}, got {shape!r}")
        _check_filter("CutMix", min_visibility, min_area)
        self.p = float(p)
        self.alpha = float(alpha)
        self.shape = shape
        self.decay_power = float(decay_power)
        self.min_visibility = float(min_visibility)
        self.min_area = float(min_area)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def mix(self, samples: Sequence[dict], rng: np.random.Generator) -> tuple[dict, float]:
        """Like ``__call__`` but also returns the exact ``lam``."""
        check_count(samples, 2, "CutMix")
        check_rng(rng, "CutMix")
        image = samples[0]["image"] if isinstance(samples[0], dict) and "image" in samples[0] else None
        if not isinstance(image, np.ndarray) or image.ndim < 2:
            raise ValueError("CutMix source 0 needs an 'image' array of shape (H, W, C)")
        h, w = image.shape[:2]
        lam = float(rng.beta(self.alpha, self.alpha))
        if self.shape == "rect":
            region = rect_region(h, w, lam, rng)
        else:
            region = fmix_region(h, w, lam, rng, self.decay_power)
        return cutmix(
            samples[0],
            samples[1],
            region,
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
            f"CutMix(p={self.p}, alpha={self.alpha}, shape={self.shape!r}, "
            f"min_visibility={self.min_visibility}, min_area={self.min_area})"
        )
