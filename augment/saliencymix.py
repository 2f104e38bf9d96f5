"""SaliencyMix: the partner's most salient rectangle pasted at the same place, exact for every target.

Uddin et al. 2021 (SaliencyMix) cut the patch around the peak of the partner's saliency map, so
the pasted part shows the partner's object rather than background; everything downstream (masks,
instance masks, boxes, ``label_vector``) is CutMix's exact paste of that rectangle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._paste import paste
from ._sample import check_count, check_rng, check_sources
from .cutmix import _check_filter
from .saliency import saliency_rect, spectral_residual_saliency

__all__ = ["SaliencyMix"]


def _check_common(name: str, p: float, alpha: float, saliency_size: int) -> None:
    """The options SaliencyMix and PuzzleMix share: ``p``, ``alpha`` and the saliency grid."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} p must lie in [0, 1], got {p}")
    if not float(alpha) > 0:
        raise ValueError(f"{name} alpha must be > 0, got {alpha}")
    if isinstance(saliency_size, bool) or int(saliency_size) != saliency_size or saliency_size < 1:
        raise ValueError(f"{name} saliency_size must be an integer >= 1 (grid pixels), got {saliency_size!r}")


class _SaliencyPaste:
    """``mix`` and ``__call__`` of the saliency mixers: check the pair, paste :meth:`region` as CutMix does."""

    min_visibility: float
    min_area: float
    num_classes: int | None
    ignore_index: int | None

    def region(self, primary: dict, partner: dict, rng: np.random.Generator) -> np.ndarray:
        """The (H, W) bool region the partner shows in."""
        raise NotImplementedError

    def mix(self, samples: Sequence[dict], rng: np.random.Generator) -> tuple[dict, float]:
        """Like ``__call__`` but also returns the exact ``lam`` (fraction of primary pixels)."""
        name = type(self).__name__
        check_count(samples, 2, name)
        check_rng(rng, name)
        primary, partner = check_sources(samples, 2, name)
        return paste(
            primary,
            partner,
            self.region(primary, partner, rng),
            min_visibility=self.min_visibility,
            min_area=self.min_area,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            name=name,
        )

    def __call__(self, samples: Sequence[dict], rng: np.random.Generator) -> dict:
        """Mixes ``samples = [primary, partner]``; returns a new sample, inputs are untouched.

        Raises:
            TypeError: ``rng`` is not a ``numpy.random.Generator``.
            ValueError: not 2 samples, or samples outside the contract (see :mod:`augment.sample`).
        """
        return self.mix(samples, rng)[0]


class SaliencyMix(_SaliencyPaste):
    """SaliencyMix: a rectangle around the peak of the partner's spectral-residual saliency.

    ``lam ~ Beta(alpha, alpha)`` sets the rectangle's size (``round(H sqrt(1 - lam))`` by
    ``round(W sqrt(1 - lam))``); :func:`augment.saliency.saliency_rect` centres it on the peak of
    :func:`augment.saliency.spectral_residual_saliency` of the partner's image and shifts it
    inside the image; the partner's pixels there are pasted at the same place. Targets follow
    :func:`augment.cutmix` (image and semantic mask pixels copied, boxes and instance masks cut
    with ``min_visibility`` / ``min_area`` against the box before the cut, ``label_vector``
    and soft masks by the exact pixel fraction ``lam``).

    The authors' code calls OpenCV's contrib "fine grained" static saliency, which is not in
    ``opencv-python``; segdet uses the spectral residual of Hou & Zhang instead, computed with
    numpy's FFT on a ``saliency_size`` square grid (its cost is in benchmarks/bench_augment.py).

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        alpha: Beta distribution parameter, > 0.
        saliency_size: side of the grid the saliency is computed on (64, as Hou & Zhang).
        min_visibility: keep a cut box when at least this fraction of it stays visible.
        min_area: keep a cut box when at least this many pixels stay visible.
        num_classes: number of semantic classes (hard masks: values checked; soft masks: channels).
        ignore_index: unlabelled value of hard semantic masks.

    Example:
        >>> a = {"image": np.zeros((32, 48, 3), np.uint8), "bboxes": np.zeros((0, 4)), "labels": []}
        >>> SaliencyMix(alpha=1.0)([a, a], np.random.default_rng(0))["image"].shape
        (32, 48, 3)
    """

    num_sources = 2

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 1.0,
        saliency_size: int = 64,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        num_classes: int | None = None,
        ignore_index: int | None = None,
    ):
        _check_common("SaliencyMix", p, alpha, saliency_size)
        _check_filter("SaliencyMix", min_visibility, min_area)
        self.p = float(p)
        self.alpha = float(alpha)
        self.saliency_size = int(saliency_size)
        self.min_visibility = float(min_visibility)
        self.min_area = float(min_area)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def region(self, primary: dict, partner: dict, rng: np.random.Generator) -> np.ndarray:
        """The (H, W) bool region the partner shows in: ``lam`` drawn, then :func:`saliency_rect`."""
        lam = float(rng.beta(self.alpha, self.alpha))
        saliency = spectral_residual_saliency(partner["image"], self.saliency_size)
        return saliency_rect(saliency, lam, rng)

    def __repr__(self) -> str:
        return (
            f"SaliencyMix(p={self.p}, alpha={self.alpha}, saliency_size={self.saliency_size}, "
            f"min_visibility={self.min_visibility}, min_area={self.min_area})"
        )
