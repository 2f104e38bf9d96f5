"""Object detection as a :class:`~segdet.task.Task`.

Data: synthetic shapes, COCO json, Pascal VOC or YOLO folders (0-based ``labels``), the
configured albumentations pipeline on every source, then the mixers of ``augment.mix`` (Mosaic,
MixUp, CutMix, CopyPaste), switched off for the last ``augment.mix_off_last_epochs`` epochs.
Model: a torchvision detector by name (:func:`~segdet.detection.model.build_detector`), random init;
the wrapper maps 0-based classes to the model's labels (background = 0 where it has one).
Loss: the detector's own loss terms, summed. Metrics: COCO box mAP through pycocotools
(:class:`~segdet.detection.evaluator.DetectionEvaluator`), and mask mAP (``mask_map`` ...) for a
detector with a mask head.

Per-box ``weights`` from MixUp travel with the targets, but torchvision's detectors have no
per-box loss weight: every kept box counts fully (as in YOLOX and ultralytics' MixUp).

Export (:meth:`DetectionTask.export_module`): every detector of :data:`DETECTORS` to TorchScript
and to ONNX, the latter through PyTorch's tracing exporter (``torch.export``, the default ONNX
exporter, cannot capture torchvision's detectors: their post-processing sizes depend on the data).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from segdet.checkpoint import load_weights
from segdet.data.mixers import build_mixers
from segdet.task import EXPORT_FORMATS, DataSpec, Evaluator, Exportable, Task

from .anchors import check_anchors
from .collate import detection_collate
from .data import build_detection_data
from .evaluator import MASK_STAT_NAMES, STAT_NAMES, DetectionEvaluator
from .masks_rle import binary_masks
from .model import DETECTORS, Detector, build_detector, needs_masks
from .predict import draw_detections, predict_images

__all__ = ["DetectionTask", "NO_EXPORT"]

#: (model.arch, format) -> why that detector does not export to that format. Empty with torch 2.14
#: and torchvision 0.29: each of DETECTORS exports to both formats and matches PyTorch (README, "Export").
NO_EXPORT: dict[tuple[str, str], str] = {}


class DetectionTask(Task):
    """Object detection with torchvision detectors and COCO mAP.

    The spec's ``cat_ids`` are the data's category ids (COCO), else ``None`` (``1..K`` in the
    written json). Detectors leave heads without a gradient in some steps (no boxes in a batch),
    so DDP looks for unused parameters.
    """

    name = "detection"
    ddp_find_unused_parameters = True

    @property
    def metrics(self) -> tuple[str, ...]:
        """The twelve COCO box numbers, and the twelve mask ones (``mask_map`` ...) for a mask head."""
        return STAT_NAMES + MASK_STAT_NAMES if self.scores_masks else STAT_NAMES

    @property
    def scores_masks(self) -> bool:
        """Whether ``model.arch`` has a mask head, so that validation also scores instance masks."""
        return needs_masks(self.cfg["model"]["arch"])

    def check(self) -> None:
        """Model name, mixer names and metric, checked before any data is read.

        Raises:
            ValueError: an unknown ``model.arch`` or mixer; a ``train.metric`` the task does not
                compute (a mask metric for a detector without a mask head among them).
        """
        if self.cfg["model"]["arch"] not in DETECTORS:
            build_detector(self.cfg["model"]["arch"], 1)  # raises with the closest names
        build_mixers(self.cfg["augment"]["mix"], num_classes=1, ignore_index=self.cfg["data"]["ignore_index"])
        metric = self.cfg["train"]["metric"]
        if metric in MASK_STAT_NAMES and not self.scores_masks:
            masked = ", ".join(a for a in DETECTORS if needs_masks(a))
            raise ValueError(
                f"train.metric {metric!r} is a mask metric, but model.arch {self.cfg['model']['arch']} has no mask "
                f"head, so no mask is scored; use the box metric {metric.removeprefix('mask_')!r} or a Mask R-CNN "
                f"({masked})"
            )
        if metric not in self.metrics:
            raise ValueError(
                f"train.metric {self.cfg['train']['metric']!r} is not a detection metric; "
                f"use one of {', '.join(self.metrics)} (map50 or map are usual)"
            )

    @property
    def needs_masks(self) -> bool:
        """Whether samples carry instance masks: a mask head, or CopyPaste among the mixers."""
        mixers = {next(iter(m)) if isinstance(m, dict) and m else m for m in self.cfg["augment"]["mix"]}
        return needs_masks(self.cfg["model"]["arch"]) or "CopyPaste" in mixers

    def build_datasets(self) -> tuple[Dataset, Dataset, DataSpec]:
        """Training set (pipeline, mixers and their schedule), validation set, and the class names.

        The training set is kept for the anchor check of :meth:`build_model` (its boxes only).
        """
        train, val, spec = build_detection_data(
            self.cfg["data"],
            self.cfg["augment"],
            seed=self.cfg["seed"],
            epochs=self.cfg["train"]["epochs"],
            instance_masks=self.needs_masks,
        )
        self._anchor_boxes = train
        return train, val, spec

    def collate_fn(self, spec: DataSpec) -> Callable[[list[dict]], dict[str, Any]]:
        """:func:`detection_collate`: image tensors and per-image target dicts."""
        return detection_collate

    def build_model(self, spec: DataSpec) -> nn.Module:
        """The torchvision detector of ``model.arch`` for the spec's classes (random init or ``model.weights``).

        After :meth:`build_datasets` it prints how well the anchors cover the training boxes and,
        with ``model.anchors: fit``, fits their sizes (:mod:`segdet.detection.anchors`); weights
        loaded afterwards that hold fitted sizes set them back.
        """
        m = self.cfg["model"]
        model = build_detector(
            m["arch"],
            spec.num_classes,
            min_size=m["min_size"],
            max_size=m["max_size"],
            score_thresh=m["score_thresh"],
            detections_per_img=m["detections_per_img"],
            **(m.get("detector_args") or {}),
        )
        if getattr(self, "_anchor_boxes", None) is not None:  # the datasets were built: check (and fit) the anchors
            check_anchors(model, self._anchor_boxes, m["anchors"], seed=self.cfg["seed"])
        if m.get("weights"):
            load_weights(model, m["weights"])
        return model

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The detector's own loss terms and their sum."""
        terms = model(list(batch["image"]), batch["targets"])
        total = torch.stack([v.float() for v in terms.values()]).sum()
        return total, {k: v.detach() for k, v in terms.items()}

    def make_evaluator(self, spec: DataSpec, device: torch.device) -> Evaluator:
        """COCO mAP (box, and mask for a mask head); COCO data is scored against its original file.

        The file's crowd regions, areas and ``segmentation`` (polygons, RLE) are what the numbers use.
        """
        gt = None
        if self.cfg["data"]["kind"] == "coco":
            path = Path(self.cfg["data"]["coco"]["val_json"])
            try:
                gt = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read the COCO annotation file {path}: {exc}") from exc
        try:
            return DetectionEvaluator(
                list(spec.classes),
                self._category_ids(spec),
                backend=self.cfg["train"]["eval_backend"],
                gt=gt,
                masks=self.scores_masks,
            )
        except ValueError as exc:
            if gt is None:
                raise
            raise ValueError(f"data.coco.val_json = {self.cfg['data']['coco']['val_json']}: {exc}") from exc

    def predict(
        self,
        model: nn.Module,
        spec: DataSpec,
        image_paths: list[Path],
        out_dir: Path,
        device: torch.device,
        amp: torch.dtype | None = None,
    ) -> None:
        """Write each image with its boxes drawn, and every detection to ``predictions.json``.

        A Mask R-CNN adds each image's instance-id PNG and RLE masks in the json
        (:func:`~segdet.detection.predict.predict_images`).

        ``amp`` is not used: detectors predict in full precision.
        """
        predict_images(model, image_paths, out_dir, device, list(spec.classes), self._category_ids(spec))

    def draw_predictions(self, model: nn.Module, batch: dict[str, Any], spec: DataSpec) -> list[np.ndarray]:
        """Ground-truth boxes | predicted boxes (score at least 0.3, as ``segdet predict`` draws) per image.

        With instance masks (Mask R-CNN), both sides fill them as ``segdet predict`` does.
        """
        outputs = model(list(batch["image"]))
        names = list(spec.classes)
        pictures = []
        for image, target, out in zip(batch["image"], batch["targets"], outputs):
            rgb = image[:3].float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            rgb = np.ascontiguousarray(np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb)
            boxes, labels = target["boxes"].cpu().numpy(), target["labels"].cpu().numpy()
            gt_masks = target["masks"].cpu().numpy() if "masks" in target else None
            truth = draw_detections(rgb, boxes, labels, np.ones(len(boxes), np.float32), names, masks=gt_masks)
            keep = out["scores"] >= 0.3
            pred = draw_detections(
                rgb,
                out["boxes"][keep].float().cpu().numpy(),
                out["labels"][keep].cpu().numpy(),
                out["scores"][keep].float().cpu().numpy(),
                names,
                masks=binary_masks(out["masks"][keep]) if "masks" in out else None,
            )
            spacer = np.full((truth.shape[0], 2, 3), 32, np.uint8)
            pictures.append(np.concatenate([truth, spacer, pred], axis=1))
        return pictures

    def export_module(self, model: nn.Module, fmt: str) -> Exportable:
        """The detector in exportable form, labels 0-based as everywhere in segdet.

        TorchScript: ``forward(images: list[Tensor]) -> list[dict[str, Tensor]]``, images (3, H, W)
        float in ``[0, 1]`` of any size, each dict with ``boxes`` (N, 4) xyxy pixels of that image,
        ``scores`` (N,), ``labels`` (N,) int64 (and ``masks`` (N, 1, H, W) for Mask R-CNN), as
        :class:`~segdet.detection.Detector` returns in eval mode. ONNX: one image per run, input
        ``image`` (3, H, W) float in ``[0, 1]`` with dynamic height and width, outputs ``boxes``,
        ``scores``, ``labels`` (and ``masks``) with a dynamic number of detections. Resizing and
        normalisation stay inside; ``model.score_thresh`` and ``model.detections_per_img`` apply.

        Raises:
            ValueError: unknown ``fmt``, or a detector that does not export to it (:data:`NO_EXPORT`).
        """
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
        arch = self.cfg["model"]["arch"]
        if (arch, fmt) in NO_EXPORT:
            others = [a for a in DETECTORS if (a, fmt) not in NO_EXPORT]
            scripted = fmt == "onnx" and (arch, "torchscript") not in NO_EXPORT
            raise ValueError(
                f"model.arch {arch} does not export to {fmt}: {NO_EXPORT[arch, fmt]}; "
                f"{fmt} export works for {', '.join(others)}"
                + ("; --format torchscript exports it" if scripted else "")
            )
        if not isinstance(model, Detector):
            raise ValueError(f"expected a segdet Detector to export, got {type(model).__name__}")
        if fmt == "torchscript":
            module: nn.Module = _ScriptableDetector(model)
            return Exportable(module.eval(), (), ("images",), ("detections",), {})
        outputs = ("boxes", "scores", "labels", "masks") if model.needs_masks else ("boxes", "scores", "labels")
        found = {name: {0: "detections"} for name in outputs}
        return Exportable(
            _OnnxDetector(model).eval(),
            (torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(0)),),
            ("image",),
            outputs,
            {"image": {1: "height", 2: "width"}, **found},
            onnx_exporter="torchscript",
        )

    def _category_ids(self, spec: DataSpec) -> list[int] | None:
        """The spec's category ids; for a checkpoint that predates them, those of the COCO training file."""
        if spec.cat_ids is not None:
            return list(spec.cat_ids)
        if self.cfg["data"]["kind"] != "coco":
            return None
        path = self.cfg["data"]["coco"]["train_json"]
        try:
            cats = json.loads(Path(path).read_text())["categories"]
        except (OSError, ValueError, KeyError) as exc:  # e.g. predicting away from the data
            warnings.warn(
                f"cannot read the categories of {path} ({exc}); category ids 1..K are used in the written json",
                stacklevel=2,
            )
            return None
        return sorted(int(c["id"]) for c in cats)


