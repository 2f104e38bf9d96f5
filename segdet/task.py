"""The contract between the training loop and a task, and the registry of tasks.

The loop in ``segdet.engine`` knows nothing about masks or boxes. It asks the task for the
datasets (and the :class:`DataSpec` they describe), the collate function, the model, the loss of
a batch and an evaluator, and moves tensors to the device. What the loop does differently for a
task it reads from the task's capability attributes (``batch_mixable``,
``ddp_find_unused_parameters``), never from its name. The training log asks the task for
pictures of its predictions (:meth:`Task.draw_predictions`); ``segdet export`` asks it for the
trained model in a form the exporters take (:meth:`Task.export_module`, an :class:`Exportable`).
``segdet/segmentation/`` and ``segdet/detection/`` each implement :class:`Task` in their
``task.py``.

A task holds the validated, fully resolved config (a plain nested ``dict``, the one saved as
``config.yaml`` in the run folder) and nothing the data decides: ``build_datasets`` returns the
class names and ids as a :class:`DataSpec`, which the caller hands to ``build_model``,
``collate_fn``, ``make_evaluator`` and ``predict``. A checkpoint stores the spec, so
``segdet predict`` needs no dataset.

Tasks are looked up by the config's ``task`` name in :data:`TASKS` and imported on first use, so
importing this module loads neither smp nor torchvision's detectors.

Example:
    >>> task = build_task(cfg)  # doctest: +SKIP
    >>> train_ds, val_ds, spec = task.build_datasets()  # doctest: +SKIP
    >>> model = task.build_model(spec)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from segdet._suggest import did_you_mean

__all__ = [
    "DataSpec",
    "EXPORT_FORMATS",
    "SEGMENTATION_MODES",
    "Evaluator",
    "Exportable",
    "Task",
    "TASKS",
    "get_task",
    "build_task",
]

#: the file formats ``segdet export`` writes
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")


#: segmentation modes (``data.mode``): softmax over classes, one sigmoid channel, one sigmoid channel per class
SEGMENTATION_MODES: tuple[str, ...] = ("multiclass", "binary", "multilabel")


@dataclass(frozen=True)
class DataSpec:
    """What the data decides about a model: its class names and, for COCO data, category ids.

    Attributes:
        classes: class names in index order. Segmentation: ``classes[0]`` is mask value 0
            (the background; in ``multilabel`` mode there is none, class ``k`` is channel ``k``).
            Detection: 0-based box labels (no background entry).
        cat_ids: dataset category id of each class (COCO json), or ``None`` for ``1..K``.
        mode: segmentation mode (``data.mode``): ``multiclass`` (one softmax channel per class),
            ``binary`` (two classes, one sigmoid channel for ``classes[1]``) or ``multilabel``
            (one sigmoid channel per class). Detection leaves the default.
        threshold: binary / multilabel: a pixel shows a class where ``sigmoid(logit) >
            threshold``, strictly inside (0, 1).

    Raises:
        ValueError: no class names, an unknown mode, a binary spec without exactly two classes,
            or a threshold outside (0, 1).

    Example:
        >>> spec = DataSpec(("background", "cell"))
        >>> spec.num_classes, spec.out_channels
        (2, 2)
        >>> DataSpec(("background", "cell"), mode="binary").out_channels
        1
    """

    classes: tuple[str, ...]
    cat_ids: tuple[int, ...] | None = None
    mode: str = "multiclass"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.classes, str) or not self.classes:
            raise ValueError(f"DataSpec needs a non-empty sequence of class names, got {self.classes!r}")
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.mode not in SEGMENTATION_MODES:
            raise ValueError(
                f"data.mode {self.mode!r}{did_you_mean(str(self.mode), SEGMENTATION_MODES, n=1)} is not one of "
                f"{', '.join(SEGMENTATION_MODES)}"
            )
        if self.mode == "binary" and len(self.classes) != 2:
            raise ValueError(
                f"data.mode is binary but there are {len(self.classes)} classes {list(self.classes)}; binary "
                "segmentation has two (background first, then the foreground), e.g. data.classes: "
                "[background, object]; use data.mode: multiclass or multilabel for more"
            )
        threshold = self.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
            raise ValueError(
                f"data.threshold = {threshold!r} must lie strictly between 0 and 1 (a pixel is predicted "
                "where sigmoid(logit) > threshold); 0.5 is the usual value"
            )
        object.__setattr__(self, "threshold", float(threshold))
        if self.cat_ids is not None:
            if len(self.cat_ids) != len(self.classes):
                raise ValueError(
                    f"DataSpec has {len(self.classes)} classes but {len(self.cat_ids)} category ids "
                    f"{list(self.cat_ids)}"
                )
            object.__setattr__(self, "cat_ids", tuple(int(i) for i in self.cat_ids))

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def out_channels(self) -> int:
        """Output channels of a segmentation model: 1 in binary mode, else one per class."""
        return 1 if self.mode == "binary" else self.num_classes

    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint keys that store this spec: ``classes``, ``cat_ids``, ``mode`` and ``threshold``."""
        return {
            "classes": list(self.classes),
            "cat_ids": list(self.cat_ids) if self.cat_ids is not None else None,
            "mode": self.mode,
            "threshold": self.threshold,
        }

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> DataSpec | None:
        """The spec a checkpoint stores, or ``None`` when it has no class names.

        A checkpoint written before segdet stored the mode is ``multiclass`` with threshold 0.5.
        """
        classes = ckpt.get("classes")
        if not classes:
            return None
        return cls(
            tuple(classes),
            ckpt.get("cat_ids"),
            mode=ckpt.get("mode") or "multiclass",
            threshold=ckpt.get("threshold", 0.5),
        )


