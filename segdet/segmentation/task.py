"""Semantic segmentation as a :class:`~segdet.task.Task`.

Data: :func:`~segdet.segmentation.data.build_segmentation_data` (synthetic, folder or COCO, with
the configured augmentation and mixers). Model:
:func:`~segdet.segmentation.model.build_segmentation_model` (smp by name, normalisation inside).
Loss: :class:`losses.ComboLoss` in the mode of ``data.mode`` (hard or soft targets). Metrics:
:class:`~segdet.segmentation.evaluator.SegmentationEvaluator` (dataset-level confusion matrix).
Export: ONNX and TorchScript with dynamic batch, height and width (:meth:`SegmentationTask.export_module`).

``data.mode`` (:data:`~segdet.task.SEGMENTATION_MODES`):

- ``multiclass``: one softmax channel per class, one class per pixel.
- ``binary``: two classes (background, then the foreground); the model has one channel and a
  pixel is the foreground where ``sigmoid(logit) > data.threshold``. The data side is the
  two-class data of multiclass (masks of 0, 1 and ``ignore_index``, every mixer); a soft
  two-class mask (MixUp) enters the loss as the foreground probability.
- ``multilabel``: one sigmoid channel per class, classes may overlap, no background; masks are
  (H, W, K) 0/1 channels, batches (B, K, H, W).

The loss spec reads the same in every mode: ``ce`` is the mode's cross-entropy, softmax
cross-entropy in multiclass and binary cross-entropy (:class:`losses.BCELoss`, with the same
options) in binary and multilabel, so the default ``{ce: 1, dice: 1}`` trains every mode; the
other names are :data:`losses.LOSSES` as they are, run in the mode (``dice_bce`` only in the
sigmoid modes).

Two training modes live in the loss of a batch (and nowhere else: validation, evaluation,
prediction and export run the plain model): ``augment.feature_mix`` mixes the encoder features
of two samples and the targets to match (:mod:`.feature_mix`), and ``distill`` adds the
distillation term of a teacher (:mod:`.distill`), reported as the ``distill`` term.
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
from segdet.config import SCHEMA
from segdet.data.mixers import check_mix_modes
from segdet.palette import overlay_labels, overlay_mask
from segdet.task import EXPORT_FORMATS, SEGMENTATION_MODES, DataSpec, Evaluator, Exportable, Task

from ._confusion import labels_from_logits
from ._multilabel import present_from_logits
from .collate import collate_segmentation
from .data import build_segmentation_data
from .distill import Distiller, load_teacher
from .evaluator import SegmentationEvaluator
from .feature_mix import FeatureMixing, build_feature_mixing, encoder_of
from .inference import Inference
from .model import SegmentationModel, build_segmentation_model, check_model_names
from .predict import predict_segmentation
from .worst import render_worst, worst_entries

__all__ = ["SegmentationTask"]


class SegmentationTask(Task):
    """Semantic segmentation (multiclass, binary, multilabel); batches mix on the device (``augment.batch_mix``)."""

    name = "segmentation"
    metrics = ("miou", "mdice", "pixel_acc")
    batch_mixable = True

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self._loss_fn: nn.Module | None = None
        self._feature_mix: FeatureMixing | None = None
        self._distiller: Distiller | None = None

    def check(self) -> None:
        """Check model names, the mode, the loss spec, the inference section, feature mixing and the teacher up front.

        All before any data is read; the teacher is loaded here (a missing file, another task or
        mode, or a class count that differs from ``data.classes`` fails now).
        """
        check_model_names(self.cfg["model"])
        self._check_mode()
        self._make_loss()
        self.inference()
        self._make_feature_mix()
        distiller = self._make_distiller()
        if distiller is not None and self.cfg["augment"].get("feature_mix"):
            raise ValueError(
                "distill with augment.feature_mix: the teacher would see the plain images while the student's "
                "features are mixed, so its logits would not match the mixed targets; use one of the two"
            )
        if distiller is not None and self.cfg["data"].get("classes"):
            n = len(self.cfg["data"]["classes"])
            distiller.check_classes(1 if self.mode == "binary" and n == 2 else n)

    def _make_feature_mix(self) -> FeatureMixing | None:
        if self._feature_mix is None:
            steps = self.cfg["augment"].get("feature_mix")
            self._feature_mix = build_feature_mixing(steps, self.mode, self.cfg["model"]["encoder"])
        return self._feature_mix

    def _make_distiller(self) -> Distiller | None:
        d = self.cfg.get("distill") or {}
        if not d.get("teacher_checkpoint"):
            changed = [k for k, f in SCHEMA["distill"].items() if k in d and d[k] != f.default]
            if changed:
                raise ValueError(
                    f"distill.{changed[0]} = {d[changed[0]]!r} is set but distill.teacher_checkpoint is null, so "
                    "nothing is distilled; set distill.teacher_checkpoint or remove the distill section"
                )
        if self._distiller is None and d.get("teacher_checkpoint"):
            self._distiller = Distiller(
                load_teacher(d),
                d["loss"],
                d["weight"],
                d["temperature"],
                self.mode,
                student=_data_source(self.cfg["data"]),
            )
        return self._distiller

    @property
    def mode(self) -> str:
        """``data.mode`` of the config."""
        return self.cfg["data"].get("mode") or "multiclass"

    def _check_mode(self) -> None:
        data = self.cfg["data"]
        if self.mode not in SEGMENTATION_MODES:
            raise ValueError(f"data.mode {self.mode!r} is not one of {', '.join(SEGMENTATION_MODES)}")
        if self.mode == "multiclass":
            return
        check_mix_modes(self.cfg["augment"], self.mode)
        threshold = data.get("threshold", 0.5)
        if not 0.0 < threshold < 1.0:
            raise ValueError(
                f"data.threshold = {threshold!r} must lie strictly between 0 and 1 (a pixel is predicted where "
                "sigmoid(logit) > threshold); 0.5 is the usual value"
            )
        if data["ignore_index"] in (0, 1):
            raise ValueError(
                f"data.ignore_index = {data['ignore_index']} is a target value in data.mode {self.mode} "
                "(0 = absent, 1 = present); use a value outside, e.g. 255"
            )

    def inference(self) -> Inference:
        """The config's ``inference`` section: whole image or sliding window, and TTA."""
        return Inference.from_config(self.cfg["inference"])

    def _make_loss(self) -> nn.Module:
        if self._loss_fn is None:
            mode = self.mode
            spec = loss_spec(self.cfg["loss"], mode)
            try:
                self._loss_fn = losses.ComboLoss(spec, mode=mode, ignore_index=self.cfg["data"]["ignore_index"])
            except (TypeError, ValueError) as exc:
                named_ce = any(str(name).lower() == "ce" for name in self.cfg["loss"])
                note = "; ce is bce (binary cross-entropy) there" if mode != "multiclass" and named_ce else ""
                raise ValueError(f"loss: {exc} (data.mode is {mode}{note})") from None
        return self._loss_fn

    def build_datasets(self) -> tuple[Dataset, Dataset, DataSpec]:
        """Training set (pipeline and mixers), validation set, and the class names."""
        return build_segmentation_data(self.cfg["data"], self.cfg["augment"], self.cfg["seed"])

    def collate_fn(self, spec: DataSpec) -> Callable[[list[dict]], dict[str, Any]]:
        """:func:`collate_segmentation` with this config's ``ignore_index`` and the spec's class count and mode."""
        return functools.partial(
            collate_segmentation,
            ignore_index=self.cfg["data"]["ignore_index"],
            num_classes=spec.num_classes,
            mode=spec.mode,
        )

    def build_model(self, spec: DataSpec) -> nn.Module:
        """The smp network of ``model``: one output channel per class, one in binary mode.

        With ``augment.feature_mix`` its stages are checked against the encoder here, before the
        first step (:meth:`~.feature_mix.FeatureMixing.check_stages`).
        """
        model = build_segmentation_model(self.cfg["model"], spec.out_channels)
        mixing = self._make_feature_mix()
        if mixing is not None:
            mixing.check_stages(encoder_of(model))
        return model

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:class:`losses.ComboLoss` of the logits against ``batch["mask"]`` (hard or soft), plus distillation.

        With ``augment.feature_mix`` the forward pass mixes the encoder features and the targets
        are mixed to match (:class:`~.feature_mix.FeatureMixing`); with ``distill`` the weighted
        distillation term is added (its unweighted value is the ``distill`` term). In binary
        mode a soft two-class mask (MixUp) becomes the foreground probability
        (:func:`binary_target`).
        """
        loss_fn = self._make_loss()
        ignore = self.cfg["data"]["ignore_index"]
        target = batch["mask"]
        mixing = self._make_feature_mix()
        if mixing is not None:
            logits, target = mixing.forward(model, batch["image"], target, ignore)
        else:
            logits = model(batch["image"])
        if self.mode == "binary":
            target = binary_target(target, ignore)
        total = loss_fn(logits, target)
        terms = dict(getattr(loss_fn, "last_terms", None) or {})
        distiller = self._make_distiller()
        if distiller is not None:
            distill = distiller(logits, batch["image"], batch.get("sizes"))
            total = total + distiller.weight * distill
            terms["distill"] = distill.detach()
        return total, terms

    def make_evaluator(self, spec: DataSpec, device: torch.device) -> Evaluator:
        """A confusion-matrix evaluator over the spec's classes, in the spec's mode and threshold."""
        return SegmentationEvaluator(
            spec.num_classes,
            self.cfg["data"]["ignore_index"],
            spec.classes,
            device,
            inference=self.inference(),
            mode=spec.mode,
            threshold=spec.threshold,
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
        """Write a class-index PNG (multilabel: one 0/255 PNG per class) and a colour overlay per image."""
        predict_segmentation(
            model,
            image_paths,
            out_dir,
            spec.classes,
            device,
            autocast_dtype=amp,
            inference=self.inference(),
            mode=spec.mode,
            threshold=spec.threshold,
        )

    def worst_picture(
        self,
        model: nn.Module,
        dataset: Dataset,
        spec: DataSpec,
        evaluator: Evaluator,
        k: int,
        device: torch.device,
        amp: torch.dtype | None = None,
    ) -> np.ndarray | None:
        """Image | ground truth | prediction of the ``k`` images of lowest mean IoU (:mod:`.worst`)."""
        if not isinstance(evaluator, SegmentationEvaluator):
            raise TypeError(f"expected the SegmentationEvaluator of this task, got {type(evaluator).__name__}")
        entries = worst_entries(evaluator.per_image(getattr(dataset, "names", None)), k)
        return render_worst(model, dataset, self.collate_fn(spec), evaluator, entries, torch.device(device), amp)

    def draw_predictions(self, model: nn.Module, batch: dict[str, Any], spec: DataSpec) -> list[np.ndarray]:
        """Image | ground truth | prediction per image, cropped to the image's own size (no padding).

        The masks are overlaid in the class palette of :mod:`segdet.palette` (class 0 left plain,
        ``ignore_index`` white); a soft ground truth shows its most likely class. Binary
        predictions are cut at the spec's threshold; multilabel panels colour every class present
        (:func:`~segdet.palette.overlay_labels`).
        """
        if spec.mode == "multilabel":
            return self._draw_labels(model, batch, spec)
        pred = labels_from_logits(model(batch["image"]), spec.num_classes, spec.threshold).cpu().numpy()
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

    def _draw_labels(self, model: nn.Module, batch: dict[str, Any], spec: DataSpec) -> list[np.ndarray]:
        present = present_from_logits(model(batch["image"]), spec.num_classes, spec.threshold).cpu().numpy()
        truth = (batch["mask"] == 1).cpu().numpy()
        images = _pictures(batch["image"])
        sizes = batch.get("sizes")
        pictures = []
        for i, image in enumerate(images):
            h, w = (int(v) for v in sizes[i]) if sizes is not None else image.shape[:2]
            image = np.ascontiguousarray(image[:h, :w])
            panels = [overlay_labels(image, m[i, :, :h, :w]) for m in (truth, present)]
            pictures.append(_side_by_side([image, *panels]))
        return pictures

    def export_module(self, model: nn.Module, fmt: str) -> Exportable:
        """The model as one graph: (B, 3, H, W) float images in ``[0, 1]`` -> (B, K, H, W) logits.

        Normalisation and padding to the stride stay inside, as in :class:`SegmentationModel`;
        batch, height and width are dynamic in both formats. The output is the raw logits in
        every mode: K = 1 in binary mode (foreground where ``sigmoid > data.threshold``), one
        sigmoid channel per class in multilabel mode.

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


