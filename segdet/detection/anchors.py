"""How well a detector's anchors cover the training boxes, and anchor sizes fitted to them.

The check (:func:`anchor_report`) is ultralytics' autoanchor report for torchvision's anchor
detectors (Faster/Mask R-CNN, RetinaNet): the *best possible recall* is the share of training
boxes that some anchor shape overlaps with IoU >= 0.5, anchor and box sharing their centre (the
offset of the anchor grid, at most half a stride, is left out, as ultralytics leaves it out).
Boxes are compared at the size the model sees them: each training sample's boxes after the
``augment.train`` pipeline (run on a blank image of the sample's size, so no pixel is read),
then scaled as the model's transform resizes the image: by ``s = min(min_size / min(h, w),
max_size / max(h, w))`` to ``floor(h s) x floor(w s)`` pixels, each axis by its own ratio of
the two sizes (torchvision's ``GeneralizedRCNNTransform``). Mixers (Mosaic's rescaled tiles) are
not simulated.

The fit (``model.anchors: fit``, :func:`fit_anchors`) multiplies every anchor size by one factor
``2 ** (k / 4)`` (k from -20 to 8), the one giving the highest best possible recall, then the
highest mean best IoU, then the factor nearest 1. One factor keeps the pyramid's octave
spacing, so each FPN level keeps the size-to-stride ratio its head was designed for (quantiles
of the box scale per level would put a 20-pixel anchor on the 64-pixel-stride level of a nuclei
set); the aspect ratios are kept. The fitted sizes live in the model's weights
(:meth:`~segdet.detection.model.Detector.set_anchor_sizes`), so a checkpoint rebuilds the same
anchors in ``segdet eval`` and ``segdet predict``.

Example:
    >>> import numpy as np
    >>> anchors = np.array([[32.0, 32.0], [64.0, 64.0]])
    >>> best_possible_recall(np.array([[30.0, 30.0], [8.0, 8.0]]), anchors)[0]
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from augment import call_albumentations

__all__ = [
    "AnchorFit",
    "anchor_generator",
    "anchor_report",
    "anchor_shapes",
    "best_possible_recall",
    "boxes_at_model_scale",
    "check_anchors",
    "fit_anchors",
    "shape_iou",
]

#: IoU at which a box counts as coverable (the RPN's and RetinaNet's foreground threshold is 0.7 / 0.5)
IOU_THRESHOLD = 0.5
#: the scale factors the fit tries: 2 ** (k / 4)
FIT_STEPS = tuple(range(-20, 9))
#: samples read through the dataset when a source has no box table
MAX_READ = 500


def shape_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of boxes and anchors sharing their centre, from their widths and heights.

    Args:
        wh: (N, 2) box width, height.
        anchors: (A, 2) anchor width, height.

    Returns:
        (N, A) float64 ``min(w1, w2) min(h1, h2) / (w1 h1 + w2 h2 - min(w1, w2) min(h1, h2))``.
    """
    wh = np.asarray(wh, np.float64).reshape(-1, 2)
    anchors = np.asarray(anchors, np.float64).reshape(-1, 2)
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh[:, None, 0] * wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def best_possible_recall(
    wh: np.ndarray, anchors: np.ndarray, threshold: float = IOU_THRESHOLD
) -> tuple[float, float, float]:
    """Best possible recall of anchors on boxes (see the module docstring).

    Returns:
        ``(recall, mean best IoU, anchor shapes per box at IoU >= threshold)``; ``(0, 0, 0)``
        without boxes.
    """
    if len(wh) == 0:
        return 0.0, 0.0, 0.0
    iou = shape_iou(wh, anchors)
    best = iou.max(axis=1)
    return float((best >= threshold).mean()), float(best.mean()), float((iou >= threshold).sum(axis=1).mean())


def anchor_generator(model: nn.Module) -> Any | None:
    """The torchvision ``AnchorGenerator`` of a detector (R-CNN's RPN, RetinaNet), or ``None`` (FCOS, SSD)."""
    inner = getattr(model, "model", model)
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    if isinstance(inner, FCOS):  # anchor-free: its "anchors" are points
        return None
    gen = getattr(getattr(inner, "rpn", None), "anchor_generator", None) or getattr(inner, "anchor_generator", None)
    return gen if isinstance(gen, AnchorGenerator) else None