class _ScriptableDetector(nn.Module):
    """The torchvision model of a :class:`Detector` in eval mode, 0-based labels, for ``torch.jit.script``."""

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.model = det.model
        self.label_offset = int(det.label_offset)

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections of each (3, H, W) image in ``[0, 1]``: ``boxes``, ``scores``, ``labels`` (0-based)."""
        if torch.jit.is_scripting():
            _, detections = self.model(images)  # scripted torchvision detectors return (losses, detections)
        else:
            detections = self.model(images)
        for d in detections:
            d["labels"] = d["labels"] - self.label_offset
        return detections


class _OnnxDetector(nn.Module):
    """One image in, tensors out: the form the ONNX tracing exporter takes.

    R-CNN models get a box decoder without torchvision's Python branch on the number of region
    proposals (``BoxCoder.decode`` reshapes only when there are some): traced, that branch fixes
    one path, and the ONNX graph then fails in onnxruntime on every image whose proposal count
    is zero where the example's was not, and computes wrong boxes in the other case (torchvision
    issues 4623 and 8534). Both paths compute the same boxes.
    """

    def __init__(self, det: Detector) -> None:
        super().__init__()
        self.model = det.model
        heads = getattr(det.model, "roi_heads", None)
        if heads is not None:  # shallow copies: the trained model keeps its own decoder
            heads = _shallow_copy(heads)
            heads.box_coder = _BranchFreeBoxCoder(heads.box_coder, heads.box_predictor.cls_score.out_features)
            self.model = _shallow_copy(det.model)
            self.model.roi_heads = heads
        self.label_offset = int(det.label_offset)
        self.masks = bool(det.needs_masks)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Detections of one (3, H, W) image: ``boxes``, ``scores``, ``labels`` 0-based (and ``masks``)."""
        d = self.model([image])[0]
        out = (d["boxes"], d["scores"], d["labels"] - self.label_offset)
        return (*out, d["masks"]) if self.masks else out


def _shallow_copy(module: nn.Module) -> nn.Module:
    """A new module object sharing the parameters of ``module``; replacing its children leaves ``module`` alone."""
    out = copy.copy(module)
    out._modules = dict(module._modules)
    return out


class _BranchFreeBoxCoder:
    """``BoxCoder.decode`` of the R-CNN box head for ``num_labels`` labels, the same reshape for any count."""

    def __init__(self, coder: Any, num_labels: int) -> None:
        self.coder = coder
        self.num_labels = int(num_labels)

    def decode(self, rel_codes: torch.Tensor, boxes: list[torch.Tensor]) -> torch.Tensor:
        """(N, num_labels, 4) boxes of (N, 4 num_labels) offsets from the N proposals of ``boxes``."""
        codes = rel_codes.reshape(-1, 4 * self.num_labels)
        return self.coder.decode_single(codes, torch.cat(boxes, dim=0)).reshape(-1, self.num_labels, 4)
