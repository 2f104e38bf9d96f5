"""Where each Mosaic tile goes: grid lines, the source crop and the canvas rectangle (private).

Coordinates are pixel edges: canvas column ``x`` spans ``[x, x + 1]``. A placement maps the
source rectangle ``crop`` onto the canvas rectangle ``visible`` by scaling and shifting: source
point ``(u, v)`` lands at ``(vx0 + (u - sx0) * vw / cw, vy0 + (v - sy0) * vh / ch)``, the same
convention as ``cv2.resize`` of the crop to ``(vh, vw)``. Extended past the crop, the same map
places the whole source tile (the part the crop cut off lands outside ``visible``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FITS = ("cover", "contain", "none")


@dataclass(frozen=True)
class TilePlacement:
    """Placement of one source on the Mosaic canvas.

    Attributes:
        source: index of the sample in the ``samples`` sequence.
        cell: ``(y0, x0, y1, x1)`` canvas rectangle of the grid cell, end-exclusive.
        crop: ``(y0, x0, y1, x1)`` rectangle of the source image that is shown, end-exclusive.
        visible: ``(y0, x0, y1, x1)`` canvas rectangle the crop is resized onto, inside the
            cell; empty (``y1 <= y0`` or ``x1 <= x0``) when the cell has no area.
    """

    source: int
    cell: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    visible: tuple[int, int, int, int]

    @property
    def is_empty(self) -> bool:
        """True when the tile shows no pixel (zero-area cell)."""
        y0, x0, y1, x1 = self.visible
        return y1 <= y0 or x1 <= x0

    @property
    def scale(self) -> tuple[float, float]:
        """``(sy, sx)``: canvas pixels per source pixel (1 for an empty tile)."""
        if self.is_empty:
            return 1.0, 1.0
        vy0, vx0, vy1, vx1 = self.visible
        cy0, cx0, cy1, cx1 = self.crop
        return (vy1 - vy0) / (cy1 - cy0), (vx1 - vx0) / (cx1 - cx0)


def grid_lines(length: int, grid: int, center: float) -> np.ndarray:
    """Cell edges along one axis: ``grid + 1`` non-decreasing ints from 0 to ``length``.

    Inner line ``k`` (1..grid-1) sits at ``round((k + 2 * center - 1) * length / grid)``,
    clipped to the canvas: the whole grid shifts by up to one cell, and for a 2x2 grid the
    single split is at ``center * length``.
    """
    k = np.arange(1, grid, dtype=np.float64)
    inner = np.clip(np.round((k + 2.0 * center - 1.0) * length / grid), 0, length).astype(np.int64)
    return np.concatenate([[0], inner, [length]])


def _place_axis(rng: np.random.Generator, src: int, crop: int, dst: int, cell: int) -> tuple[int, int]:
    """``(crop start in the source, canvas start relative to the cell)`` along one axis.

    A crop shorter than the source starts at a random source pixel; a tile shorter than its
    cell sits at a random position inside it.
    """
    start = int(rng.integers(0, src - crop + 1)) if crop < src else 0
    offset = int(rng.integers(0, cell - dst + 1)) if dst < cell else 0
    return start, offset


def _crop_and_size(h: int, w: int, ch: int, cw: int, fit: str) -> tuple[int, int, int, int]:
    """``(crop_h, crop_w, out_h, out_w)``: the source crop of a tile and its size on the canvas.

    ``"cover"``: the largest crop with the cell's aspect ratio (rounded to whole source pixels),
    resized to the whole cell. ``"contain"``: the whole tile, scaled keeping its aspect to fit
    inside the cell. ``"none"``: the tile at its own scale, cropped to the cell where larger.
    """
    if fit == "cover":
        s = max(ch / h, cw / w)
        return min(h, max(1, int(round(ch / s)))), min(w, max(1, int(round(cw / s)))), ch, cw
    if fit == "contain":
        s = min(ch / h, cw / w)
        return h, w, max(1, min(ch, int(round(h * s)))), max(1, min(cw, int(round(w * s))))
    return min(h, ch), min(w, cw), min(h, ch), min(w, cw)


def plan_mosaic(
    shapes: list[tuple[int, int]],
    size: tuple[int, int],
    grid: int,
    center: tuple[float, float],
    fit: str,
    order: np.ndarray,
    rng: np.random.Generator,
) -> list[TilePlacement]:
    """Places ``grid * grid`` tiles of the given ``(h, w)`` shapes on a canvas of ``size``.

    Args:
        shapes: ``(h, w)`` of every source image, in sample order.
        size: ``(H, W)`` of the canvas.
        grid: cells per side.
        center: ``(cy, cx)`` fractions that position the grid lines (see ``grid_lines``).
        fit: ``"cover"``, ``"contain"`` or ``"none"``.
        order: ``(grid * grid,)`` source index of each cell, row-major.
        rng: draws each tile's row placement, then its column placement (crop start and/or
            position in the cell).

    Returns:
        One placement per cell, row-major.
    """
    height, width = size
    ys = grid_lines(height, grid, center[0])
    xs = grid_lines(width, grid, center[1])
    placements = []
    for r in range(grid):
        for c in range(grid):
            source = int(order[r * grid + c])
            y0, y1, x0, x1 = int(ys[r]), int(ys[r + 1]), int(xs[c]), int(xs[c + 1])
            h, w = shapes[source]
            if y1 <= y0 or x1 <= x0:
                placements.append(TilePlacement(source, (y0, x0, y1, x1), (0, 0, 0, 0), (y0, x0, y0, x0)))
                continue
            crop_h, crop_w, out_h, out_w = _crop_and_size(h, w, y1 - y0, x1 - x0, fit)
            sy, oy = _place_axis(rng, h, crop_h, out_h, y1 - y0)
            sx, ox = _place_axis(rng, w, crop_w, out_w, x1 - x0)
            placements.append(
                TilePlacement(
                    source,
                    (y0, x0, y1, x1),
                    (sy, sx, sy + crop_h, sx + crop_w),
                    (y0 + oy, x0 + ox, y0 + oy + out_h, x0 + ox + out_w),
                )
            )
    return placements