def anchor_shapes(generator: Any) -> np.ndarray:
    """(A, 2) distinct anchor width, height of every level, read from the generator's own cell anchors."""
    cells = np.concatenate([c.detach().cpu().double().numpy() for c in generator.cell_anchors])
    wh = np.stack([cells[:, 2] - cells[:, 0], cells[:, 3] - cells[:, 1]], axis=1)
    return np.unique(wh, axis=0)


def _sample_table(dataset: Any) -> list[tuple[tuple[int, int], np.ndarray]]:
    """``((h, w), boxes)`` of every sample: the source's box table, else read (at most ``MAX_READ`` samples)."""
    table = getattr(dataset, "box_table", None)
    if callable(table):
        return table()
    out = []
    for i in range(min(len(dataset), MAX_READ)):
        s = dataset[i]
        out.append((tuple(s["image"].shape[:2]), np.asarray(s["bboxes"], np.float32).reshape(-1, 4)))
    return out


def boxes_at_model_scale(
    table: Iterable[tuple[tuple[int, int], np.ndarray]],
    pipeline: Any,
    min_size: int,
    max_size: int,
    seed: int = 0,
) -> np.ndarray:
    """(N, 2) width, height of every box as the model sees it (see the module docstring).

    Args:
        table: ``((height, width), boxes (K, 4) pascal_voc)`` per training sample.
        pipeline: the ``augment.train`` albumentations pipeline, or ``None``.
        min_size: the model transform's shorter-side target.
        max_size: the model transform's longer-side cap.
        seed: seeds the pipeline per sample, ``(seed, index)``.
    """
    sizes = []
    for index, ((h, w), boxes) in enumerate(table):
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if pipeline is not None and len(boxes):
            pipeline.set_random_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
            sample = {"image": np.zeros((h, w, 3), np.uint8), "bboxes": boxes, "labels": np.zeros(len(boxes), int)}
            out = call_albumentations(pipeline, sample)
            boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
            h, w = out["image"].shape[:2]
        scale = min(min_size / min(h, w), max_size / max(h, w))
        per_axis = np.array([math.floor(w * scale) / w, math.floor(h * scale) / h])  # the resized image's own ratios
        sizes.append((boxes[:, 2:] - boxes[:, :2]) * per_axis)
    wh = np.concatenate(sizes) if sizes else np.zeros((0, 2))
    return wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)].astype(np.float64)


@dataclass(frozen=True)
class AnchorFit:
    """The anchor sizes of a fit and how they cover the boxes.

    Attributes:
        sizes: per FPN level, the anchor sizes (square roots of the anchor areas).
        factor: what the previous sizes were multiplied by.
        before: best possible recall, mean best IoU and anchors per box of the previous sizes.
        after: the same for ``sizes``.
    """

    sizes: tuple[tuple[float, ...], ...]
    factor: float
    before: tuple[float, float, float]
    after: tuple[float, float, float]


def _shapes_of(sizes: Sequence[Sequence[float]], ratios: Sequence[Sequence[float]]) -> np.ndarray:
    """(A, 2) anchor width, height as torchvision draws them (h / w = ratio, area = size**2, half-extents rounded)."""
    out = []
    for level_sizes, level_ratios in zip(sizes, ratios):
        for r in level_ratios:
            for s in level_sizes:
                hr = np.sqrt(r)
                out.append((2 * np.round(s / hr / 2), 2 * np.round(s * hr / 2)))
    return np.unique(np.asarray(out, np.float64), axis=0)


def fit_anchors(wh: np.ndarray, generator: Any) -> AnchorFit:
    """Anchor sizes scaled by the factor that covers ``wh`` best (see the module docstring).

    Raises:
        ValueError: no box to fit to.
    """
    if len(wh) == 0:
        raise ValueError("model.anchors: fit needs training boxes, and the training set has none")
    sizes = tuple(tuple(float(s) for s in level) for level in generator.sizes)
    ratios = tuple(tuple(float(r) for r in level) for level in generator.aspect_ratios)
    before = best_possible_recall(wh, anchor_shapes(generator))
    best_key, best = None, (1.0, sizes, before)
    for k in FIT_STEPS:
        factor = 2.0 ** (k / 4)
        scaled = tuple(tuple(round(s * factor, 2) for s in level) for level in sizes)
        if min(min(level) for level in scaled) < 2:  # an anchor under two pixels is not a box
            continue
        score = best_possible_recall(wh, _shapes_of(scaled, ratios))
        key = (round(score[0], 9), round(score[1], 9), -abs(k))
        if best_key is None or key > best_key:
            best_key, best = key, (factor, scaled, score)
    factor, scaled, after = best
    return AnchorFit(scaled, factor, before, after)


