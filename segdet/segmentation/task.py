"""Semantic segmentation as a :class:`~segdet.task.Task`.

Data: :func:`segdet.data.build_segmentation_data` (synthetic, folder or COCO, with the configured
augmentation and mixers). Model: :func:`segdet.segmentation.model.build_segmentation_model` (smp by name,
normalisation inside). Loss: :class:`losses.ComboLoss` in multiclass mode (hard or soft targets).
Metrics: :class:`segdet.segmentation.SegmentationEvaluator` (dataset-level confusion matrix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..task import Evaluator, Task

__all__ = ["SegmentationTask"]


class SegmentationTask(Task):
    """Multiclass semantic segmentation.

    ``classes`` comes from ``cfg["data"]["classes"]`` or, when that is null, from the data (after
    :meth:`build_datasets`).
    """

    name = "segmentation"
    metrics = ("miou", "mdice", "pixel_acc")

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.classes: list[str] | None = cfg["data"]["classes"]
        self._loss_fn: nn.Module | None = None

    def check(self) -> None:
        """Check model names and the loss spec up front (before any data is read)."""
        from .model import check_model_names

        check_model_names(self.cfg["model"])
        self._make_loss()

    def _make_loss(self) -> nn.Module:
        if self._loss_fn is None:
            import losses

            try:
                self._loss_fn = losses.ComboLoss(
                    self.cfg["loss"], mode="multiclass", ignore_index=self.cfg["data"]["ignore_index"]
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"loss: {exc}") from None
        return self._loss_fn

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        from .data import build_segmentation_data

        train, val, classes = build_segmentation_data(self.cfg)
        self.classes = list(classes)
        return train, val

    def collate(self, samples: list[dict]) -> dict[str, Any]:
        from .collate import collate_segmentation

        return collate_segmentation(
            samples,
            ignore_index=self.cfg["data"]["ignore_index"],
            num_classes=len(self.classes) if self.classes is not None else None,
        )

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            raise RuntimeError(
                "class names are read from the data: call build_datasets() first (or set data.classes in the config)"
            )
        return len(self.classes)

    def build_model(self) -> nn.Module:
        from .model import build_segmentation_model

        return build_segmentation_model(self.cfg["model"], self.num_classes)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_fn = self._make_loss()
        logits = model(batch["image"])
        total = loss_fn(logits, batch["mask"])
        return total, dict(getattr(loss_fn, "last_terms", None) or {})

    def make_evaluator(self, device: torch.device) -> Evaluator:
        from .evaluator import SegmentationEvaluator

        return SegmentationEvaluator(self.num_classes, self.cfg["data"]["ignore_index"], self.classes, device)

    def predict(self, model: nn.Module, image_paths: list[Path], out_dir: Path, device: torch.device) -> None:
        from ..engine._runtime import select_amp
        from .predict import predict_segmentation

        amp = select_amp(self.cfg["train"]["amp"], torch.device(device))
        predict_segmentation(model, image_paths, out_dir, self.classes, device, autocast_dtype=amp)
