"""COCO evaluation through pycocotools or faster-coco-eval, silenced and on in-memory dicts."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

BACKENDS = ("pycocotools", "faster-coco-eval")

#: the twelve numbers of COCOeval.summarize(), in its order
STAT_NAMES = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)

#: the same twelve numbers of the ``segm`` evaluation (instance masks)
MASK_STAT_NAMES = tuple(f"mask_{name}" for name in STAT_NAMES)

#: COCOeval's kinds of overlap that segdet runs
IOU_TYPES = ("bbox", "segm")


def _classes(backend: str):
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if backend == "faster-coco-eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as err:
            raise ImportError(
                "the faster-coco-eval backend needs the package: "
                "pip install 'segdet[fast-coco]' (or pip install faster-coco-eval)"
            ) from err
        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO evaluation backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _coco_from_dict(coco_cls, dataset: dict):
    coco = coco_cls()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def evaluate(
    gt: dict, detections: list[dict], *, backend: str = "pycocotools", iou_type: str = "bbox"
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Run COCOeval on a ground-truth dict and a list of result dicts.

    With ``iou_type="segm"`` the results' ``bbox`` is dropped before ``loadRes``: pycocotools
    takes a result's ``area`` from its box when it has one, and the mask numbers would then sort
    detections into small/medium/large by box area; without it, ``loadRes`` uses the mask area
    (what detectron2's COCO evaluation does, for the same reason). Ground truth keeps its
    ``area`` as given: for COCO files the mask area.

    Args:
        gt: COCO ground truth (``images``, ``annotations``, ``categories``); for ``segm`` every
            annotation has a ``segmentation`` (polygons, RLE, uncompressed crowd RLE).
        detections: COCO results (``image_id``, ``category_id``, ``score``, ``bbox`` and, for
            ``segm``, ``segmentation`` RLE).
        backend: one of :data:`BACKENDS`.
        iou_type: one of :data:`IOU_TYPES`.

    Returns:
        ``(stats, precision, cat_ids)``: the 12 summary numbers (-1 where no ground truth falls
        in an area range), COCOeval's precision array (T, R, K, A, M) and the category ids of
        its K axis.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown COCO iou_type {iou_type!r}; choose one of {', '.join(IOU_TYPES)}")
    coco_cls, eval_cls = _classes(backend)
    if iou_type == "segm":
        detections = [{k: v for k, v in d.items() if k != "bbox"} for d in detections]
    gt_api = _coco_from_dict(coco_cls, copy.deepcopy(gt))
    if detections:
        with contextlib.redirect_stdout(io.StringIO()):
            dt_api = gt_api.loadRes(copy.deepcopy(detections))
    else:  # loadRes rejects an empty list in pycocotools: an empty result set scores 0
        dt_api = _coco_from_dict(
            coco_cls, {"images": list(gt["images"]), "categories": list(gt["categories"]), "annotations": []}
        )
    kwargs: dict[str, Any] = {"print_function": lambda *a, **k: None} if backend != "pycocotools" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = eval_cls(gt_api, dt_api, iou_type, **kwargs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64), np.asarray(ev.eval["precision"]), list(ev.params.catIds)