def _describe(wh: np.ndarray, shapes: np.ndarray, generator: Any, scores: tuple[float, float, float]) -> str:
    bpr, mean_iou, per_box = scores
    scale = np.sqrt(wh[:, 0] * wh[:, 1])
    sizes = sorted({float(s) for level in generator.sizes for s in level})
    ratios = sorted({float(r) for level in generator.aspect_ratios for r in level})
    return (
        f"anchor sizes {', '.join(f'{s:g}' for s in sizes)} x ratios (h/w) {', '.join(f'{r:g}' for r in ratios)}: "
        f"best possible recall {bpr:.3f} at IoU {IOU_THRESHOLD} of {len(wh)} training boxes "
        f"(mean best IoU {mean_iou:.2f}, {per_box:.2f} anchor shapes per box; box sides "
        f"{np.percentile(scale, 5):.0f}-{np.percentile(scale, 95):.0f} px at the model's scale, median "
        f"{np.median(scale):.0f}, 5th-95th percentile)"
    )


def anchor_report(
    model: nn.Module, dataset: Any, pipeline: Any, *, fit: bool, seed: int = 0
) -> tuple[str, AnchorFit | None]:
    """The coverage line of the training boxes for ``model``'s anchors and, with ``fit``, the fitted sizes.

    Args:
        model: a :class:`~segdet.detection.model.Detector` (or a bare torchvision detector).
        dataset: the training source (its ``box_table()``, else its samples).
        pipeline: the ``augment.train`` pipeline, or ``None``.
        fit: fit the sizes too; the caller applies them (``Detector.set_anchor_sizes``).
        seed: the run's seed (the pipeline's draws).

    Returns:
        ``(report, fit)``: the line to print (which names the fit's change, or why there is none)
        and the :class:`AnchorFit` (``None`` without ``fit``, or for an anchor-free detector).

    Raises:
        ValueError: ``fit`` on an anchor-free detector (FCOS, SSD), naming ``model.anchors``.
    """
    generator = anchor_generator(model)
    if generator is None:
        if fit:
            raise ValueError(
                f"model.anchors: fit works on anchor detectors (Faster/Mask R-CNN, RetinaNet); "
                f"{type(getattr(model, 'model', model)).__name__} has no anchor generator: set model.anchors: keep"
            )
        return "anchors: this detector has no anchor generator to check (anchor-free or SSD default boxes)", None
    transform = getattr(model, "model", model).transform
    wh = boxes_at_model_scale(_sample_table(dataset), pipeline, transform.min_size[-1], transform.max_size, seed)
    if len(wh) == 0:
        return "anchors: no training box to check the anchors against", None
    shapes = anchor_shapes(generator)
    scores = best_possible_recall(wh, shapes)
    line = "anchors: " + _describe(wh, shapes, generator, scores)
    if not fit:
        if scores[0] < 0.98:
            line += "; model.anchors: fit scales them to the data"
        return line, None
    result = fit_anchors(wh, generator)
    if result.factor == 1.0:
        return line + "; model.anchors: fit keeps them (no scale covers the boxes better)", result
    sizes = sorted({s for level in result.sizes for s in level})
    line += (
        f"; model.anchors: fit scales them by {result.factor:.3g} to {', '.join(f'{s:g}' for s in sizes)}: "
        f"best possible recall {result.after[0]:.3f}, mean best IoU {result.after[1]:.2f}"
    )
    return line, result


def check_anchors(model: nn.Module, train_set: Any, mode: str, seed: int = 0) -> AnchorFit | None:
    """Print the anchor coverage of the training boxes and, with ``mode="fit"``, give ``model`` the fitted sizes.

    Args:
        model: the :class:`~segdet.detection.model.Detector` about to train.
        train_set: the training set of :func:`~segdet.detection.data.build_detection_data` (its
            ``source`` and ``train_pipeline``), or any source of samples.
        mode: ``model.anchors``: ``"keep"`` (report only) or ``"fit"``.
        seed: the run's seed.

    Returns:
        The fit, or ``None`` (``keep``, or nothing to check).
    """
    source = getattr(train_set, "source", train_set)
    line, result = anchor_report(
        model, source, getattr(train_set, "train_pipeline", None), fit=mode == "fit", seed=seed
    )
    print(line, flush=True)
    if result is not None and result.factor != 1.0:
        model.set_anchor_sizes(result.sizes)
    return result
