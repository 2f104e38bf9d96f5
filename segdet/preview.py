"""A PNG grid of dataset samples exactly as the pipeline and mixers produce them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdet._atomic import atomic_write_bytes
from segdet.palette import (
    LEGEND_ROW,
    MIN_WIDTH,
    box_colour,
    class_palette,
    draw_box,
    draw_legend,
    font_scale,
    label_colours,
    upscale,
    upscale_factor,
)

#: pixels between tiles and around the grid
GAP = 4
#: opacity of the mask overlay
ALPHA = 0.5
#: ignored pixels are hatched white where ``(y + x) % HATCH_PERIOD < HATCH_WIDTH`` (tile pixels)
HATCH_PERIOD = 8
HATCH_WIDTH = 3

__all__ = ["grid_layout", "legend_entries", "write_preview"]


def grid_layout(num: int, tile_h: int, tile_w: int, num_classes: int) -> tuple[int, int, int, int]:
    """``(rows, cols, height, width)`` of the preview image for ``num`` tiles of tile_h x tile_w.

    ``cols = ceil(sqrt(num))``, ``rows = ceil(num / cols)``; tiles (already enlarged, see
    :func:`write_preview`) are separated and framed by ``GAP`` pixels, and a legend of
    ``ceil(num_classes / cols)`` rows of ``LEGEND_ROW`` pixels, one entry per tile column,
    sits under the grid.

    Example:
        >>> grid_layout(16, 256, 256, 4)
        (4, 4, 1068, 1044)
    """
    cols = max(1, math.ceil(math.sqrt(num)))
    rows = max(1, math.ceil(num / cols))
    legend_rows = math.ceil(num_classes / cols) if num_classes else 0
    height = rows * (tile_h + GAP) + GAP + legend_rows * LEGEND_ROW
    width = cols * (tile_w + GAP) + GAP
    return rows, cols, height, width


def legend_entries(
    classes: Sequence[str], box_classes: Sequence[str], with_mask: bool
) -> list[tuple[str, tuple[int, int, int] | None]]:
    """``(text, colour)`` of each legend entry; ``None``: a class drawn transparent.

    With masks: every mask class ``k`` as ``"k name"`` in :func:`~segdet.palette.class_palette`
    colour ``k`` (class 0 transparent), then each box class whose name and colour
    (:func:`~segdet.palette.box_colour`) differ from the mask class ``label + 1`` as
    ``"box label name"``. Without masks: the box classes, ``"label name"``.

    Example:
        >>> [t for t, _ in legend_entries(["background", "cat"], ["cat"], True)]
        ['0 background', '1 cat']
    """
    if not with_mask:
        return [(f"{k} {name}", box_colour(k, len(box_classes))) for k, name in enumerate(box_classes)]
    palette = class_palette(len(classes))
    entries = [(f"{k} {name}", tuple(int(v) for v in palette[k]) if k else None) for k, name in enumerate(classes)]
    for k, name in enumerate(box_classes):
        colour = box_colour(k, len(box_classes))
        if k + 1 >= len(classes) or classes[k + 1] != name or entries[k + 1][1] != colour:
            entries.append((f"box {k} {name}", colour))
    return entries


def write_preview(
    dataset: Any,
    classes: Sequence[str],
    out_path: str | Path,
    *,
    num: int = 16,
    ignore_index: int = 255,
    seed: int = 0,
    box_classes: Sequence[str] | None = None,
    min_width: int = MIN_WIDTH,
) -> Path:
    """Render ``num`` samples of ``dataset`` as a PNG grid and write it atomically.

    Samples are drawn with ``dataset[i]`` for ``num`` distinct indices chosen by ``seed`` (all
    of them when the dataset is smaller), so the grid shows exactly what training sees. Each
    tile is the sample enlarged by an integer factor (nearest neighbour,
    :func:`~segdet.palette.upscale_factor`) to at least ``min_width`` pixels wide, with:

    - the semantic mask overlaid in the colours of ``segdet.palette`` (opacity 0.5; class 0
      left transparent); soft masks (MixUp) blend the class colours by their probabilities;
      multilabel masks (integer (H, W, K), one 0/1 channel per class) show the mean colour of
      the classes present (class ``k`` in :func:`~segdet.palette.label_colours` colour ``k``,
      no background); ``ignore_index`` pixels (and all-zero soft vectors; in a multilabel mask,
      pixels ignored for any class) are hatched in white and dimmed;
    - boxes in the colour of their class (a box of label ``l`` in the colour of mask class
      ``l + 1``) with a tag holding the class name, followed by the box weight when the sample
      has MixUp ``weights``.

    A legend of class colours and names (:func:`legend_entries`) is drawn under the grid.
    Tiles of different sizes are placed top-left in cells of the largest size.

    Args:
        dataset: indexable dataset of segdet samples.
        classes: names of the mask classes (index 0 first); for samples without masks, the
            box classes.
        out_path: PNG file to write (parent folders are created).
        num: number of tiles.
        ignore_index: unlabeled mask value.
        seed: picks the samples shown.
        box_classes: names of the box ``labels``; ``None``: the dataset's ``box_classes``
            attribute (looked up through wrappers' ``dataset`` attribute), else ``classes[1:]``
            when the samples have masks (mask class = label + 1) and ``classes`` when not.
        min_width: tiles narrower than this are enlarged; 1 keeps the samples' own size.

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
    rng = np.random.default_rng(seed)
    indices = rng.choice(n, size=min(num, n), replace=False)
    samples = [dataset[int(i)] for i in indices]
    with_mask = any(s.get("mask") is not None for s in samples)
    multilabel = any(_is_label_channels(s.get("mask")) for s in samples)
    if box_classes is None:
        box_classes = _find_attr(dataset, "box_classes") or (classes[1:] if with_mask else classes)
    box_classes = [str(c) for c in box_classes]
    tiles = [_render(s, classes, box_classes, ignore_index, min_width) for s in samples]
    if multilabel:
        colours = label_colours(len(classes))
        entries = [(f"{k} {name}", tuple(int(v) for v in colours[k])) for k, name in enumerate(classes)]
    else:
        entries = legend_entries(classes, box_classes, with_mask)
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    rows, cols, height, width = grid_layout(len(tiles), th, tw, len(entries))
    canvas = np.full((height, width, 3), 32, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = GAP + r * (th + GAP), GAP + c * (tw + GAP)
        canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    draw_legend(canvas, entries, rows * (th + GAP) + GAP, GAP, cols, tw + GAP)
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


def _is_label_channels(mask: Any) -> bool:
    """An integer (H, W, K) mask: one 0/1 channel per class (multilabel)."""
    if mask is None:
        return False
    mask = np.asarray(mask)
    return mask.ndim == 3 and (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool)


def _palette(n: int) -> np.ndarray:
    return class_palette(max(n, 1)).astype(np.float32)


def _render(sample: dict, classes: list[str], box_classes: list[str], ignore_index: int, min_width: int) -> np.ndarray:
    image = np.asarray(sample["image"])
    if image.ndim == 2:
        image = image[:, :, None]
    image = np.clip(image[:, :, :3].astype(np.float32), 0, 255)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    h, w = image.shape[:2]
    factor = upscale_factor(h, w, min_width)
    palette = _palette(len(classes))
    ignored = None
    if sample.get("mask") is not None:
        mask = np.asarray(sample["mask"])
        if _is_label_channels(mask):  # multilabel (H, W, K): the mean colour of the classes present
            present = (mask == 1).astype(np.float32)
            count = present.sum(axis=2, keepdims=True)
            colour = present @ label_colours(mask.shape[2]).astype(np.float32) / np.maximum(count, 1)
            image = np.where(count > 0, image * (1 - ALPHA) + ALPHA * colour, image)
            ignored = (mask == ignore_index).any(axis=2)
        elif mask.ndim == 3:  # soft (H, W, C)
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
    image = upscale(image, factor)
    if ignored is not None:
        ignored = upscale(ignored, factor)
        yy, xx = np.mgrid[0 : h * factor, 0 : w * factor]
        hatch = ignored & (((yy + xx) % HATCH_PERIOD) < HATCH_WIDTH)
        image[hatch] = 255.0
        image[ignored & ~hatch] *= 0.6
    tile = np.ascontiguousarray(image.astype(np.uint8))
    boxes = np.asarray(sample.get("bboxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
    labels = np.asarray(sample.get("labels", np.zeros(len(boxes))), np.int64).reshape(-1)
    weights = sample.get("weights")
    scale = font_scale(*tile.shape[:2])
    for j, box in enumerate(boxes):
        label = int(labels[j]) if j < len(labels) else -1
        name = box_classes[label] if 0 <= label < len(box_classes) else str(label)
        if weights is not None and j < len(weights):
            name += f" {float(weights[j]):.2f}"
        draw_box(tile, box * factor, box_colour(label, len(box_classes)), name, scale=scale)
    return tile


def _write_png_atomic(rgb: np.ndarray, path: Path) -> Path:
    # zlib's default strategy at level 3: a third of the size of OpenCV's default (RLE) on noisy images
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"could not encode the preview for {path}")
    return atomic_write_bytes(path, buf.tobytes())
