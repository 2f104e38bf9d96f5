"""Where each Mosaic tile goes: grid lines, tile scale and tile offset (private).

Coordinates are pixel edges: canvas column ``x`` spans ``[x, x + 1]``. A tile scaled to
``(new_h, new_w)`` puts its point ``(u, v)`` (source pixels) at canvas ``(ox + u * sx, oy + v * sy)``
with ``sx = new_w / w`` and ``sy = new_h / h``, the same convention as ``cv2.resize``.
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
        scaled_size: ``(new_h, new_w)`` of the tile after scaling.
        origin: ``(oy, ox)`` canvas position of the scaled tile's top-left corner (negative or
            beyond the cell when the tile is cropped).
        visible: ``(y0, x0, y1, x1)`` canvas rectangle the tile actually fills: the cell
            intersected with the scaled tile; empty (``y1 <= y0`` or ``x1 <= x0``) when the
            cell has no area.
    """

    source: int
    cell: tuple[int, int, int, int]
    scaled_size: tuple[int, int]
    origin: tuple[int, int]
    visible: tuple[int, int, int, int]

    @property
    def is_empty(self) -> bool:
        """True when the tile shows no pixel (zero-area cell)."""
        y0, x0, y1, x1 = self.visible
        return y1 <= y0 or x1 <= x0


def grid_lines(length: int, grid: int, center: float) -> np.ndarray:
    """Cell edges along one axis: ``grid + 1`` non-decreasing ints from 0 to ``length``.

    Inner line ``k`` (1..grid-1) sits at ``round((k + 2 * center - 1) * length / grid)``,
    clipped to the canvas: the whole grid shifts by up to one cell, and for a 2x2 grid the
    single split is at ``center * length``.
    """
    k = np.arange(1, grid, dtype=np.float64)
    inner = np.clip(np.round((k + 2.0 * center - 1.0) * length / grid), 0, length).astype(np.int64)
    return np.concatenate([[0], inner, [length]])


def _scaled_size(h: int, w: int, ch: int, cw: int, fit: str) -> tuple[int, int]:
    if fit == "none":
        return h, w
    if fit == "cover":
        s = max(ch / h, cw / w)
        return max(ch, int(round(h * s))), max(cw, int(round(w * s)))
    s = min(ch / h, cw / w)  # contain
    return max(1, min(ch, int(round(h * s)))), max(1, min(cw, int(round(w * s))))


def _offset(rng: np.random.Generator, tile: int, cell: int) -> int:
    """Tile origin relative to the cell start: a random crop or a random placement."""
    if tile >= cell:
        return -int(rng.integers(0, tile - cell + 1))
    return int(rng.integers(0, cell - tile + 1))


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
        rng: draws the crop/placement offset of each tile (row offset, then column offset).

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
                placements.append(TilePlacement(source, (y0, x0, y1, x1), (h, w), (y0, x0), (y0, x0, y0, x0)))
                continue
            nh, nw = _scaled_size(h, w, y1 - y0, x1 - x0, fit)
            oy = y0 + _offset(rng, nh, y1 - y0)
            ox = x0 + _offset(rng, nw, x1 - x0)
            visible = (max(y0, oy), max(x0, ox), min(y1, oy + nh), min(x1, ox + nw))
            placements.append(TilePlacement(source, (y0, x0, y1, x1), (nh, nw), (oy, ox), visible))
    return placements
