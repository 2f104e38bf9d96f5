"""The sample contract: what a sample holds, its one normaliser and its albumentations adapter.

A sample is a dict with albumentations' keys, so an ``A.Compose`` applies to it. Every key but
``image`` is optional:

============== ======================== =============== ===============================================
key            dtype                    shape           meaning
============== ======================== =============== ===============================================
image          uint8 or float32         (H, W, C)       the picture; float images keep the 0..255 scale
mask           int or float32           (H, W) or       class per pixel (ignore_index where
                                        (H, W, C)       unlabelled); integer (H, W, C): one 0/1
                                                        channel per class (multilabel); float
                                                        (H, W, C): per-class probabilities
masks          uint8                    (N, H, W)       instance masks, one per box
bboxes         float32                  (N, 4)          boxes, pascal_voc pixels
labels         int64                    (N,)            class of each box
weights        float32                  (N,)            weight of each box (MixUp blends them)
label_vector   float32                  (C,)            image-level class probabilities
============== ======================== =============== ===============================================

Boxes are pascal_voc pixels ``x_min, y_min, x_max, y_max``, where pixel ``(row i, column j)`` is
the unit square ``[j, j + 1] x [i, i + 1]``; no boxes is an array of shape ``(0, 4)``. The
per-box keys ``bboxes``, ``labels``, ``weights`` and ``masks`` share one index: whatever drops a
box drops its label, weight and instance mask with it. :data:`SAMPLE_KEYS` holds this table.

:func:`normalise_sample` brings the arrays of a sample to these dtypes and shapes;
:func:`call_albumentations` runs an albumentations transform on a sample and keeps it in the
contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

__all__ = ["BOX_FORMAT", "PER_BOX_KEYS", "SAMPLE_KEYS", "KeySpec", "call_albumentations", "normalise_sample"]


class KeySpec(NamedTuple):
    """One row of the sample contract: the dtype, the shape and the meaning of a key."""

    dtype: str
    shape: str
    meaning: str


SAMPLE_KEYS: Mapping[str, KeySpec] = MappingProxyType(
    {
        "image": KeySpec("uint8 or float32", "(H, W, C)", "the picture; float images keep the 0..255 scale"),
        "mask": KeySpec(
            "int or float32",
            "(H, W) or (H, W, C)",
            "class per pixel (ignore_index where unlabelled); integer (H, W, C): one 0/1 channel per class "
            "(multilabel); float (H, W, C): per-class probabilities",
        ),
        "masks": KeySpec("uint8", "(N, H, W)", "instance masks, one per box"),
        "bboxes": KeySpec("float32", "(N, 4)", "boxes, pascal_voc pixels"),
        "labels": KeySpec("int64", "(N,)", "class of each box"),
        "weights": KeySpec("float32", "(N,)", "weight of each box (MixUp blends them)"),
        "label_vector": KeySpec("float32", "(C,)", "image-level class probabilities"),
    }
)
"""The contract as data: key -> :class:`KeySpec`, in the order of the module's table."""

PER_BOX_KEYS = ("bboxes", "labels", "weights", "masks")
"""The keys indexed by box; they are kept or dropped together."""

BOX_FORMAT = "pascal_voc"
"""The box format of samples (albumentations' name for ``x_min, y_min, x_max, y_max`` pixels)."""

_BBOX_FIX = "bbox_params=A.BboxParams(format='pascal_voc', label_fields=['labels'])"


def normalise_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """Returns a shallow copy of ``sample`` with its arrays in the dtypes and shapes of the contract.

    ``bboxes`` become (N, 4) float32, ``labels`` (N,) int64, ``weights`` (N,) float32,
    ``label_vector`` (C,) float32, ``mask`` a numpy array and ``masks`` a (K, H, W) array (a list
    of (H, W) masks is stacked; no instances, as an empty list or an empty array of another
    shape, become ``(0, H, W)`` uint8 with ``H, W`` from the image). The image and every other
    key are left as they are. Values are converted, not validated: boxes of another shape than
    (N, 4) stay as they are, and the mixers check that the per-box arrays agree with each other
    and with the image.

    Args:
        sample: dict following the contract (lists and tuples are accepted for array values).

    Returns:
        A new dict; the input is not modified.

    Raises:
        TypeError: ``sample`` is not a mapping.
        ValueError: empty ``masks`` without an ``image`` to take their size from.

    Example:
        >>> s = normalise_sample({"image": np.zeros((2, 3, 3), np.uint8), "bboxes": [[0, 0, 1, 1]],
        ...                       "labels": [2], "masks": []})
        >>> s["bboxes"].dtype, s["labels"].dtype, s["masks"].shape, s["masks"].dtype
        (dtype('float32'), dtype('int64'), (0, 2, 3), dtype('uint8'))
    """
    if not isinstance(sample, Mapping):
        raise TypeError(f"a sample must be a dict with an 'image' key, got {type(sample).__name__}")
    out = dict(sample)
    if "bboxes" in out:
        boxes = np.asarray(out["bboxes"] if out["bboxes"] is not None else (), dtype=np.float32)
        out["bboxes"] = boxes.reshape(-1, 4) if boxes.size == 0 or boxes.shape[1:] == (4,) else boxes
    if "labels" in out:
        out["labels"] = np.asarray(out["labels"]).reshape(-1).astype(np.int64)
    if "weights" in out:
        out["weights"] = np.asarray(out["weights"], dtype=np.float32).reshape(-1)
    if "label_vector" in out:
        out["label_vector"] = np.asarray(out["label_vector"], dtype=np.float32).reshape(-1)
    if out.get("mask") is not None:
        out["mask"] = np.asarray(out["mask"])
    if "masks" in out:
        out["masks"] = _instance_masks(out["masks"], out.get("image"))
    return out


