"""Object detection as a :class:`~segdet.task.Task`.

Data: synthetic shapes, COCO json, Pascal VOC or YOLO folders (0-based ``labels``), the
configured albumentations pipeline on every source, then the mixers of ``augment.mix`` (Mosaic,
MixUp, CutMix, CopyPaste), switched off for the last ``augment.mix_off_last_epochs`` epochs.
Model: a torchvision detector by name (:func:`segdet.detection.build_detector`), random init;
the wrapper maps 0-based classes to the model's labels (background = 0 where it has one).
Loss: the detector's own loss terms, summed. Metrics: COCO mAP through pycocotools
(:class:`segdet.detection.DetectionEvaluator`).

Per-box ``weights`` from MixUp travel with the targets, but torchvision's detectors have no
per-box loss weight: every kept box counts fully (as in YOLOX and ultralytics' MixUp).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..task import Evaluator, Task

__all__ = ["DetectionTask"]


class _DetectionSource:
    """A dataset's samples reduced to the detection contract, each with its ``image_id``."""

    def __init__(self, dataset: Any, keep_masks: bool) -> None:
        self.dataset = dataset
        self.keep_masks = keep_masks
        self.image_ids = getattr(dataset, "image_ids", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = dict(self.dataset[index])
        s.pop("mask", None)
        if not self.keep_masks:
            s.pop("masks", None)
        s["bboxes"] = np.asarray(s.get("bboxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
        s["labels"] = np.asarray(s.get("labels", np.zeros(0)), np.int64).reshape(-1)
        if "image_id" not in s:
            s["image_id"] = int(self.image_ids[index]) if self.image_ids is not None else int(index)
        return s


class _MixSchedule(Dataset):
    """A :class:`augment.MixDataset` whose mixers are off from epoch ``off_from`` (0-based) on."""

    def __init__(self, mix: Any, off_from: int) -> None:
        self.mix = mix
        self.mixers = list(mix.mixers)
        self.off_from = off_from

    def set_epoch(self, epoch: int) -> None:
        self.mix.set_epoch(epoch)
        self.mix.mixers = [] if epoch >= self.off_from else list(self.mixers)

    def __len__(self) -> int:
        return len(self.mix)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.mix[index]


class DetectionTask(Task):
    """Object detection with torchvision detectors and COCO mAP.

    ``classes`` comes from ``data.classes`` or, when null, from the data (after
    :meth:`build_datasets`); ``cat_ids`` are the data's category ids (COCO), else ``1..K``.
    """

    name = "detection"
    metrics = (
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

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        data = cfg["data"]
        self.classes: list[str] | None = list(data["classes"]) if data["classes"] is not None else None
        if self.classes is None and data["kind"] == "synthetic":
            from ..data.synthetic import SyntheticShapes

            self.classes = list(SyntheticShapes.BOX_CLASSES)
        self.cat_ids: list[int] | None = None

    def check(self) -> None:
        """Model name, mixer names and metric, checked before any data is read."""
        from ..data import build_mixers
        from .model import DETECTORS, build_detector

        if self.cfg["model"]["arch"] not in DETECTORS:
            build_detector(self.cfg["model"]["arch"], 1)  # raises with the closest names
        build_mixers(self.cfg["augment"]["mix"], num_classes=1, ignore_index=self.cfg["data"]["ignore_index"])
        if self.cfg["train"]["metric"] not in self.metrics:
            raise ValueError(
                f"train.metric {self.cfg['train']['metric']!r} is not a detection metric; "
                f"use one of {', '.join(self.metrics)} (map50 or map are usual)"
            )

    # data --------------------------------------------------------------------------------------
    @property
    def needs_masks(self) -> bool:
        from .model import needs_masks

        mixers = {next(iter(m)) if isinstance(m, dict) and m else m for m in self.cfg["augment"]["mix"]}
        return needs_masks(self.cfg["model"]["arch"]) or "CopyPaste" in mixers

    def _raw_datasets(self) -> tuple[Any, Any, list[str], list[int] | None]:
        data = self.cfg["data"]
        kind = data["kind"]
        if kind == "synthetic":
            from ..data.synthetic import SyntheticShapes

            syn = data["synthetic"]
            args = dict(height=syn["height"], width=syn["width"], seed=syn["seed"])
            train = SyntheticShapes(syn["train_size"], split="train", **args)
            val = SyntheticShapes(syn["val_size"], split="val", **args)
            names, cat_ids = list(SyntheticShapes.BOX_CLASSES), None
        elif kind == "coco":
            from ..data.coco import CocoDataset

            c = data["coco"]
            opts = dict(
                with_mask=False,
                with_boxes=True,
                with_instance_masks=self.needs_masks,
                ignore_index=data["ignore_index"],
            )
            train = CocoDataset(c["train_json"], c["train_images"], **opts)
            val = CocoDataset(c["val_json"], c["val_images"], **opts)
            if val.cat_ids != train.cat_ids:
                raise ValueError(
                    f"{c['val_json']} has category ids {val.cat_ids} but {c['train_json']} has "
                    f"{train.cat_ids}; both files need the same categories"
                )
            names, cat_ids = list(train.box_classes), list(train.cat_ids)
        elif kind == "voc":
            from ..data.voc import VocDataset

            v = data["voc"]
            train = VocDataset(v["train"], v["train_split"], self.classes, v["keep_difficult"])
            val = VocDataset(v["val"], v["val_split"], train.classes, v["keep_difficult"])
            names, cat_ids = train.classes, None
        elif kind == "yolo":
            from ..data.yolo import YoloDataset

            y = data["yolo"]
            train = YoloDataset(y["train"], self.classes)
            val = YoloDataset(y["val"], train.classes)
            names, cat_ids = train.classes, None
        else:
            raise ValueError(f"data.kind {kind!r} has no detection loader; use synthetic, coco, voc or yolo")
        if data["classes"] is not None and len(data["classes"]) != len(names):
            raise ValueError(
                f"data.classes lists {len(data['classes'])} names but the {kind} data has "
                f"{len(names)} classes ({names}); fix data.classes or set it to null"
            )
        return train, val, (list(data["classes"]) if data["classes"] is not None else names), cat_ids

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        import augment

        from ..data import build_mixers, build_pipeline

        train, val, self.classes, self.cat_ids = self._raw_datasets()
        aug = self.cfg["augment"]
        seed = self.cfg["seed"]
        fields = ("labels", "weights")

        def pipeline(key: str) -> Any:  # None for an empty list: nothing to run
            steps = aug[key]
            return build_pipeline(steps, boxes=True, label_fields=fields, key=f"augment.{key}") if steps else None

        pre, post = pipeline("train"), pipeline("post")
        mixers = build_mixers(aug["mix"], num_classes=len(self.classes), ignore_index=self.cfg["data"]["ignore_index"])
        mix = augment.MixDataset(_DetectionSource(train, self.needs_masks), mixers, pre=pre, post=post, seed=seed)
        off_from = self.cfg["train"]["epochs"] - aug["mix_off_last_epochs"]
        train_ds = _MixSchedule(mix, off_from)
        val_ds = augment.MixDataset(_DetectionSource(val, self.needs_masks), [], pre=pipeline("val"), seed=seed)
        return train_ds, val_ds

    def collate(self, samples: list[dict]) -> dict[str, Any]:
        from .collate import detection_collate

        return detection_collate(samples)

    # model -------------------------------------------------------------------------------------
    def _class_names(self) -> list[str]:
        if self.classes is None:
            _, _, self.classes, self.cat_ids = self._raw_datasets()
        return self.classes

    def _category_ids(self) -> list[int] | None:
        if self.cat_ids is None and self.cfg["data"]["kind"] == "coco":
            path = self.cfg["data"]["coco"]["train_json"]
            try:
                cats = json.loads(Path(path).read_text())["categories"]
            except (OSError, ValueError, KeyError) as exc:  # e.g. predicting away from the data
                warnings.warn(
                    f"cannot read the categories of {path} ({exc}); category ids 1..K are used in the written json",
                    stacklevel=2,
                )
                return None
            self.cat_ids = sorted(int(c["id"]) for c in cats)
        return self.cat_ids

    def build_model(self) -> nn.Module:
        from ..segmentation.model import load_weights
        from .model import build_detector

        m = self.cfg["model"]
        model = build_detector(
            m["arch"],
            len(self._class_names()),
            min_size=m["min_size"],
            max_size=m["max_size"],
            score_thresh=m["score_thresh"],
            detections_per_img=m["detections_per_img"],
            **(m.get("detector_args") or {}),
        )
        if m.get("weights"):
            load_weights(model, m["weights"])
        return model

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = model(list(batch["image"]), batch["targets"])
        total = torch.stack([v.float() for v in terms.values()]).sum()
        return total, {k: v.detach() for k, v in terms.items()}

    # evaluation and inference ------------------------------------------------------------------
    def make_evaluator(self, device: torch.device) -> Evaluator:
        from .evaluator import DetectionEvaluator

        gt = None
        if self.cfg["data"]["kind"] == "coco":  # score against the original file: crowd regions, areas
            path = Path(self.cfg["data"]["coco"]["val_json"])
            try:
                gt = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read the COCO annotation file {path}: {exc}") from exc
        return DetectionEvaluator(
            self._class_names(), self._category_ids(), backend=self.cfg["train"]["eval_backend"], gt=gt
        )

    def predict(self, model: nn.Module, image_paths: list[Path], out_dir: Path, device: torch.device) -> None:
        from .predict import predict_images

        predict_images(model, image_paths, out_dir, device, self._class_names(), self._category_ids())
