"""Validation and small operations on sample dicts, shared by the mixers (private).

Samples follow the contract of :mod:`augment.sample`; :func:`check_sample` normalises a sample
with :func:`augment.sample.normalise_sample` and then checks that its arrays agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._boxes import check_boxes
from .sample import normalise_sample

# Keys whose presence must agree between the sources of one mix.
TARGET_KEYS = ("mask", "masks", "bboxes", "label_vector")


def check_sample(sample, name: str) -> dict:
    """Validates one sample and returns a shallow copy with normalised box arrays.

    Args:
        sample: dict following the sample contract.
        name: how to call it in messages, e.g. ``"CutMix source 1"``.

    Returns:
        dict with the same keys; ``bboxes`` (N, 4) float32, ``labels`` (N,) int64,
        ``weights`` (N,) float32 when present, ``masks`` (N, H, W) when present.

    Raises:
        TypeError: the sample is not a dict or ``image`` is not an array.
        ValueError: shapes disagree with the image or with each other.
    """
    if not isinstance(sample, dict):
        raise TypeError(f"{name} must be a dict with an 'image' key, got {type(sample).__name__}")
    if "image" not in sample:
        raise ValueError(f"{name} has no 'image' key (keys: {sorted(sample)})")
    image = sample["image"]
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} image must be a numpy array (H, W, C), got {type(image).__name__}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} image must have shape (H, W, C) or (H, W), got {image.shape}")
    h, w = image.shape[:2]
    out = normalise_sample(sample)
    if out.get("mask") is not None:
        mask = out["mask"]
        if mask.ndim not in (2, 3) or mask.shape[:2] != (h, w):
            raise ValueError(
                f"{name} mask has shape {mask.shape} but image is {h}x{w}; "
                "expected (H, W) class indices or (H, W, C) probabilities"
            )
    if "bboxes" in out or "labels" in out or "masks" in out:
        boxes = check_boxes(out.get("bboxes"), h, w, name=f"{name} bboxes")
        n = len(boxes)
        if "labels" not in out and n:
            raise ValueError(f"{name} has {n} bboxes but no 'labels'")
        labels = out.get("labels", np.zeros(0, np.int64))
        if len(labels) != n:
            raise ValueError(f"{name} has {n} bboxes but {len(labels)} labels; give one label per box")
        out["bboxes"], out["labels"] = boxes, labels
        if "weights" in out and len(out["weights"]) != n:
            raise ValueError(f"{name} has {n} bboxes but {len(out['weights'])} weights")
        if "masks" in out:
            masks = out["masks"]
            if masks.ndim != 3 or masks.shape[1:] != (h, w) or len(masks) != n:
                raise ValueError(
                    f"{name} masks has shape {masks.shape} but needs (N, H, W) = ({n}, {h}, {w}): one "
                    "instance mask per box (a pipeline that drops boxes must drop their masks too)"
                )
    return out


def check_rng(rng, mixer: str) -> np.random.Generator:
    """Returns ``rng`` when it is a ``numpy.random.Generator``.

    Raises:
        TypeError: anything else (``None``, a seed, a ``RandomState``), named in the message.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{mixer} needs rng, a numpy.random.Generator such as np.random.default_rng(seed); got {rng!r}")
    return rng


def check_count(samples, n: int, mixer: str) -> None:
    """Checks that ``samples`` is a sequence of ``n`` samples.

    Raises:
        ValueError: a dict, something without a length, or another number of samples (named).
    """
    if isinstance(samples, dict) or not hasattr(samples, "__len__"):
        got = "a dict" if isinstance(samples, dict) else f"a {type(samples).__name__}"
    elif len(samples) != n:
        got = f"{len(samples)} samples"
    else:
        return
    raise ValueError(f"{mixer} takes a sequence of {n} samples (primary first), got {got}")


