"""Detector inference on image files: boxes drawn with class names and scores, COCO-format json."""

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

__all__ = ["draw_detections", "predict_images"]


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    *,
    min_width: int = MIN_WIDTH,
) -> np.ndarray:
    """Draw boxes with ``name score`` captions on a copy of ``image``, enlarged when it is small.

    The image is enlarged by the integer factor of :func:`~segdet.palette.upscale_factor`
    (nearest neighbour) to at least ``min_width`` pixels wide and the boxes scaled with it.
    Each box is framed inside its pixels in the colour of its class
    (:func:`~segdet.palette.box_colour`: the colour of mask class ``label + 1`` in segmentation
    overlays and previews, white for a label outside ``class_names``) with its caption on a
    tag of that colour (:func:`~segdet.palette.draw_box`); text and frames grow with the picture.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) xyxy pixels of ``image``.
        labels: (N,) 0-based classes.
        scores: (N,) confidences.
        class_names: name of each class.
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
    out = np.ascontiguousarray(upscale(np.asarray(image), factor)).copy()
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

    Args:
        model: a :class:`segdet.detection.Detector` (0-based labels), any mode (set to eval here).
        image_paths: image files.
        out_dir: output folder (created); drawn images keep the input stem as ``<stem>.png``.
        device: where the model runs.
        class_names: names of the 0-based classes.
        cat_ids: category id of each class in the json (default ``1..K``).
        draw_thresh: detections at or above this score are drawn (all are written to the json).

    Returns:
        Path of ``predictions.json``: a COCO dict with ``images`` (id, file_name, height, width),
        ``categories`` and ``annotations`` (id, image_id, category_id, bbox [x, y, w, h], area,
        score, iscrowd 0).

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
        images.append({"id": image_id, "file_name": str(path), "height": rgb.shape[0], "width": rgb.shape[1]})
        for (x, y, w, h), s, c in zip(pascal_voc_to_coco(boxes).tolist(), scores, labels):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[int(c)],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "score": float(s),
                    "iscrowd": 0,
                }
            )
        keep = scores >= draw_thresh
        drawn = draw_detections(rgb, boxes[keep], labels[keep], scores[keep], class_names)
        ok, png = cv2.imencode(".png", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"could not encode the drawing of {path}")
        atomic_write_bytes(out_dir / f"{path.stem}.png", png.tobytes())
    result = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, class_names)],
    }
    target = out_dir / "predictions.json"
    return atomic_write_text(target, json.dumps(result))
