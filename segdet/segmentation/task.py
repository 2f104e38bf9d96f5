"""Semantic segmentation as a :class:`~segdet.task.Task`.

Data: :func:`~segdet.segmentation.data.build_segmentation_data` (synthetic, folder or COCO, with
the configured augmentation and mixers). Model:
:func:`~segdet.segmentation.model.build_segmentation_model` (smp by name, normalisation inside).
Loss: :class:`losses.ComboLoss` in multiclass mode (hard or soft targets). Metrics:
:class:`~segdet.segmentation.evaluator.SegmentationEvaluator` (dataset-level confusion matrix).
Export: ONNX and TorchScript with dynamic batch, height and width (:meth:`SegmentationTask.export_module`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

import losses
from segdet.palette import overlay_mask
from segdet.task import EXPORT_FORMATS, DataSpec, Evaluator, Exportable, Task

from ._confusion import labels_from_logits
from .collate import collate_segmentation
from .data import build_segmentation_data
from .evaluator import SegmentationEvaluator
from .inference import Inference
from .model import SegmentationModel, build_segmentation_model, check_model_names
from .predict import predict_segmentation

__all__ = ["SegmentationTask"]


class SegmentationTask(Task):
    """Multiclass semantic segmentation; batches can be mixed on the device (``augment.batch_mix``)."""

    name = "segmentation"
    metrics = ("miou", "mdice", "pixel_acc")
    batch_mixable = True

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self._loss_fn: nn.Module | None = None

    def check(self) -> None:
        """Check model names, the loss spec and the inference section up front (before any data is read)."""
        check_model_names(self.cfg["model"])
        self._make_loss()
        self.inference()

    def inference(self) -> Inference:
        """The config's ``inference`` section: whole image or sliding window, and TTA."""
        return Inference.from_config(self.cfg["inference"])

    def _make_loss(self) -> nn.Module:
        if self._loss_fn is None:
            try:
                self._loss_fn = losses.ComboLoss(
                    self.cfg["loss"], mode="multiclass", ignore_index=self.cfg["data"]["ignore_index"]
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"loss: {exc}") from None
        return self._loss_fn

    def build_datasets(self) -> tuple[Dataset, Dataset, DataSpec]:
        """Training set (pipeline and mixers), validation set, and the class names."""
        return build_segmentation_data(self.cfg["data"], self.cfg["augment"], self.cfg["seed"])

    def collate_fn(self, spec: DataSpec) -> Callable[[list[dict]], dict[str, Any]]:
        """:func:`collate_segmentation` with this config's ``ignore_index`` and the spec's class count."""
        return functools.partial(
            collate_segmentation, ignore_index=self.cfg["data"]["ignore_index"], num_classes=spec.num_classes
        )

    def build_model(self, spec: DataSpec) -> nn.Module:
        """The smp network of ``model`` with one output channel per class."""
        return build_segmentation_model(self.cfg["model"], spec.num_classes)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:class:`losses.ComboLoss` of the logits against ``batch["mask"]`` (hard or soft)."""
        loss_fn = self._make_loss()
        logits = model(batch["image"])
        total = loss_fn(logits, batch["mask"])
        return total, dict(getattr(loss_fn, "last_terms", None) or {})

    def make_evaluator(self, spec: DataSpec, device: torch.device) -> Evaluator:
        """A confusion-matrix evaluator over the spec's classes."""
        return SegmentationEvaluator(
            spec.num_classes, self.cfg["data"]["ignore_index"], spec.classes, device, inference=self.inference()
        )

    def predict(
        self,
        model: nn.Module,
        spec: DataSpec,
        image_paths: list[Path],
        out_dir: Path,
        device: torch.device,
        amp: torch.dtype | None = None,
    ) -> None:
        """Write a class-index PNG and a colour overlay per image."""
        predict_segmentation(
            model, image_paths, out_dir, spec.classes, device, autocast_dtype=amp, inference=self.inference()
        )

    def draw_predictions(self, model: nn.Module, batch: dict[str, Any], spec: DataSpec) -> list[np.ndarray]:
        """Image | ground truth | prediction per image, cropped to the image's own size (no padding).

        The masks are overlaid in the class palette of :mod:`segdet.palette` (class 0 left plain,
        ``ignore_index`` white); a soft ground truth shows its most likely class.
        """
        pred = labels_from_logits(model(batch["image"]), spec.num_classes).cpu().numpy()
        target = batch["mask"]
        if target.ndim == 4:  # soft (B, C, H, W): the likeliest class; all-zero vectors are unlabelled
            labelled = target.sum(1) > 0
            target = torch.where(labelled, target.argmax(1), self.cfg["data"]["ignore_index"])
        truth = target.cpu().numpy()
        images = batch["image"][:, :3].float().clamp(0, 1).mul(255).round().to(torch.uint8)
        images = images.permute(0, 2, 3, 1).cpu().numpy()
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        sizes = batch.get("sizes")
        pictures = []
        for i, image in enumerate(images):
            h, w = (int(v) for v in sizes[i]) if sizes is not None else image.shape[:2]
            image = np.ascontiguousarray(image[:h, :w])
            panels = [overlay_mask(image, m[i, :h, :w], spec.num_classes) for m in (truth, pred)]
            pictures.append(_side_by_side([image, *panels]))
        return pictures

    def export_module(self, model: nn.Module, fmt: str) -> Exportable:
        """The model as one graph: (B, 3, H, W) float images in ``[0, 1]`` -> (B, K, H, W) logits.

        Normalisation and padding to the stride stay inside, as in :class:`SegmentationModel`;
        batch, height and width are dynamic in both formats.

        Raises:
            ValueError: ``fmt`` is not one of :data:`~segdet.task.EXPORT_FORMATS`.
        """
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
        if not isinstance(model, SegmentationModel):
            raise ValueError(f"expected a SegmentationModel to export, got {type(model).__name__}")
        axes = {0: "batch", 2: "height", 3: "width"}
        return Exportable(
            module=_StaticSegmentationModel(model).eval(),
            example=(torch.rand(2, 3, 64, 96),),
            input_names=("image",),
            output_names=("logits",),
            dynamic_axes={"image": axes, "logits": axes},
        )


def _side_by_side(panels: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Equal-height (H, W, 3) uint8 panels left to right, ``gap`` dark pixels apart."""
    spacer = np.full((panels[0].shape[0], gap, 3), 32, np.uint8)
    return np.concatenate([x for panel in panels for x in (panel, spacer)][:-1], axis=1)


class _StaticSegmentationModel(nn.Module):
    """:class:`SegmentationModel` without the Python branch on the input size, for tracers and TorchScript.

    The padding (possibly zero) and the crop always run, so one traced graph serves every height
    and width; the logits equal the wrapped model's.
    """

    def __init__(self, model: SegmentationModel) -> None:
        super().__init__()
        self.net = model.net
        self.stride = int(model.stride)
        self.register_buffer("mean", model.mean.detach().clone(), persistent=False)
        self.register_buffer("std", model.std.detach().clone(), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W) of images (B, C, H, W) in ``[0, 1]``."""
        h, w = image.shape[-2], image.shape[-1]
        x = F.pad(image, (0, (-w) % self.stride, 0, (-h) % self.stride))
        return self.net((x - self.mean) / self.std)[..., :h, :w]