@dataclass(frozen=True)
class Exportable:
    """A trained model in the form the exporters take: tensors in, tensors out, and the axes that vary.

    :meth:`Task.export_module` returns one; ``segdet export`` (``segdet.engine.export``) writes it.
    For TorchScript the engine scripts ``module`` (``torch.jit.script``: shapes and control flow
    stay dynamic); for ONNX it traces ``module`` on ``example`` with ``torch.onnx.export``.

    Attributes:
        module: the network in eval mode; ``module(*example)`` runs it.
        example: inputs to trace it with (ONNX).
        input_names: names of the ONNX graph's inputs, one per ``example`` tensor.
        output_names: names of the ONNX graph's outputs.
        dynamic_axes: the axes that vary, per input and output name, e.g.
            ``{"image": {0: "batch", 2: "height", 3: "width"}}``.
        onnx_exporter: ``"dynamo"`` (``torch.export``, the default of ``torch.onnx.export``) or
            ``"torchscript"`` (PyTorch's older tracing exporter, for models ``torch.export``
            cannot capture, such as torchvision's detectors).

    Example:
        >>> ex = Exportable(nn.Identity(), (torch.rand(1, 3, 8, 8),), ("image",), ("out",), {"image": {0: "batch"}})
        >>> ex.onnx_exporter
        'dynamo'
    """

    module: nn.Module
    example: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    onnx_exporter: str = "dynamo"


class Evaluator:
    """Accumulates metrics over a validation set; shared by per-epoch validation and ``segdet eval``.

    Call ``reset()``, then ``update(model, batch)`` for every batch (the batch already on the
    device, the model in eval mode, under ``torch.no_grad``), then ``sync()`` and ``compute()``.
    """

    def reset(self) -> None:
        """Forget every batch seen so far."""
        raise NotImplementedError

    def update(self, model: nn.Module, batch: dict[str, Any]) -> None:
        """Run ``model`` on ``batch`` and add the outcome to the running totals."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Flat dict of scalar metrics, e.g. ``{"miou": 0.81, "mdice": 0.88}``.

        The loop logs these to results.csv and picks the best checkpoint by ``train.metric``.
        """
        raise NotImplementedError

    def report(self, out_dir: Path, names: Sequence[str] | None = None) -> str:
        """Write the detailed report (JSON, images) under ``out_dir`` and return the printable table.

        ``names`` (one per validation sample, e.g. the image file names) name the samples in a
        per-sample part of the report, for the tasks that write one.
        """
        raise NotImplementedError

    def sync(self) -> None:
        """Reduce state across distributed ranks (no-op in a single process)."""


