"""The contract between the training loop and a task.

The loop in ``segdet.engine`` knows nothing about masks or boxes. It asks the task for the
datasets, the collate function, the model, the loss of a batch and an evaluator, and moves
tensors to the device. Segmentation and detection each implement this class.

The config passed around is the validated, fully resolved config: a plain nested ``dict``
(``cfg["data"]["batch_size"]``), the same one saved as ``config.yaml`` in the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


class Evaluator:
    """Accumulates metrics over a validation set; shared by per-epoch validation and ``segdet eval``.

    Call ``reset()``, then ``update(model, batch)`` for every batch (the batch already on the
    device, the model in eval mode, under ``torch.no_grad``), then ``compute()``.
    """

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, model: nn.Module, batch: dict[str, Any]) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Flat dict of scalar metrics, e.g. ``{"miou": 0.81, "mdice": 0.88}``; the loop logs
        these to results.csv and picks the best checkpoint by ``cfg["train"]["metric"]``.
        """
        raise NotImplementedError

    def report(self, out_dir: Path) -> str:
        """Write the detailed report (JSON, images) under ``out_dir`` and return the printable table."""
        raise NotImplementedError

    def sync(self) -> None:
        """Reduce state across distributed ranks (no-op in a single process)."""


class Task:
    """One kind of problem. Subclasses hold no state beyond the config."""

    name: str = ""
    #: metric names that grow when the model gets better; the loop maximises them
    metrics: tuple[str, ...] = ()

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        """Training dataset (per-sample pipeline and mixers applied) and validation dataset."""
        raise NotImplementedError

    def collate(self, samples: list[dict]) -> dict[str, Any]:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward the batch (already on the device) and return the total loss and its named terms."""
        raise NotImplementedError

    def make_evaluator(self, device: torch.device) -> Evaluator:
        raise NotImplementedError

    def predict(self, model: nn.Module, image_paths: list[Path], out_dir: Path, device: torch.device) -> None:
        """Run the model (eval mode) on image files and write the task's outputs under ``out_dir``."""
        raise NotImplementedError