def _instance_masks(masks: Any, image: Any) -> np.ndarray:
    """(K, H, W) array of instance masks; no instances is (0, H, W) of the image's size."""
    if not isinstance(masks, np.ndarray):
        masks = list(masks)
        if masks:
            return np.stack([np.asarray(m) for m in masks])
        masks = np.zeros(0, np.uint8)
    if len(masks):
        return masks
    if image is None:
        if masks.ndim == 3:
            return masks
        raise ValueError("a sample with empty 'masks' needs an 'image' to give them the shape (0, H, W)")
    size = tuple(np.shape(image)[:2])
    if masks.shape == (0, *size):
        return masks
    return np.zeros((0, *size), dtype=masks.dtype if masks.ndim == 3 else np.uint8)


def _is_albumentations(transform: Any) -> bool:
    """True for albumentations transforms and composes, which are called as ``t(**sample)``."""
    return any(c.__module__.split(".")[0] == "albumentations" for c in type(transform).__mro__)


def _bbox_processor(transform: Any) -> Any:
    """The Compose's box processor, or ``None`` (no ``bbox_params``, or not a Compose)."""
    processors = getattr(transform, "processors", None)
    return processors.get("bboxes") if isinstance(processors, dict) else None


def _check_bbox_params(transform: Any) -> None:
    """A transform that meets boxes must be a Compose that knows they are pascal_voc with labels.

    An empty Compose moves nothing and passes.

    Raises:
        ValueError: no ``bbox_params``, another box format, or no ``labels`` field (each
            message names what the transform has and gives the ``bbox_params`` to pass).
    """
    if isinstance(getattr(transform, "transforms", None), list) and not transform.transforms:
        return
    proc = _bbox_processor(transform)
    if proc is None:
        raise ValueError(
            f"the sample has 'bboxes' but the albumentations {type(transform).__name__} has no bbox_params, "
            f"so it would move the image without the boxes; wrap it as A.Compose([...], {_BBOX_FIX})"
        )
    params = proc.params
    if params.format != BOX_FORMAT or "labels" not in (params.label_fields or []):
        raise ValueError(
            f"the albumentations Compose has bbox_params format={params.format!r}, "
            f"label_fields={params.label_fields}; samples hold pascal_voc boxes with "
            f"'labels', so pass {_BBOX_FIX}"
        )


def _per_box(sample: dict, keys: list[str], n: int) -> dict[str, np.ndarray]:
    """The arrays of ``keys`` in ``sample``, each checked to hold one entry per box."""
    out = {}
    for key in keys:
        if key in sample:
            values = np.asarray(sample[key])
            if len(values) != n:
                raise ValueError(
                    f"the sample has {n} bboxes but {len(values)} {key}; give one entry per box "
                    "(every per-box array is kept or dropped with its box)"
                )
            out[key] = values
    return out


#: boxes thinner than this (pixels) after a transform are flat: clipped to a crop border
_FLAT_PX = 1e-3


def _drop_flat_boxes(out: dict, per_box: list[str]) -> None:
    """Drops, in place, the boxes with no width or no height and the entries of ``per_box`` with them.

    albumentations keeps a box whose edge lies exactly on a crop's border: clipped, it comes back
    with ``y_min == y_max`` (or ``x_min == x_max``), or a few millionths of a pixel apart from the
    float32 round trip through normalised coordinates, and with an empty instance mask. No
    detector or mixer can use such a box, so it goes, as a box cropped away entirely does.
    "Flat" is under ``_FLAT_PX``, far above that rounding noise and far below any real object.
    """
    boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    keep = (boxes[:, 2] - boxes[:, 0] >= _FLAT_PX) & (boxes[:, 3] - boxes[:, 1] >= _FLAT_PX)
    if keep.all():
        return
    for key in ("bboxes", "masks", *per_box):
        if key in out:
            out[key] = np.asarray(out[key])[keep]


