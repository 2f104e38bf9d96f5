"""PuzzleMix, simplified: the partner's salient grid blocks replace the primary's least salient ones.

Kim et al. 2020 (PuzzleMix) choose a block mask from the network's gradient saliency of both
images by a graph cut, and move the partner's blocks by optimal transport. segdet keeps the block
mask and drops the rest, so it runs in the loader workers on the pictures alone:

- saliency: :func:`augment.saliency.spectral_residual_saliency` of each image (no gradients, no
  network), averaged per block and scaled to sum 1 per image;
- mask: the ``round((1 - lam) g^2)`` blocks with the largest partner-minus-primary saliency
  (:func:`augment.saliency.block_region`): of all masks with that many blocks it shows the most
  saliency; no smoothness term (the graph cut's), no transport (a block is pasted where it was);
- grid: ``g`` drawn from ``grid`` per call (PuzzleMix draws 2, 4, 8 or 16 blocks per side).

Targets then follow CutMix's exact paste of that region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .cutmix import _check_filter
from .saliency import block_region, spectral_residual_saliency
from .saliencymix import _check_common, _SaliencyPaste

__all__ = ["PuzzleMix"]


def _check_grid(grid) -> tuple[int, ...]:
    values = (grid,) if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool) else grid
    try:
        out = tuple(values)
    except TypeError:
        out = ()
    if not out or any(isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1 for g in out):
        raise ValueError(f"PuzzleMix grid must be blocks per side, an integer >= 1 or a list of them, got {grid!r}")
    return tuple(int(g) for g in out)


class PuzzleMix(_SaliencyPaste):
    """PuzzleMix with a saliency-ranked block mask and no transport (module docstring says how).

    ``lam ~ Beta(alpha, alpha)``; a grid ``g`` is drawn uniformly from ``grid``; the region is
    :func:`augment.saliency.block_region` of the two images' spectral-residual saliency. See
    :func:`augment.cutmix` for how each target is mixed; ``lam`` returned by :meth:`mix` is the
    exact pixel fraction of the primary.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        alpha: Beta distribution parameter, > 0 (PuzzleMix uses 1).
        grid: blocks per side, an integer or a list to draw from; default ``(2, 4, 8, 16)``. A
            grid finer than the image is capped at its rows and columns.
        saliency_size: side of the grid the saliency is computed on.
        min_visibility: keep a cut box when at least this fraction of it stays visible.
        min_area: keep a cut box when at least this many pixels stay visible.
        num_classes: number of semantic classes (hard masks: values checked; soft masks: channels).
        ignore_index: unlabelled value of hard semantic masks.

    Example:
        >>> a = {"image": np.zeros((32, 48, 3), np.uint8), "bboxes": np.zeros((0, 4)), "labels": []}
        >>> PuzzleMix(grid=4)([a, a], np.random.default_rng(0))["image"].shape
        (32, 48, 3)
    """

    num_sources = 2

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 1.0,
        grid: int | Sequence[int] = (2, 4, 8, 16),
        saliency_size: int = 64,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        num_classes: int | None = None,
        ignore_index: int | None = None,
    ):
        _check_common("PuzzleMix", p, alpha, saliency_size)
        _check_filter("PuzzleMix", min_visibility, min_area)
        self.p = float(p)
        self.alpha = float(alpha)
        self.grid = _check_grid(grid)
        self.saliency_size = int(saliency_size)
        self.min_visibility = float(min_visibility)
        self.min_area = float(min_area)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def region(self, primary: dict, partner: dict, rng: np.random.Generator) -> np.ndarray:
        """The (H, W) bool region the partner shows in: ``lam``, then the grid, then :func:`block_region`."""
        lam = float(rng.beta(self.alpha, self.alpha))
        grid = self.grid[int(rng.integers(len(self.grid)))]
        a = spectral_residual_saliency(primary["image"], self.saliency_size)
        b = spectral_residual_saliency(partner["image"], self.saliency_size)
        return block_region(a, b, grid, lam, rng)

    def __repr__(self) -> str:
        return (
            f"PuzzleMix(p={self.p}, alpha={self.alpha}, grid={self.grid}, saliency_size={self.saliency_size}, "
            f"min_visibility={self.min_visibility}, min_area={self.min_area})"
        )
