"""The sample contract and the call of albumentations transforms on samples."""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_albumentations(transform: Any) -> bool:
    """True for albumentations transforms and composes, which are called as ``t(**sample)``."""
    return any(c.__module__.split(".")[0] == "albumentations" for c in type(transform).__mro__)


def _normalise(sample: dict) -> dict:
    """Box arrays back to the contract after a pipeline (albumentations may return lists)."""
    out = dict(sample)
    if "bboxes" in out:
        out["bboxes"] = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    if "labels" in out:
        out["labels"] = np.asarray(out["labels"]).reshape(-1).astype(np.int64)
    if "masks" in out and not isinstance(out["masks"], np.ndarray):
        masks = list(out["masks"])
        h, w = out["image"].shape[:2]
        out["masks"] = np.stack(masks) if masks else np.zeros((0, h, w), dtype=np.uint8)
    return out


def _check_bbox_params(transform: Any, sample: dict) -> None:
    """An albumentations Compose must know the boxes are pascal_voc with ``labels`` beside them."""
    processors = getattr(transform, "processors", None)
    if "bboxes" not in sample or not isinstance(processors, dict) or not getattr(transform, "transforms", True):
        return  # no boxes, not a Compose, or an empty Compose (moves nothing)
    fix = "bbox_params=A.BboxParams(format='pascal_voc', label_fields=['labels'])"
    proc = processors.get("bboxes")
    if proc is None:
        raise ValueError(
            f"the samples have 'bboxes' but the albumentations Compose has no bbox_params, "
            f"so it would move the image without the boxes; pass {fix}"
        )
    params = proc.params
    if params.format != "pascal_voc" or "labels" not in (params.label_fields or []):
        raise ValueError(
            f"the albumentations Compose has bbox_params format={params.format!r}, "
            f"label_fields={params.label_fields}; samples hold pascal_voc boxes with "
            f"'labels', so pass {fix}"
        )


def _call_albumentations(transform: Any, sample: dict) -> dict:
    """Calls ``transform(**sample)`` keeping every per-box array on one keep-index.

    albumentations drops boxes (and their ``labels``) but not the matching instance masks or
    ``weights``. The call passes box indices as ``labels`` and then selects the original labels,
    the weights and the transformed instance masks by the indices that survived.
    """
    if "bboxes" not in sample:
        return transform(**sample)
    labels = np.asarray(sample.get("labels", np.zeros(0))).reshape(-1)
    n = len(np.asarray(sample["bboxes"]).reshape(-1, 4))
    if len(labels) != n:
        raise ValueError(f"sample has {n} bboxes but {len(labels)} labels; give one label per box")
    out = transform(**{**sample, "labels": np.arange(n, dtype=np.int64)})
    kept = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
    out["labels"] = labels[kept]
    if "weights" in sample:
        out["weights"] = np.asarray(sample["weights"], dtype=np.float32).reshape(-1)[kept]
    if "masks" in out and len(out["masks"]) == n:
        out["masks"] = np.asarray(out["masks"])[kept] if n else np.asarray(out["masks"])
    return out