def check_sources(samples, n: int, mixer: str, same_size: bool = True) -> list[dict]:
    """Validates the ``n`` sources of a mixer and returns them checked by :func:`check_sample`.

    Args:
        samples: the sources, primary first.
        n: how many the mixer takes.
        mixer: the mixer's name for messages.
        same_size: require one image size (Mosaic scales its tiles, so it passes False).

    Returns:
        The checked samples, in order.

    Raises:
        ValueError: another number of samples (names it), sources of different sizes or
            channels, or a target key only some sources have.
    """
    check_count(samples, n, mixer)
    checked = [check_sample(s, f"{mixer} source {i}") for i, s in enumerate(samples)]
    first = checked[0]
    for i, s in enumerate(checked[1:], start=1):
        if same_size and s["image"].shape[:2] != first["image"].shape[:2]:
            raise ValueError(
                f"{mixer} needs sources of one size: source 0 is {first['image'].shape[:2]} (H, W), "
                f"source {i} is {s['image'].shape[:2]}; resize or crop them to one size in `pre`"
            )
        if s["image"].shape[2:] != first["image"].shape[2:]:
            raise ValueError(
                f"{mixer}: source 0 image has shape {first['image'].shape}, source {i} "
                f"has {s['image'].shape}; give all sources the same channels"
            )
        for key in TARGET_KEYS:
            if (key in first) != (key in s):
                has, lacks = (0, i) if key in first else (i, 0)
                raise ValueError(
                    f"{mixer}: source {has} has '{key}' but source {lacks} does not; give every sample the same targets"
                )
    return checked


def mix_dtype(*images: np.ndarray) -> np.dtype:
    """uint8 when every image is uint8, float32 otherwise (0..255 scale is kept)."""
    return np.dtype(np.uint8) if all(im.dtype == np.uint8 for im in images) else np.dtype(np.float32)


def labelled(mask: np.ndarray, num_classes: int, ignore_index: int | None, name: str) -> np.ndarray:
    """Boolean map of the pixels of a hard mask that hold a class.

    ``ignore_index`` is unlabelled, also when it lies inside ``[0, num_classes)`` (as
    ``ignore_index`` means in every loss).

    Raises:
        ValueError: a value outside ``[0, num_classes)`` that is not ``ignore_index``.
    """
    valid = (mask >= 0) & (mask < num_classes)
    ignored = np.zeros_like(valid) if ignore_index is None else mask == ignore_index
    bad = ~valid & ~ignored
    if bad.any():
        raise ValueError(
            f"{name} mask has class {int(mask[bad][0])} outside [0, {num_classes}) and it "
            f"is not ignore_index={ignore_index}; set num_classes/ignore_index to match the data"
        )
    return valid & ~ignored


def check_classes(masks: Sequence[np.ndarray], num_classes: int | None, ignore_index: int | None, name: str) -> None:
    """Checks that the hard (H, W) masks of one mix hold only classes ``0..num_classes-1`` and ``ignore_index``.

    Soft and per-class channel masks are left to their own checks; without ``num_classes``
    nothing is checked. A min/max look settles the usual case; only a mask reaching outside
    ``[0, num_classes)`` is compared pixel by pixel.

    Raises:
        ValueError: a value outside ``[0, num_classes)`` that is not ``ignore_index`` (names the
            source, as :func:`labelled` does for MixUp).
    """
    if num_classes is None:
        return
    for i, mask in enumerate(masks):
        if mask.ndim != 2 or mask.size == 0:
            continue
        if mask.min() < 0 or mask.max() >= num_classes:
            labelled(mask, num_classes, ignore_index, f"{name} source {i}")


def is_label_channels(mask: np.ndarray) -> bool:
    """True for an integer (or bool) (H, W, C) mask: one 0/1 channel per class (multilabel).

    Soft class probabilities are (H, W, C) too but floating; hard class indices are (H, W).
    """
    return mask.ndim == 3 and (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool)


def check_label_channels(masks: Sequence[np.ndarray], name: str, num_classes: int | None = None) -> bool:
    """Whether the semantic masks of one mix are per-class 0/1 channels; they must all be, or none.

    Raises:
        ValueError: channel masks mixed with class-index or soft masks, with another channel
            count, or with a channel count other than ``num_classes`` (when given).
    """
    kinds = [is_label_channels(m) for m in masks]
    if not any(kinds):
        return False
    channels = {m.shape[2] for m in masks if m.ndim == 3}
    if not all(kinds) or len(channels) > 1:
        shapes = [f"{m.shape} {m.dtype}" for m in masks]
        raise ValueError(
            f"{name}: the sources' semantic masks are {shapes}; integer (H, W, C) masks (one 0/1 channel "
            "per class) mix only with masks of the same kind and channel count"
        )
    if num_classes is not None and channels != {num_classes}:
        raise ValueError(f"{name}: the masks have {channels.pop()} class channels but num_classes={num_classes}")
    return True