def loss_spec(spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """The ``loss`` spec as :class:`losses.ComboLoss` takes it in ``mode``: ``ce`` is ``bce`` in binary and multilabel.

    Raises:
        ValueError: both ``ce`` and ``bce`` in a sigmoid mode (they would be the same term).

    Example:
        >>> loss_spec({"ce": 1.0, "dice": 1.0}, "binary")
        {'bce': 1.0, 'dice': 1.0}
    """
    if mode == "multiclass" or not isinstance(spec, dict):
        return spec
    names = {str(k).lower(): k for k in spec}
    if "ce" in names and "bce" in names:
        raise ValueError(
            f"loss: in data.mode {mode} ce means bce (binary cross-entropy), and the spec lists both "
            f"{names['ce']!r} and {names['bce']!r}; keep one"
        )
    return {("bce" if str(k).lower() == "ce" else k): v for k, v in spec.items()}


def _data_source(data: dict[str, Any]) -> str:
    """The student's data in words, for messages: the kind and its training files."""
    kind = data.get("kind", "synthetic")
    path = {
        "folder": (data.get("folder") or {}).get("train"),
        "coco": (data.get("coco") or {}).get("train_json"),
    }.get(kind)
    return f"data.kind {kind} ({path})" if path else f"data.kind {kind}"


def binary_target(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """A binary-mode loss target: hard (B, H, W) masks as they are; soft two-class masks as the foreground probability.

    A soft (B, 2, H, W) mask (MixUp of two-class masks) becomes (B, 1, H, W) float ``p_1 / (p_0 +
    p_1)``, and ``ignore_index`` where ``p_0 + p_1 = 0`` (a pixel unlabelled in both sources).

    Raises:
        ValueError: a soft mask with another number of channels.
    """
    if target.ndim != 4 or not torch.is_floating_point(target):
        return target
    if target.shape[1] != 2:
        raise ValueError(f"a soft binary-mode target has two channels (background, foreground), got {target.shape[1]}")
    mass = target.sum(1, keepdim=True)
    fg = target[:, 1:2] / mass.clamp_min(torch.finfo(target.dtype).tiny)
    return torch.where(mass > 0, fg, torch.full_like(fg, float(ignore_index)))


def _pictures(images: torch.Tensor) -> np.ndarray:
    """(B, H, W, 3) uint8 of a batch of (B, C, H, W) images in [0, 1]."""
    images = images[:, :3].float().clamp(0, 1).mul(255).round().to(torch.uint8)
    images = images.permute(0, 2, 3, 1).cpu().numpy()
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


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
