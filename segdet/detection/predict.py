"""Detector inference on image files: boxes (and masks) drawn with class names and scores, COCO-format json.

For a Mask R-CNN each image also gets an instance-id PNG (:func:`instance_ids`) and its
detections carry their masks as COCO RLE.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from augment.box_formats import pascal_voc_to_coco
from segdet._atomic import atomic_write_bytes, atomic_write_text
from segdet._images import read_image
from segdet.palette import MIN_WIDTH, box_colour, draw_box, font_scale, upscale, upscale_factor

from .masks_rle import binary_masks, encode_rle

__all__ = ["MASK_ALPHA", "draw_detections", "instance_ids", "predict_images"]

#: opacity of the filled instance masks in the drawings
MASK_ALPHA = 0.45


def instance_ids(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One instance id per pixel: 0 background, ``k`` for the k-th detection in decreasing score.

    Where instances overlap, the pixel goes to the one with the higher score (the lower id);
    equal scores keep the detections' order.

    Args:
        masks: (N, H, W) binary masks (nonzero inside).
        scores: (N,) confidences.

    Returns:
        (H, W) uint16 ids; detection ``order[k - 1]`` has id ``k`` with ``order`` the stable
        argsort of ``-scores``.

    Raises:
        ValueError: more than 65535 instances (uint16), or masks and scores of different lengths.

    Example:
        >>> m = np.zeros((2, 1, 3), np.uint8); m[0, 0, :2] = 1; m[1, 0, 1:] = 1
        >>> instance_ids(m, np.array([0.4, 0.9])).tolist()
        [[2, 1, 1]]
    """
    masks = np.asarray(masks)
    scores = np.asarray(scores).reshape(-1)
    if masks.ndim != 3 or len(masks) != len(scores):
        raise ValueError(f"instance_ids needs (N, H, W) masks and N scores, got {masks.shape} and {scores.shape}")
    if len(masks) > np.iinfo(np.uint16).max:
        raise ValueError(f"{len(masks)} instances do not fit a uint16 id image; lower model.detections_per_img")
    ids = np.zeros(masks.shape[1:], np.uint16)
    order = np.argsort(-scores, kind="stable")
    for rank in range(len(order) - 1, -1, -1):  # lowest score first: higher scores paint over it
        ids[masks[order[rank]] != 0] = rank + 1
    return ids


