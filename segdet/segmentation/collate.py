"""Batching segmentation samples: pad to the network stride, images to [0, 1] float."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def collate_segmentation(
    samples: Sequence[dict],
    *,
    ignore_index: int,
    num_classes: int | None = None,
    stride: int = 32,
    mode: str = "multiclass",
) -> dict[str, torch.Tensor]:
    """Stack segmentation samples into a batch padded to a multiple of ``stride``.

    Every image and mask is placed at the top-left of a canvas whose height and width are the
    batch's largest, rounded up to a multiple of ``stride``. Image padding is 0; mask padding
    is ``ignore_index`` (hard masks) or the zero vector (soft masks), so losses and metrics
    never count padded pixels.

    ``mode`` is ``data.mode``. ``multiclass`` and ``binary`` masks are class indices (binary:
    two classes, 0 and 1; the binary loss reads soft two-class masks as the foreground
    probability). ``multilabel`` masks are (H, W, num_classes) integer 0/1 channels (or
    ``ignore_index``) and batch to (B, num_classes, Hp, Wp), padded with ``ignore_index``.

    Args:
        samples: dicts with ``image`` (H, W, C) uint8 (or float on a 0..255 scale) and ``mask``
            (H, W) int class indices, or (H, W, num_classes) float probabilities (MixUp), or
            in ``multilabel`` mode (H, W, num_classes) integer 0/1 channels.
        ignore_index: value of unlabeled pixels in hard masks.
        num_classes: number of classes: hard values must lie in ``0..num_classes-1`` (or be
            ``ignore_index``) and soft masks have this many channels. ``None``: taken from the
            soft masks' channel count; hard values are then only checked to be non-negative.
        stride: pad height and width to a multiple of this (1: no extra padding).
        mode: ``multiclass``, ``binary`` or ``multilabel``.

    Returns:
        ``image``: (B, C, Hp, Wp) float32 in [0, 1] (the image divided by 255);
        ``mask``: (B, Hp, Wp) int64, or (B, num_classes, Hp, Wp) float32 when any sample is
        soft (hard ones one-hot encoded, ignored pixels as zero vectors); multilabel:
        (B, num_classes, Hp, Wp) uint8 (int32 when ``ignore_index`` does not fit in uint8);
        ``sizes``: (B, 2) int64 height and width of each sample before padding; when the samples
        carry them (:class:`~segdet.segmentation.data.ValidationSet`), ``index`` (B,) int64 and
        ``full_mask`` (the annotation before a resizing validation pipeline, batched like
        ``mask`` on a canvas of the largest one, no stride) with its ``full_sizes`` (B, 2).

    Raises:
        ValueError: a hard mask value that is neither a class nor ``ignore_index``; a soft mask
            whose channel count is not ``num_classes``; an image/mask size mismatch; a
            multilabel mask that is not (H, W, num_classes) of 0, 1 and ``ignore_index``.

    Example:
        >>> s = {"image": np.zeros((30, 40, 3), np.uint8), "mask": np.zeros((30, 40), np.uint8)}
        >>> b = collate_segmentation([s], ignore_index=255, num_classes=2)
        >>> tuple(b["image"].shape), tuple(b["mask"].shape)
        ((1, 3, 32, 64), (1, 32, 64))
    """
    if not samples:
        raise ValueError("collate_segmentation got an empty list of samples")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    images = [np.asarray(s["image"]) for s in samples]
    masks = [np.asarray(s["mask"]) for s in samples]
    channels = {im.shape[2] if im.ndim == 3 else 1 for im in images}
    if len(channels) != 1:
        raise ValueError(f"images in one batch have different channel counts {sorted(channels)}")
    c = channels.pop()
    for i, (im, m) in enumerate(zip(images, masks)):
        if m.shape[:2] != im.shape[:2]:
            raise ValueError(f"sample {i}: mask is {m.shape[0]}x{m.shape[1]} but image is {im.shape[0]}x{im.shape[1]}")
    max_h = max(im.shape[0] for im in images)
    max_w = max(im.shape[1] for im in images)
    hp, wp = -(-max_h // stride) * stride, -(-max_w // stride) * stride
    b = len(samples)

    image = torch.zeros((b, c, hp, wp), dtype=torch.float32)
    for i, im in enumerate(images):
        t = torch.from_numpy(np.ascontiguousarray(im.reshape(im.shape[0], im.shape[1], c)))
        image[i, :, : im.shape[0], : im.shape[1]] = t.permute(2, 0, 1).to(torch.float32) / 255.0

    if mode not in ("multiclass", "binary", "multilabel"):
        raise ValueError(f"mode must be multiclass, binary or multilabel (data.mode), got {mode!r}")
    batch = {
        "image": image,
        "mask": _batch_masks(masks, ignore_index, num_classes, mode, hp, wp),
        "sizes": torch.tensor([im.shape[:2] for im in images], dtype=torch.int64),
    }
    if "index" in samples[0]:
        batch["index"] = torch.tensor([int(s["index"]) for s in samples], dtype=torch.int64)
    if "full_mask" in samples[0]:  # the annotation before a resizing validation pipeline, unpadded sizes
        full = [np.asarray(s["full_mask"]) for s in samples]
        fh, fw = max(m.shape[0] for m in full), max(m.shape[1] for m in full)
        batch["full_mask"] = _batch_masks(full, ignore_index, num_classes, mode, fh, fw)
        batch["full_sizes"] = torch.tensor([m.shape[:2] for m in full], dtype=torch.int64)
    return batch


def _batch_masks(
    masks: list[np.ndarray], ignore_index: int, num_classes: int | None, mode: str, hp: int, wp: int
) -> torch.Tensor:
    """The masks of one batch on an (hp, wp) canvas, padded with ``ignore_index`` (soft: zero vectors)."""
    if mode == "multilabel":
        return _multilabel(masks, ignore_index, num_classes, hp, wp)
    b = len(masks)
    soft = any(m.ndim == 3 for m in masks)
    if num_classes is None and soft:
        num_classes = next(m.shape[2] for m in masks if m.ndim == 3)
    if soft:
        mask = torch.zeros((b, num_classes, hp, wp), dtype=torch.float32)
        for i, m in enumerate(masks):
            if m.ndim == 3:
                if m.shape[2] != num_classes:
                    raise ValueError(
                        f"sample {i}: soft mask has {m.shape[2]} channels but num_classes is {num_classes}"
                    )
                mask[i, :, : m.shape[0], : m.shape[1]] = torch.from_numpy(np.ascontiguousarray(m, np.float32)).permute(
                    2, 0, 1
                )
            else:
                hard = _hard(m, i, ignore_index, num_classes)
                valid = hard != ignore_index
                onehot = torch.nn.functional.one_hot(torch.where(valid, hard, 0), num_classes)
                onehot = onehot.permute(2, 0, 1).to(torch.float32) * valid
                mask[i, :, : m.shape[0], : m.shape[1]] = onehot
        return mask
    mask = torch.full((b, hp, wp), ignore_index, dtype=torch.int64)
    for i, m in enumerate(masks):
        mask[i, : m.shape[0], : m.shape[1]] = _hard(m, i, ignore_index, num_classes)
    return mask


def _multilabel(masks: list[np.ndarray], ignore_index: int, num_classes: int | None, hp: int, wp: int) -> torch.Tensor:
    """(B, K, hp, wp) per-class 0/1 channels, ``ignore_index`` in the padding."""
    k = num_classes if num_classes is not None else masks[0].shape[-1] if masks[0].ndim == 3 else 0
    for i, m in enumerate(masks):
        if m.ndim != 3 or m.shape[2] != k or not (np.issubdtype(m.dtype, np.integer) or m.dtype == bool):
            raise ValueError(
                f"sample {i}: a multilabel mask is (H, W, {k}) integer, one 0/1 channel per class; got "
                f"{m.shape} {m.dtype} (data.mode multilabel reads masks/<class>/<stem>.png or COCO categories; "
                "MixUp's soft masks do not apply)"
            )
    dtype = torch.uint8 if 0 <= ignore_index <= 255 else torch.int32
    mask = torch.full((len(masks), k, hp, wp), ignore_index, dtype=dtype)
    for i, m in enumerate(masks):
        bad = (m != 0) & (m != 1) & (m != ignore_index)
        if bad.any():
            values = np.unique(m[bad]).tolist()[:10]
            raise ValueError(
                f"sample {i}: multilabel mask values {values} are neither 0, 1 nor ignore_index {ignore_index}"
            )
        t = torch.from_numpy(np.ascontiguousarray(m)).permute(2, 0, 1)
        mask[i, :, : m.shape[0], : m.shape[1]] = t.to(dtype)
    return mask


def _hard(m: np.ndarray, i: int, ignore_index: int, num_classes: int | None) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(m)).to(torch.int64)
    out_of_range = t < 0 if num_classes is None else (t < 0) | (t >= num_classes)
    bad = out_of_range & (t != ignore_index)
    if bool(bad.any()):
        values = torch.unique(t[bad]).tolist()[:10]
        classes = "a class index >= 0" if num_classes is None else f"a class 0..{num_classes - 1}"
        raise ValueError(
            f"sample {i}: mask values {values} are neither {classes} nor "
            f"ignore_index {ignore_index}; map them to classes (e.g. data.folder.mask_values) or "
            f"fix data.classes / data.ignore_index"
        )
    return t