def call_albumentations(transform: Callable[..., dict], sample: Mapping[str, Any]) -> dict[str, Any]:
    """Runs an albumentations transform or Compose on a sample and returns a normalised sample.

    The call is ``transform(**sample)`` with these rules around it:

    - Boxes: a sample with ``bboxes`` needs a Compose with ``A.BboxParams(format="pascal_voc",
      label_fields=[..., "labels", ...])`` (an empty Compose passes). The box indices
      ``0..N-1`` go through the Compose in place of every label field; the indices that come
      back are the one keep-index that selects ``labels``, ``weights``, every other label field
      of the sample and the transformed instance ``masks``. So a per-box array need not be a
      label field of the Compose, and a label field the sample lacks (``weights`` before MixUp,
      or ``bboxes`` themselves) is filled in for the call and left out of the result. A box
      that comes back with no width or height (its edge was on a crop's border) is dropped
      with its per-box entries and mask.
    - Instance ``masks``: one per box when the sample has boxes; ``K = 0`` comes back as
      ``(0, H, W)`` of the output size.
    - Float images (the 0..255 scale MixUp produces) are divided by 255 for the transforms,
      which expect float images in [0, 1], and multiplied by 255 after.

    The transform's random state is used as it is (seed it first for reproducible draws).

    Args:
        transform: an albumentations transform or ``A.Compose``.
        sample: dict following the contract; it is not modified.

    Returns:
        The transformed sample, normalised by :func:`normalise_sample`.

    Raises:
        TypeError: ``transform`` is not an albumentations object or ``sample`` is not a dict.
        ValueError: boxes meet a transform without pascal_voc ``bbox_params`` with ``labels``,
            or a per-box array (``labels``, ``weights``, ``masks``, ...) has another length
            than ``bboxes``.

    Example:
        >>> import albumentations as A
        >>> crop = A.Compose([A.Crop(x_min=0, y_min=0, x_max=4, y_max=4)],
        ...                  bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
        >>> s = {"image": np.zeros((8, 8, 3), np.uint8), "bboxes": [[0, 0, 2, 2], [5, 5, 8, 8]],
        ...      "labels": [3, 4], "weights": [0.5, 1.0], "masks": np.ones((2, 8, 8), np.uint8)}
        >>> out = call_albumentations(crop, s)
        >>> out["labels"].tolist(), out["weights"].tolist(), out["masks"].shape
        ([3], [0.5], (1, 4, 4))
    """
    if not _is_albumentations(transform):
        raise TypeError(
            f"call_albumentations takes an albumentations transform or Compose, got {type(transform).__name__}; "
            "call other transforms as transform(sample)"
        )
    data = normalise_sample(sample)
    has_boxes = "bboxes" in data
    if has_boxes:
        _check_bbox_params(transform)
    proc = _bbox_processor(transform)
    fields = list(proc.params.label_fields or []) if proc is not None else []
    track = proc is not None  # the Compose moves boxes: give it boxes and every label field
    n = len(data["bboxes"]) if has_boxes else 0
    if has_boxes and "masks" in data and len(data["masks"]) != n:
        raise ValueError(
            f"the sample has {n} bboxes but {len(data['masks'])} instance masks; give one mask per box "
            "(a pipeline that drops boxes must drop their masks too)"
        )
    per_box = _per_box(data, ["labels", "weights", *fields], n) if track and has_boxes else {}

    empty_masks = "masks" in data and len(data["masks"]) == 0
    masks_dtype = data["masks"].dtype if empty_masks else None
    if empty_masks:
        del data["masks"]  # albumentations cannot stack zero masks
    scale = np.issubdtype(np.asarray(data["image"]).dtype, np.floating) if "image" in data else False
    if scale:
        data["image"] = np.asarray(data["image"], np.float32) / 255.0
    if track:
        if not has_boxes:
            data["bboxes"] = np.zeros((0, 4), np.float32)
        index = np.arange(n, dtype=np.int64)
        data.update({field: index for field in fields})

    out = dict(transform(**data))

    if scale:
        out["image"] = np.asarray(out["image"], np.float32) * 255.0
    if track:
        keep = np.asarray(out["labels"] if "labels" in fields else index, dtype=np.int64).reshape(-1)
        for field in fields:
            del out[field]
        if not has_boxes:
            del out["bboxes"]
        out.update({key: values[keep] for key, values in per_box.items()})
        if "masks" in out and has_boxes:
            out["masks"] = np.asarray(out["masks"])[keep]
        if has_boxes:
            _drop_flat_boxes(out, list(per_box))
    if empty_masks:
        out["masks"] = np.zeros((0, *np.shape(out["image"])[:2]), dtype=masks_dtype)
    return normalise_sample(out)