def _fill_instances(image: np.ndarray, ids: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``image`` with each instance filled translucent in its class colour and outlined in it."""
    colours = np.array([(0, 0, 0)] + [box_colour(int(c), num_classes) for c in labels], np.float32)
    inside = ids > 0
    out = image.astype(np.float32)
    out[inside] = (1 - MASK_ALPHA) * out[inside] + MASK_ALPHA * colours[ids[inside]]
    edge = np.zeros_like(inside)  # a pixel whose right or lower neighbour belongs to another instance
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    edge[:-1, :] |= ids[:-1, :] != ids[1:, :]
    edge &= inside
    out[edge] = colours[ids[edge]]
    return out.round().astype(np.uint8)


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    *,
    masks: np.ndarray | None = None,
    min_width: int = MIN_WIDTH,
) -> np.ndarray:
    """Draw boxes (and masks) with ``name score`` captions on a copy of ``image``, enlarged when it is small.

    The image is enlarged by the integer factor of :func:`~segdet.palette.upscale_factor`
    (nearest neighbour) to at least ``min_width`` pixels wide and the boxes scaled with it.
    Each box is framed inside its pixels in the colour of its class
    (:func:`~segdet.palette.box_colour`: the colour of mask class ``label + 1`` in segmentation
    overlays and previews, white for a label outside ``class_names``) with its caption on a
    tag of that colour (:func:`~segdet.palette.draw_box`); text and frames grow with the picture.
    With ``masks``, each instance is first filled in its class colour at :data:`MASK_ALPHA` and
    outlined in it, a pixel of overlapping instances belonging to the higher score
    (:func:`instance_ids`).

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) xyxy pixels of ``image``.
        labels: (N,) 0-based classes.
        scores: (N,) confidences.
        class_names: name of each class.
        masks: (N, H, W) binary instance masks of the boxes, or ``None``.
        min_width: narrower images are enlarged; 1 keeps the image's own size.

    Returns:
        (H * f, W * f, 3) uint8 RGB with the drawings.

    Example:
        >>> out = draw_detections(np.zeros((32, 32, 3), np.uint8), np.array([[2, 2, 20, 20]]),
        ...                       np.array([0]), np.array([0.9]), ["cell"])
        >>> out.shape, int(out.max()) > 0
        ((256, 256, 3), True)
    """
    factor = upscale_factor(*image.shape[:2], min_width)
    image = np.asarray(image)
    if masks is not None and len(masks):
        order = np.argsort(-np.asarray(scores, np.float64).reshape(-1), kind="stable")
        image = _fill_instances(image, instance_ids(masks, scores), np.asarray(labels)[order], len(class_names))
    out = np.ascontiguousarray(upscale(image, factor)).copy()
    scale = font_scale(*out.shape[:2])
    thick = max(2, int(round(scale * 3)))
    for box, label, score in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(labels), np.asarray(scores)):
        label = int(label)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        colour = box_colour(label, len(class_names))
        draw_box(
            out,
            np.asarray(box, np.float64) * factor,
            colour,
            f"{name} {float(score):.2f}",
            thickness=thick,
            scale=scale,
        )
    return out


@torch.no_grad()
def predict_images(
    model: nn.Module,
    image_paths: Sequence[Path],
    out_dir: Path,
    device: torch.device,
    class_names: Sequence[str],
    cat_ids: Sequence[int] | None = None,
    draw_thresh: float = 0.3,
) -> Path:
    """Detect objects in image files; write drawn images and ``predictions.json`` under ``out_dir``.

    For a model with a mask head, each image also gets ``<stem>_instances.png``: a uint16
    instance-id image (0 background, 1..N for the detections at or above ``draw_thresh`` in
    decreasing score, an overlapped pixel going to the higher score; :func:`instance_ids`), the
    drawing fills the masks, and each detection in the json has its mask as COCO RLE.

    Args:
        model: a :class:`segdet.detection.Detector` (0-based labels), any mode (set to eval here).
        image_paths: image files.
        out_dir: output folder (created); drawn images keep the input stem as ``<stem>.png``
            (two inputs of one stem overwrite each other's files).
        device: where the model runs.
        class_names: names of the 0-based classes.
        cat_ids: category id of each class in the json (default ``1..K``).
        draw_thresh: detections at or above this score are drawn and, for a mask head, numbered
            in the instance-id PNG (all are written to the json).

    Returns:
        Path of ``predictions.json``: a COCO dict with ``images`` (id, file_name, height, width),
        ``categories`` and ``annotations`` (id, image_id, category_id, bbox [x, y, w, h], area,
        score, iscrowd 0). With masks each annotation adds ``segmentation`` (compressed RLE
        ``{"size": [H, W], "counts": str}``, threshold 0.5), ``area`` is the mask's pixel count
        (as in COCO files), and ``instance_id`` its value in the PNG (0: under ``draw_thresh``).

    Example:
        >>> predict_images(model, [Path("a.jpg")], Path("runs/pred"), torch.device("cpu"),
        ...                ["cell"])  # doctest: +SKIP
    """
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cat_ids = list(cat_ids) if cat_ids is not None else list(range(1, len(class_names) + 1))
    model.eval()
    images, anns = [], []
    for image_id, path in enumerate(image_paths, 1):
        path = Path(path)
        rgb = read_image(path)
        tensor = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float().div_(255).to(device)
        out = model([tensor])[0]
        boxes = out["boxes"].float().cpu().numpy()
        scores = out["scores"].float().cpu().numpy()
        labels = out["labels"].cpu().numpy()
        masks = binary_masks(out["masks"], rgb.shape[:2]) if "masks" in out else None
        keep = scores >= draw_thresh
        rank = np.zeros(len(scores), np.int64)  # instance id in the PNG, 0 for an undrawn detection
        rank[np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]] = np.arange(1, int(keep.sum()) + 1)
        images.append({"id": image_id, "file_name": str(path), "height": rgb.shape[0], "width": rgb.shape[1]})
        rles = encode_rle(masks) if masks is not None else [None] * len(scores)
        areas = masks.reshape(len(masks), -1).sum(axis=1) if masks is not None else None
        for k, ((x, y, w, h), s, c, rle) in enumerate(zip(pascal_voc_to_coco(boxes).tolist(), scores, labels, rles)):
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": cat_ids[int(c)],
                "bbox": [x, y, w, h],
                "area": w * h,
                "score": float(s),
                "iscrowd": 0,
            }
            if rle is not None:
                ann.update(segmentation=rle, area=float(areas[k]), instance_id=int(rank[k]))
            anns.append(ann)
        drawn = draw_detections(
            rgb, boxes[keep], labels[keep], scores[keep], class_names, masks=None if masks is None else masks[keep]
        )
        _write_png(out_dir / f"{path.stem}.png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), path)
        if masks is not None:
            _write_png(out_dir / f"{path.stem}_instances.png", instance_ids(masks[keep], scores[keep]), path)
    result = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, class_names)],
    }
    target = out_dir / "predictions.json"
    return atomic_write_text(target, json.dumps(result))


def _write_png(target: Path, array: np.ndarray, source: Path) -> Path:
    """Encode ``array`` (BGR uint8, or one uint16 channel) as PNG and write it atomically."""
    import cv2

    ok, png = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"could not encode the PNG {target.name} of {source}")
    return atomic_write_bytes(target, png.tobytes())
