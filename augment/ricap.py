"""RICAP: four crops of four sources, the boundary drawn from Beta(beta, beta), exact for every target."""

from __future__ import annotations

import math

import numpy as np

from .mosaic import Mosaic

__all__ = ["RICAP"]


class RICAP(Mosaic):
    """Random image cropping and patching (Takahashi et al. 2018) for dense targets.

    The output (``size``, default the primary's) is split at ``(round(b_y H), round(b_x W))`` with
    ``b_y, b_x ~ Beta(beta, beta)``, not at a uniform centre, and each of the four cells shows a
    crop of one source at its own scale, taken at a uniform offset (nothing is resized: a source
    smaller than its cell is placed at a random position and the rest of the cell gets ``fill``
    / ``mask_fill``). It is a 2x2 :class:`Mosaic` with ``fit="none"``, so masks, instance masks
    and boxes follow Mosaic's exact rules (a box is clipped to its cell and kept when at least
    ``min_visibility`` of it and ``min_area`` pixels stay visible; with instance masks both are
    counted on mask pixels), and ``label_vector`` is the mean of the four weighted by the exact
    area each fills, the paper's label mixing.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        beta: Beta distribution parameter, > 0; the paper's default is 0.3 (boundaries near the
            edges: one source dominates).
        size: ``(H, W)`` of the output; ``None`` keeps the primary's size.
        fill: image value where no crop reaches.
        mask_fill: semantic mask value there; default ``ignore_index``.
        ignore_index: unlabelled value of hard semantic masks.
        num_classes: hard masks must hold classes ``0..num_classes-1`` or ``ignore_index``.
        min_visibility: fraction in ``[0, 1]`` of a box that must stay visible.
        min_area: pixels a box must keep.

    Example:
        >>> tiles = [{"image": np.full((32, 48, 3), i, np.uint8), "mask": np.full((32, 48), i)} for i in range(4)]
        >>> RICAP()(tiles, np.random.default_rng(0))["mask"].shape
        (32, 48)
    """

    def __init__(
        self,
        p: float = 0.5,
        beta: float = 0.3,
        size: tuple[int, int] | None = None,
        fill: float = 0,
        mask_fill: int | None = None,
        ignore_index: int | None = 255,
        num_classes: int | None = None,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
    ):
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"RICAP beta must be a number > 0, got {beta!r}")
        super().__init__(
            p=p,
            grid=2,
            size=size,
            fit="none",
            shuffle=True,
            fill=fill,
            mask_fill=mask_fill,
            ignore_index=ignore_index,
            num_classes=num_classes,
            min_visibility=min_visibility,
            min_area=min_area,
        )
        self.beta = float(beta)

    def _center(self, rng: np.random.Generator) -> tuple[float, float]:
        """The boundary ``(b_y, b_x)``: one ``Beta(beta, beta)`` draw per axis."""
        return float(rng.beta(self.beta, self.beta)), float(rng.beta(self.beta, self.beta))

    def __repr__(self) -> str:
        return (
            f"RICAP(p={self.p}, beta={self.beta}, size={self.size}, min_visibility={self.min_visibility}, "
            f"min_area={self.min_area})"
        )
