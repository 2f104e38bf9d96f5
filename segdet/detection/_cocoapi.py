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

    Returns:
        ``(stats, precision, cat_ids)``: the 12 summary numbers (-1 where no ground truth falls
        in an area range), COCOeval's precision array (T, R, K, A, M) and the category ids of
        its K axis.
    """
    coco_cls, eval_cls = _classes(backend)
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