def soft_mask(mask: np.ndarray, num_classes: int | None, ignore_index: int | None, name: str) -> np.ndarray:
    """Semantic mask as (H, W, C) float32 probabilities.

    A hard (H, W) mask becomes one-hot; unlabelled pixels (see :func:`labelled`) become the
    all-zero vector. A soft (H, W, C) mask is returned as float32.

    Raises:
        ValueError: a hard mask without ``num_classes``, a class outside ``[0, num_classes)``
            that is not ``ignore_index``, or a soft mask with a different channel count.
    """
    if mask.ndim == 3:
        if num_classes is not None and mask.shape[2] != num_classes:
            raise ValueError(f"{name} soft mask has {mask.shape[2]} channels but num_classes={num_classes}")
        return mask.astype(np.float32, copy=False)
    if num_classes is None:
        raise ValueError(
            f"{name}: turning semantic masks into per-class probabilities needs "
            "num_classes; pass num_classes=... to the mixer"
        )
    mask = mask.astype(np.int64, copy=False)
    valid = labelled(mask, num_classes, ignore_index, name)
    out = np.zeros(mask.shape + (num_classes,), dtype=np.float32)
    rows, cols = np.nonzero(valid)
    out[rows, cols, mask[rows, cols]] = 1.0
    return out


def take(sample: dict, keep: np.ndarray, boxes: np.ndarray | None = None, masks: np.ndarray | None = None) -> dict:
    """The per-instance arrays of ``sample`` selected by one keep-index.

    Args:
        sample: a checked sample with ``bboxes``.
        keep: (N,) bool.
        boxes: (N, 4) replacement boxes (before selection), default the sample's.
        masks: (N, H, W) replacement instance masks (before selection), default the sample's.

    Returns:
        dict with ``bboxes``, ``labels``, ``weights`` (ones when absent) and ``masks`` when the
        sample has instance masks.
    """
    boxes = sample["bboxes"] if boxes is None else boxes
    out = {
        "bboxes": np.asarray(boxes, dtype=np.float32)[keep].reshape(-1, 4),
        "labels": sample["labels"][keep],
        "weights": sample.get("weights", np.ones(len(keep), np.float32))[keep],
    }
    if "masks" in sample:
        out["masks"] = (sample["masks"] if masks is None else masks)[keep]
    return out


def concat_instances(parts: list[dict], keep_weights: bool, height: int, width: int) -> dict:
    """Concatenates the outputs of :func:`take`; drops ``weights`` unless ``keep_weights``."""
    out = {
        "bboxes": np.concatenate([p["bboxes"] for p in parts]).astype(np.float32).reshape(-1, 4),
        "labels": np.concatenate([p["labels"] for p in parts]).astype(np.int64),
    }
    if keep_weights:
        out["weights"] = np.concatenate([p["weights"] for p in parts]).astype(np.float32)
    if all("masks" in p for p in parts):
        dtype = np.result_type(*[p["masks"].dtype for p in parts])
        out["masks"] = np.concatenate([p["masks"] for p in parts]).astype(dtype, copy=False).reshape(-1, height, width)
    return out


def mix_label_vectors(vectors: Sequence[np.ndarray], weights: Sequence[float], mixer: str) -> np.ndarray:
    """``sum_i weights[i] * vectors[i]`` as float32 (C,): the image-level labels of a mix.

    Raises:
        ValueError: the sources' ``label_vector`` shapes differ (names the mixer and the shapes).
    """
    if len({np.shape(v) for v in vectors}) > 1:
        raise ValueError(f"{mixer}: label_vector shapes differ: {[np.shape(v) for v in vectors]}")
    return np.einsum("s,sc->c", np.asarray(weights, dtype=np.float64), np.stack(vectors)).astype(np.float32)
