"""COCO mAP of a detector: the Evaluator shared by per-epoch validation and ``segdet eval``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augment.box_formats import pascal_voc_to_coco
from segdet._atomic import atomic_write_text
from segdet.task import Evaluator

from ._cocoapi import BACKENDS, MASK_STAT_NAMES, STAT_NAMES, evaluate
from .masks_rle import binary_masks, encode_rle, rle_area

__all__ = ["DetectionEvaluator", "MASK_STAT_NAMES", "STAT_NAMES"]


def _write_json(path: Path, obj: Any) -> None:
    """Write through a temporary file and ``os.replace`` so a failure never leaves half a file."""
    atomic_write_text(path, json.dumps(obj))


class DetectionEvaluator(Evaluator):
    """COCO box mAP (pycocotools' COCOeval) over a validation set, and mask mAP for a mask head.

    Ground truth: with ``gt`` (the original COCO annotation dict, for COCO data) the images seen
    are scored against their original annotations, crowd regions and ``area`` values included,
    exactly as the official evaluation does; detections on an image the pipeline resized are
    scaled back to the size the file records. Without ``gt`` (synthetic, VOC, YOLO data) it is
    built in memory from the batches' targets: boxes at each image's own resolution, ``area`` =
    box area, no crowd regions. Detections keep the data's category ids (``cat_ids``) and image
    ids, so the saved ``detections.json`` is a valid COCO result file for the annotation file.

    ``compute()`` returns the twelve COCOeval summary numbers under :data:`STAT_NAMES`:
    ``map`` (AP@[.5:.95]), ``map50``, ``map75``, ``map_small``, ``map_medium``, ``map_large`` and
    ``mar_1`` ... ``mar_large``. As in pycocotools, an area range holding no ground-truth box
    scores -1; an image set with ground truth and no detections scores 0.

    Args:
        class_names: name of each 0-based class.
        cat_ids: COCO category id of each class (default ``1..K``).
        backend: ``"pycocotools"`` or ``"faster-coco-eval"`` (identical numbers, faster).
        gt: the original COCO annotation dict (``images``, ``annotations``, ``categories``);
            batches then carry the COCO ``image_id`` of each image.
        masks: also score instance masks (the detector has a mask head).

    Raises:
        ValueError: an unknown backend; category ids that do not match the class names; with
            ``masks`` and ``gt``, an annotation without ``segmentation``.

    Example:
        >>> ev = DetectionEvaluator(["cell"])
        >>> ev.reset()
        >>> _ = ev.add(0, (32, 32), torch.tensor([[0., 0., 10., 10.]]), torch.tensor([0]),
        ...        torch.tensor([[0., 0., 10., 10.]]), torch.tensor([0.9]), torch.tensor([0]))
        >>> round(ev.compute()["map50"], 3)
        1.0
    """

    def __init__(
        self,
        class_names: Sequence[str],
        cat_ids: Sequence[int] | None = None,
        backend: str = "pycocotools",
        gt: dict | None = None,
        masks: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown eval backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.class_names = [str(c) for c in class_names]
        self.cat_ids = [int(c) for c in cat_ids] if cat_ids is not None else list(range(1, len(class_names) + 1))
        if len(self.cat_ids) != len(self.class_names):
            raise ValueError(f"{len(self.cat_ids)} category ids for {len(self.class_names)} class names")
        self.backend = backend
        self.masks = bool(masks)
        self._file_gt = None
        if gt is not None:
            if self.masks:
                _check_segmentations(gt)
            images = {int(im["id"]): im for im in gt.get("images", [])}
            anns: dict[int, list[dict]] = {}
            for k, a in enumerate(gt.get("annotations", [])):
                a = {"iscrowd": 0, "id": 10**12 + k, **a}
                if "area" not in a:  # COCOeval reads it for the small/medium/large ranges
                    a["area"] = float(a["bbox"][2]) * float(a["bbox"][3])
                anns.setdefault(int(a["image_id"]), []).append(a)
            self._file_gt = (images, anns, list(gt.get("categories", [])))
        self.reset()

    # state -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every image and detection seen so far."""
        self._images: dict[int, dict] = {}
        self._gt: dict[int, list[dict]] = {}
        self._dets: dict[int, list[dict]] = {}
        self._auto_id = 0
        self._result: dict[str, Any] | None = None

    def _new_id(self) -> int:
        while self._auto_id in self._images:
            self._auto_id += 1
        return self._auto_id

    def add(
        self,
        image_id: int | None,
        size: tuple[int, int],
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        gt_masks: torch.Tensor | np.ndarray | None = None,
        masks: torch.Tensor | None = None,
    ) -> int:
        """Record one image: ground truth and detections, boxes (N, 4) xyxy pixels, labels 0-based.

        ``size`` is the (H, W) of the image the boxes are in. With ``masks`` scoring on,
        ``masks`` holds the detections' (M, 1, H, W) probabilities and, without a file's ground
        truth, ``gt_masks`` the (N, H, W) instance mask of each ground-truth box.

        Returns the image id used (``image_id``, or the next free integer when None).

        Raises:
            ValueError: an image id the annotation file lacks; a label outside the classes;
                with mask scoring, missing masks or masks that do not match the boxes.
        """
        image_id = self._new_id() if image_id is None else int(image_id)
        h, w = int(size[0]), int(size[1])
        if self.masks:
            _check_masks(image_id, "detection", masks, len(boxes), (h, w))
            if self._file_gt is None:
                _check_masks(image_id, "ground-truth", gt_masks, len(gt_boxes), (h, w))
        if self._file_gt is not None:
            info = self._file_gt[0].get(image_id)
            if info is None:
                raise ValueError(f"image_id {image_id} is not in the COCO annotation file's images")
            self._images[image_id] = info
            self._gt[image_id] = self._file_gt[1].get(image_id, [])
            file_h, file_w = int(info["height"]), int(info["width"])
            sy, sx = file_h / h, file_w / w
            if (sy, sx) != (1.0, 1.0):  # the pipeline resized the image: boxes back to file pixels
                boxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
        else:
            file_h, file_w = h, w
            self._images[image_id] = {"id": image_id, "height": h, "width": w, "file_name": f"{image_id}"}
            self._gt[image_id] = [
                {"image_id": image_id, "category_id": self._cat(int(c)), "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                for b, c in zip(self._xywh(gt_boxes), gt_labels.tolist())
            ]
            if self.masks:
                gt_np = gt_masks.detach().cpu().numpy() if isinstance(gt_masks, torch.Tensor) else np.asarray(gt_masks)
                for a, rle in zip(self._gt[image_id], encode_rle(gt_np.reshape(-1, h, w))):
                    a["segmentation"] = rle
        self._dets[image_id] = [
            {"image_id": image_id, "category_id": self._cat(int(c)), "bbox": b, "score": float(s)}
            for b, s, c in zip(self._xywh(boxes), scores.tolist(), labels.tolist())
        ]
        if self.masks:  # at the file's resolution, where the boxes were scaled back to
            for d, rle in zip(self._dets[image_id], encode_rle(binary_masks(masks, (file_h, file_w)))):
                d["segmentation"] = rle
        self._result = None
        return image_id

    def _cat(self, label: int) -> int:
        if not 0 <= label < len(self.cat_ids):
            raise ValueError(f"label {label} is outside the {len(self.cat_ids)} classes {self.class_names}")
        return self.cat_ids[label]

    @staticmethod
    def _xywh(boxes: torch.Tensor) -> list[list[float]]:
        return pascal_voc_to_coco(boxes.detach().float().cpu().numpy().reshape(-1, 4)).tolist()

    @torch.no_grad()
    def update(self, model: nn.Module, batch: dict[str, Any]) -> None:
        """Predict the batch (``image``: list of (C, H, W); ``targets``; optional ``image_id``)."""
        images = batch["image"]
        outputs = model(list(images))
        ids = batch.get("image_id") or [None] * len(images)
        for img, target, out, image_id in zip(images, batch["targets"], outputs, ids):
            self.add(
                image_id,
                tuple(img.shape[-2:]),
                target["boxes"],
                target["labels"],
                out["boxes"],
                out["scores"],
                out["labels"],
                gt_masks=target.get("masks"),
                masks=out.get("masks"),
            )

    def sync(self) -> None:
        """Gather every rank's images and detections (``all_gather_object``).

        The first rank that saw an image wins, so the padding repeats of a DistributedSampler count once.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self._images, self._gt, self._dets))
        images: dict[int, dict] = {}
        gt: dict[int, list[dict]] = {}
        dets: dict[int, list[dict]] = {}
        for part_images, part_gt, part_dets in parts:
            for image_id, info in part_images.items():
                if image_id not in images:
                    images[image_id], gt[image_id], dets[image_id] = info, part_gt[image_id], part_dets[image_id]
        self._images, self._gt, self._dets, self._result = images, gt, dets, None

    # results -----------------------------------------------------------------------------------
    def ground_truth(self, iou_type: str = "bbox") -> dict:
        """The COCO ground-truth dict of the images seen so far.

        In-memory annotations are numbered from 1; a file's annotations keep their ids. For
        ``iou_type="segm"`` in-memory annotations carry the mask's pixel count as ``area``.
        """
        anns = []
        for image_id in sorted(self._gt):
            for a in self._gt[image_id]:
                if self._file_gt is not None:
                    anns.append(dict(a))
                    continue
                a = {**a, "id": len(anns) + 1}
                if iou_type == "segm":
                    a["area"] = rle_area([a["segmentation"]])[0]
                anns.append(a)
        cats = [{"id": c, "name": n} for c, n in zip(self.cat_ids, self.class_names)]
        if self._file_gt is not None:
            cats = self._file_gt[2] or cats
        return {"images": [self._images[i] for i in sorted(self._images)], "annotations": anns, "categories": cats}

    def detections(self) -> list[dict]:
        """COCO result list: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score`` (and ``segmentation``).

        ``segmentation`` (with mask scoring) is the COCO compressed RLE ``{"size": [H, W],
        "counts": str}`` at the annotation file's image size.
        """
        return [d for image_id in sorted(self._dets) for d in self._dets[image_id]]

    def _evaluate(self) -> dict[str, Any]:
        if self._result is None:
            if not self._images:
                raise ValueError("DetectionEvaluator.compute() before any update(): the validation set is empty")
            stats, per_class = self._score("bbox")
            if self.masks:
                mask_stats, mask_per_class = self._score("segm")
                stats.update(zip(MASK_STAT_NAMES, mask_stats.values()))
                for name, row in mask_per_class.items():
                    per_class.setdefault(name, {"ap": float("nan"), "ap50": float("nan"), "gt": row["gt"]})
                    per_class[name].update(mask_ap=row["ap"], mask_ap50=row["ap50"])
            self._result = {"stats": stats, "per_class": per_class}
        return self._result

    def _score(self, iou_type: str) -> tuple[dict[str, float], dict[str, dict]]:
        """The twelve numbers of one COCOeval run and the per-class AP, AP50 and ground-truth count."""
        gt = self.ground_truth(iou_type)
        stats, precision, cat_ids = evaluate(gt, self.detections(), backend=self.backend, iou_type=iou_type)
        per_class = {}
        for k, cat in enumerate(int(c) for c in cat_ids):
            name = (
                self.class_names[self.cat_ids.index(cat)]
                if cat in self.cat_ids
                else next(c.get("name", str(cat)) for c in gt["categories"] if c["id"] == cat)
            )
            p = precision[:, :, k, 0, -1]  # area all, maxDets 100
            valid = p[p > -1]
            p50 = p[0][p[0] > -1]
            per_class[name] = {
                "ap": float(valid.mean()) if valid.size else float("nan"),
                "ap50": float(p50.mean()) if p50.size else float("nan"),
                "gt": int(sum(a["category_id"] == cat and not a.get("iscrowd", 0) for a in gt["annotations"])),
            }
        return dict(zip(STAT_NAMES, map(float, stats))), per_class

    def compute(self) -> dict[str, float]:
        """The twelve COCO box statistics by name (``map``, ``map50``, ..., ``mar_large``), then the mask ones.

        The mask statistics (``mask_map`` ... ``mask_mar_large``) are there with mask scoring only.
        """
        return dict(self._evaluate()["stats"])

    def report(self, out_dir: Path, names: Sequence[str] | None = None) -> str:
        """Write ``detections.json`` (COCO results) and ``coco_eval.json`` under ``out_dir`` (``names`` unused).

        ``detections.json`` holds ``segmentation`` RLE with mask scoring; ``coco_eval.json``
        the summary and the per-class AP (``mask_ap``, ``mask_ap50`` too with mask scoring);
        the return value is the printable summary and the per-class table (box and mask AP).
        """
        res = self._evaluate()
        out_dir = Path(out_dir)
        _write_json(out_dir / "detections.json", self.detections())
        _write_json(out_dir / "coco_eval.json", {"backend": self.backend, **res})
        s = res["stats"]
        lines = [f"COCO box mAP ({self.backend}, {len(self._images)} images)", *_summary(s, "")]
        if self.masks:
            lines += [f"COCO mask mAP ({self.backend})", *_summary(s, "mask_")]
        header = f"{'class':<20} {'AP':>8} {'AP50':>8}"
        lines += ["", header + (f" {'mask AP':>8} {'mask AP50':>9}" if self.masks else "") + f" {'boxes':>7}"]
        for name, row in res["per_class"].items():
            line = f"{name:<20} {_ap(row['ap']):>8} {_ap(row['ap50']):>8}"
            if self.masks:
                line += f" {_ap(row.get('mask_ap', math.nan)):>8} {_ap(row.get('mask_ap50', math.nan)):>9}"
            lines.append(line + f" {row['gt']:>7}")
        return "\n".join(lines)


def _summary(stats: dict[str, float], prefix: str) -> list[str]:
    """The summary lines of one COCOeval run (``prefix`` ``""`` for boxes, ``"mask_"`` for masks)."""
    s = {k: stats[prefix + k] for k in STAT_NAMES}
    return [
        f"  mAP@[.5:.95] {s['map']:.4f}   AP50 {s['map50']:.4f}   AP75 {s['map75']:.4f}",
        f"  AP small {s['map_small']:.4f}   medium {s['map_medium']:.4f}   large {s['map_large']:.4f}",
        f"  AR@100 {s['mar_100']:.4f}",
    ]


def _ap(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def _check_masks(image_id: int, what: str, masks: Any, count: int, size: tuple[int, int]) -> None:
    """Stop unless ``masks`` holds ``count`` masks of ``size`` ((N, 1, H, W) or (N, H, W))."""
    if masks is None:
        raise ValueError(
            f"image {image_id}: the evaluator scores instance masks, but its {what} boxes come without masks; "
            f"a mask head needs data with instance masks (COCO segmentation, instances/ PNGs, YOLO polygons)"
        )
    shape = tuple(masks.shape)
    if len(shape) == 4 and shape[1] == 1:
        shape = (shape[0], *shape[2:])
    if shape != (count, *size):
        raise ValueError(
            f"image {image_id}: {what} masks of shape {tuple(masks.shape)} for {count} boxes on a {size[0]}x{size[1]} "
            f"image; expected ({count}, {size[0]}, {size[1]})"
        )


def _check_segmentations(gt: dict) -> None:
    """Stop when an annotation of a COCO file lacks the ``segmentation`` the mask numbers need."""
    for a in gt.get("annotations", []):
        if not a.get("segmentation"):
            raise ValueError(
                f"annotation id {a.get('id')} of image {a.get('image_id')} in the COCO annotation file has no "
                "'segmentation', so instance masks cannot be scored; use a file with masks for a mask head "
                "(or a detector without one)"
            )
