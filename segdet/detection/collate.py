"""Batching of detection samples (lists: images in one batch may differ in size)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["detection_collate"]


def _image_tensor(image: np.ndarray, index: int) -> torch.Tensor:
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"sample {index}: 'image' must be an (H, W, C) array, got {shape}")
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    # uint8 pictures and MixUp's float32 blends are both on a 0..255 scale
    return t.float().div_(255.0)


def detection_collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate detection samples of the segdet sample contract.

    Args:
        samples: dicts with ``image`` (H, W, C) uint8 (or float32 on a 0..255 scale after MixUp),
            ``bboxes`` (N, 4) pascal_voc pixels, ``labels`` (N,) 0-based, optional ``masks``
            (N, H, W) uint8, ``weights`` (N,) float32 and ``image_id`` int.

    Returns:
        ``{"image": [B x (C, H_i, W_i) float32 in [0, 1]], "targets": [B x {"boxes": (N, 4)
        float32 xyxy, "labels": (N,) int64 0-based, "weights": (N,) float32, "masks"?: (N, H_i,
        W_i) uint8}], "image_id": [B x int or None]}``. Labels stay 0-based; the model wrapper
        adds the background offset.

    Example:
        >>> s = {"image": np.zeros((32, 48, 3), np.uint8), "bboxes": np.zeros((0, 4), np.float32),
        ...      "labels": np.zeros(0, np.int64)}
        >>> b = detection_collate([s])
        >>> b["image"][0].shape, b["targets"][0]["boxes"].shape
        (torch.Size([3, 32, 48]), torch.Size([0, 4]))
    """
    images, targets, ids = [], [], []
    for i, s in enumerate(samples):
        img = _image_tensor(s["image"], i)
        boxes = torch.as_tensor(np.asarray(s.get("bboxes", np.zeros((0, 4))), dtype=np.float32)).reshape(-1, 4)
        labels = torch.as_tensor(np.asarray(s.get("labels", np.zeros(0)), dtype=np.int64)).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(
                f"sample {i}: {len(boxes)} boxes but {len(labels)} labels; "
                "pass labels through the pipeline's label_fields"
            )
        w = s.get("weights")
        weights = torch.ones(len(boxes)) if w is None else torch.as_tensor(np.asarray(w, dtype=np.float32)).reshape(-1)
        target = {"boxes": boxes, "labels": labels, "weights": weights}
        if s.get("masks") is not None:
            masks = torch.as_tensor(np.asarray(s["masks"], dtype=np.uint8))
            if masks.ndim != 3 or masks.shape[0] != len(boxes):
                raise ValueError(
                    f"sample {i}: {tuple(masks.shape)} instance masks for {len(boxes)} boxes; "
                    "expected (N, H, W) with one mask per box"
                )
            target["masks"] = masks.reshape(-1, img.shape[1], img.shape[2])
        images.append(img)
        targets.append(target)
        image_id = s.get("image_id")
        ids.append(None if image_id is None else int(image_id))
    return {"image": images, "targets": targets, "image_id": ids}
