"""A PNG grid of dataset samples exactly as the pipeline and mixers produce them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdet._atomic import atomic_write_bytes
from segdet.palette import box_colour, class_palette

#: pixels between tiles and around the grid
GAP = 4
#: height of one legend row (class colour and name)
LEGEND_ROW = 14
#: opacity of the mask overlay
ALPHA = 0.5


def grid_layout(num: int, tile_h: int, tile_w: int, num_classes: int) -> tuple[int, int, int, int]:
    """``(rows, cols, height, width)`` of the preview image for ``num`` tiles of tile_h x tile_w.

    ``cols = ceil(sqrt(num))``, ``rows = ceil(num / cols)``; tiles are separated and framed by
    ``GAP`` pixels, and a legend of ``ceil(num_classes / cols)`` rows of ``LEGEND_ROW`` pixels
    sits under the grid.
    """
    cols = max(1, math.ceil(math.sqrt(num)))
    rows = max(1, math.ceil(num / cols))
    legend_rows = math.ceil(num_classes / cols) if num_classes else 0
    height = rows * (tile_h + GAP) + GAP + legend_rows * LEGEND_ROW
    width = cols * (tile_w + GAP) + GAP
    return rows, cols, height, width


def write_preview(
    dataset: Any,
    classes: Sequence[str],
    out_path: str | Path,
    *,
    num: int = 16,
    ignore_index: int = 255,
    seed: int = 0,
    box_classes: Sequence[str] | None = None,
) -> Path:
    """Render ``num`` samples of ``dataset`` as a PNG grid and write it atomically.

    Samples are drawn with ``dataset[i]`` for ``num`` distinct indices chosen by ``seed`` (all
    of them when the dataset is smaller), so the grid shows exactly what training sees. Each
    tile is the image with:

    - the semantic mask overlaid in the fixed palette of ``segdet.palette`` (opacity 0.5;
      class 0 left transparent); soft masks (MixUp) blend the class colours by their
      probabilities; ``ignore_index`` pixels (and all-zero soft vectors) are hatched in white;
    - boxes in the colour of their class with the class name, followed by the box weight
      when the sample has MixUp ``weights``.

    A legend of class colours and names is drawn under the grid. Tiles of different sizes
    are placed top-left in cells of the largest size.

    Args:
        dataset: indexable dataset of segdet samples.
        classes: names of the mask classes (index 0 first).
        out_path: PNG file to write (parent folders are created).
        num: number of tiles.
        ignore_index: unlabeled mask value.
        seed: picks the samples shown.
        box_classes: names of the box ``labels``; ``None``: the dataset's ``box_classes``
            attribute (looked up through wrappers' ``dataset`` attribute), else ``classes``.

    Returns:
        The path written.

    Example:
        >>> from segdet.data import SyntheticShapes
        >>> ds = SyntheticShapes(8, 64, 64)
        >>> write_preview(ds, ds.CLASSES, "preview.png", num=4)  # doctest: +SKIP
        PosixPath('preview.png')
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive int, got {num!r}")
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot preview an empty dataset")
    classes = [str(c) for c in classes]
    if box_classes is None:
        box_classes = _find_attr(dataset, "box_classes") or classes
    rng = np.random.default_rng(seed)
    indices = rng.choice(n, size=min(num, n), replace=False)
    tiles = [_render(dataset[int(i)], classes, list(box_classes), ignore_index) for i in indices]
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    rows, cols, height, width = grid_layout(len(tiles), th, tw, len(classes))
    canvas = np.full((height, width, 3), 32, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = GAP + r * (th + GAP), GAP + c * (tw + GAP)
        canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    _legend(canvas, classes, rows * (th + GAP) + GAP, cols, tw)
    return _write_png_atomic(canvas, Path(out_path))


def _find_attr(dataset: Any, name: str):
    seen = 0
    while dataset is not None and seen < 8:
        value = getattr(dataset, name, None)
        if value is not None:
            return list(value)
        dataset = getattr(dataset, "dataset", None)
        seen += 1
    return None


def _palette(n: int) -> np.ndarray:
    return class_palette(max(n, 1)).astype(np.float32)


def _render(sample: dict, classes: list[str], box_classes: list[str], ignore_index: int) -> np.ndarray:
    image = np.asarray(sample["image"])
    if image.ndim == 2:
        image = image[:, :, None]
    image = np.clip(image[:, :, :3].astype(np.float32), 0, 255)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    h, w = image.shape[:2]
    palette = _palette(len(classes))
    if "mask" in sample and sample["mask"] is not None:
        mask = np.asarray(sample["mask"])
        if mask.ndim == 3:  # soft (H, W, C)
            probs = mask.astype(np.float32)
            weight = probs[:, :, 1:].sum(axis=2, keepdims=True)  # class 0 transparent
            colour = (
                probs @ palette[: probs.shape[2]]
                if probs.shape[2] <= len(palette)
                else probs[:, :, : len(palette)] @ palette
            )
            image = image * (1 - ALPHA * weight) + ALPHA * colour
            ignored = probs.sum(axis=2) <= 1e-6
        else:
            valid = (mask >= 0) & (mask < len(classes)) & (mask != ignore_index)
            ignored = ~valid
            painted = valid & (mask != 0)
            idx = np.where(painted, mask, 0).astype(np.int64)
            image = np.where(painted[:, :, None], image * (1 - ALPHA) + ALPHA * palette[idx], image)
        yy, xx = np.mgrid[0:h, 0:w]
        hatch = ignored & (((yy + xx) % 6) < 2)
        image[hatch] = 255.0
        image[ignored & ~hatch] *= 0.6
    tile = np.ascontiguousarray(image.astype(np.uint8))
    boxes = np.asarray(sample.get("bboxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
    labels = np.asarray(sample.get("labels", np.zeros(len(boxes))), np.int64).reshape(-1)
    weights = sample.get("weights")
    for j, box in enumerate(boxes):
        label = int(labels[j]) if j < len(labels) else -1
        colour = box_colour(label, len(box_classes))
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(tile, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, 1)
        name = box_classes[label] if 0 <= label < len(box_classes) else str(label)
        if weights is not None and j < len(weights):
            name += f" {float(weights[j]):.2f}"
        _text(tile, name, (x0 + 1, max(y0 - 2, 8)), colour)
    return tile


def _text(img: np.ndarray, text: str, org: tuple[int, int], colour) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)


def _legend(canvas: np.ndarray, classes: list[str], top: int, cols: int, cell_w: int) -> None:
    palette = class_palette(max(len(classes), 1))
    for k, name in enumerate(classes):
        r, c = divmod(k, cols)
        y, x = top + r * LEGEND_ROW, GAP + c * (cell_w + GAP)
        cv2.rectangle(canvas, (x, y + 2), (x + 9, y + 11), tuple(int(v) for v in palette[k]), -1)
        cv2.rectangle(canvas, (x, y + 2), (x + 9, y + 11), (200, 200, 200), 1)
        label = f"{k} {name}"
        _text(canvas, label, (x + 13, y + 10), (235, 235, 235))


def _write_png_atomic(rgb: np.ndarray, path: Path) -> Path:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode the preview for {path}")
    return atomic_write_bytes(path, buf.tobytes())
