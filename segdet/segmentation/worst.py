"""The ``worst.png`` picture of ``segdet eval``: the k validation images the model scores worst.

A practitioner looks there first: one row per image (image | ground truth | prediction, the
masks over the image in the class palette), captioned with the image's name and its own mean
IoU, lowest first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from segdet.palette import font_scale, overlay_labels, overlay_mask, text_colour

from ._confusion import labels_from_logits
from ._multilabel import present_from_logits
from .evaluator import SegmentationEvaluator

#: height of one row of panels in the picture (each image scaled to it, keeping its aspect)
ROW_HEIGHT = 256
CAPTION = 22  #: pixels of the caption strip above each row
GAP = 2  #: dark pixels between panels and rows


def worst_entries(per_image: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The ``k`` entries of :meth:`SegmentationEvaluator.per_image` with the lowest ``miou``.

    Images without a score (no valid pixel) are left out; equal scores keep dataset order.

    Example:
        >>> [e["index"] for e in worst_entries([{"index": 0, "miou": 0.9}, {"index": 1, "miou": 0.2}], 1)]
        [1]
    """
    scored = [e for e in per_image if not math.isnan(e["miou"])]
    return sorted(scored, key=lambda e: (e["miou"], e["index"]))[: max(0, int(k))]


def _row_panels(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    """Image | ground truth | prediction at the annotation's size, side by side."""
    if mode == "multilabel":
        panels = [overlay_labels(image, truth == 1), overlay_labels(image, pred)]
    else:
        panels = [overlay_mask(image, truth, num_classes), overlay_mask(image, pred, num_classes)]
    height, width = image.shape[:2]
    scale = ROW_HEIGHT / height
    size = (max(1, round(width * scale)), ROW_HEIGHT)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    resized = [cv2.resize(np.ascontiguousarray(p), size, interpolation=interp) for p in (image, *panels)]
    spacer = np.full((ROW_HEIGHT, GAP, 3), 32, np.uint8)
    return np.concatenate([resized[0], spacer, resized[1], spacer, resized[2]], axis=1)


def _caption(text: str, width: int) -> np.ndarray:
    strip = np.full((CAPTION, width, 3), 32, np.uint8)
    cv2.putText(
        strip, text, (4, CAPTION - 6), cv2.FONT_HERSHEY_SIMPLEX, font_scale(CAPTION, width), text_colour((32, 32, 32))
    )
    return strip


def render_worst(
    model: nn.Module,
    dataset: Any,
    collate: Callable[[list[dict]], dict[str, Any]],
    evaluator: SegmentationEvaluator,
    entries: Sequence[dict[str, Any]],
    device: torch.device,
    amp: torch.dtype | None = None,
) -> np.ndarray | None:
    """One picture of ``entries`` (from :func:`worst_entries`), a row each; ``None`` for no entries.

    Each image is batched alone with ``collate`` and scored with ``evaluator.scored``, the pass
    its score came from (same inference, logits resized back to the annotation), so the picture
    shows exactly what was scored. The image panel is the source image when ``dataset`` resized
    it (``dataset.dataset``), else the sample's image.

    Args:
        model: the trained model, on ``device``.
        dataset: the validation dataset the evaluator scored.
        collate: the task's collate function.
        evaluator: the evaluator that produced ``entries``.
        entries: per-image entries, worst first.
        device: where the model runs.
        amp: the autocast dtype of the run (``None``: the model's own precision).

    Returns:
        (rows * (ROW_HEIGHT + CAPTION + GAP), width, 3) uint8 RGB.
    """
    rows = []
    was_training = model.training
    model.eval()
    try:
        for entry in entries:
            sample = dataset[entry["index"]]
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in collate([sample]).items()}
            with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits, truth, _ = next(iter(evaluator.scored(model, batch)))
            if evaluator.mode == "multilabel":
                pred = present_from_logits(logits, evaluator.num_classes, evaluator.threshold)[0].cpu().numpy()
            else:
                pred = labels_from_logits(logits, evaluator.num_classes, evaluator.threshold)[0].cpu().numpy()
            truth = truth[0].cpu().numpy()
            image = np.asarray(sample["image"])
            if "full_mask" in sample:
                image = np.asarray(dataset.dataset[entry["index"]]["image"])
            if image.ndim == 2 or image.shape[2] == 1:
                image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
            image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
            panels = _row_panels(image, truth, pred, evaluator.num_classes, evaluator.mode)
            name = entry.get("name", f"image {entry['index']}")
            text = f"{name}  mIoU {entry['miou']:.3f}  mDice {entry['mdice']:.3f}   image | ground truth | prediction"
            rows.append((_caption(text, panels.shape[1]), panels))
    finally:
        model.train(was_training)
    if not rows:
        return None
    width = max(p.shape[1] for _, p in rows)
    parts = []
    for caption, panels in rows:
        pad = width - panels.shape[1]
        parts.append(np.pad(caption, ((0, 0), (0, pad), (0, 0)), constant_values=32))
        parts.append(np.pad(panels, ((0, 0), (0, pad), (0, 0)), constant_values=32))
        parts.append(np.full((GAP, width, 3), 32, np.uint8))
    return np.concatenate(parts[:-1])
