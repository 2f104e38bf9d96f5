"""Tasks plug a kind of problem (segmentation, detection) into the one training loop.

Tasks are looked up by the config's ``task`` name and imported lazily, so importing
``segdet.tasks`` loads neither smp nor torchvision's detectors.

Example:
    >>> task = build_task(cfg)          # cfg["task"] == "segmentation"
    >>> model = task.build_model()
"""

from __future__ import annotations

import importlib
from typing import Any

from segdet._suggest import did_you_mean

from .task import Evaluator, Task

__all__ = ["Task", "Evaluator", "TASKS", "get_task", "build_task"]

#: task name -> "module:Class"
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