class Task:
    """One kind of problem. Subclasses hold the config and nothing the data decides.

    Attributes:
        name: the config's ``task`` value.
        metrics: metric names that grow when the model gets better; the loop maximises them.
        batch_mixable: ``augment.batch_mix`` can mix this task's batches (``image`` (B, C, H, W)
            with a dense ``mask`` target).
        ddp_find_unused_parameters: the model can leave parameters without a gradient in a
            step, so DistributedDataParallel must look for them.
    """

    name: str = ""
    metrics: tuple[str, ...] = ()
    batch_mixable: bool = False
    ddp_find_unused_parameters: bool = False

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Check names and specs before any data is read (default: nothing to check).

        Raises:
            ValueError: a name or option of the config this task cannot use.
        """

    def build_datasets(self) -> tuple[Dataset, Dataset, DataSpec]:
        """Training dataset (per-sample pipeline and mixers applied), validation dataset, and their spec."""
        raise NotImplementedError

    def collate_fn(self, spec: DataSpec) -> Callable[[list[dict]], dict[str, Any]]:
        """The picklable function that batches this task's samples (loader workers call it)."""
        raise NotImplementedError

    def build_model(self, spec: DataSpec) -> nn.Module:
        """The model for ``spec.num_classes`` classes, initialised as the config says."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward the batch (already on the device) and return the total loss and its named terms."""
        raise NotImplementedError

    def make_evaluator(self, spec: DataSpec, device: torch.device) -> Evaluator:
        """A fresh evaluator of this task's metrics."""
        raise NotImplementedError

    def predict(
        self,
        model: nn.Module,
        spec: DataSpec,
        image_paths: list[Path],
        out_dir: Path,
        device: torch.device,
        amp: torch.dtype | None = None,
    ) -> None:
        """Run the model (eval mode, autocast ``amp``) on image files and write the outputs under ``out_dir``."""
        raise NotImplementedError

    def draw_predictions(self, model: nn.Module, batch: dict[str, Any], spec: DataSpec) -> list[np.ndarray]:
        """Pictures of the model's predictions on a validation batch, for the training log (TensorBoard).

        Called with the batch on the device, the model in eval mode, under ``torch.no_grad`` (and
        autocast when the run uses it). Default: no pictures.

        Returns:
            One (H, W, 3) uint8 RGB picture per image of the batch, showing the image, its ground
            truth and the prediction side by side.
        """
        return []

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
        """A picture of the ``k`` validation samples ``evaluator`` (after a full pass) scored worst.

        ``segdet eval`` writes it as ``worst.png``. Default: none (``None``).
        """
        return None

    def export_module(self, model: nn.Module, fmt: str) -> Exportable:
        """The trained ``model`` (eval mode) in the form ``segdet export`` writes as ``fmt``.

        Args:
            model: the model :meth:`build_model` made, with the checkpoint's weights loaded.
            fmt: one of :data:`EXPORT_FORMATS`.

        Raises:
            ValueError: this task's model does not export to ``fmt``; the message names the model
                and what does export (default: the task exports nothing).
        """
        raise ValueError(f"task {self.name!r} does not export models")


#: task name -> "module:Class", imported on first use
TASKS: dict[str, str] = {
    "segmentation": "segdet.segmentation.task:SegmentationTask",
    "detection": "segdet.detection.task:DetectionTask",
}


def get_task(name: str) -> type[Task]:
    """The :class:`Task` subclass registered as ``name``.

    Raises:
        ValueError: unknown name (with the closest registered names).
    """
    if name not in TASKS:
        raise ValueError(f"task {name!r}{did_you_mean(name, TASKS, n=1)} is not one of {', '.join(TASKS)}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_task(cfg: dict[str, Any]) -> Task:
    """Instantiate the task named by ``cfg["task"]`` with the validated config."""
    return get_task(cfg["task"])(cfg)
