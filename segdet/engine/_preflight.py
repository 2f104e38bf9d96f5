"""Checks a training run makes before its first step: the checkpoint it resumes and ``train.metric``.

Both would otherwise fail late or unreadably: a plain state dict given to ``--resume`` raised
``KeyError: 'model'``, a checkpoint of another model a page of ``load_state_dict`` text, and a
``train.metric`` the task does not compute stopped the run only after its first epoch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segdet._images import image_size
from segdet.checkpoint import load_checkpoint, newest_readable_checkpoint
from segdet.task import Task

__all__ = [
    "LARGE_INPUT_FACTOR",
    "RESUME_KEYS",
    "check_metric",
    "warn_large_inputs",
    "check_resume_checkpoint",
    "load_resume_checkpoint",
    "load_resumed_state",
]

#: what ``--resume`` reads from a checkpoint (``segdet train`` writes them all to ``weights/last.pt``)
RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "rng")


def load_resume_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load the checkpoint given to ``--resume``; a corrupt or truncated one names the newest readable one beside it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` cannot be read; the message names it and offers the newest checkpoint
            of its folder that loads (usually ``best.pt``), or says there is none.
    """
    try:
        return load_checkpoint(path)
    except ValueError as exc:
        folder = Path(path).parent
        good = newest_readable_checkpoint(folder, exclude=path)
        offer = (
            f"; the newest readable checkpoint there is {good}: resume with --resume {good}"
            if good is not None
            else f"; {folder} holds no other readable checkpoint, so start a new run without --resume"
        )
        raise ValueError(f"--resume: {exc}{offer}") from None


def check_resume_checkpoint(ckpt: dict[str, Any], path: str | Path, cfg: dict[str, Any]) -> None:
    """Stop unless ``ckpt`` is a ``segdet train`` checkpoint of this config's task.

    Raises:
        ValueError: ``ckpt`` lacks a key of :data:`RESUME_KEYS` (a plain state dict, an exported
            or hand-made file), its run trained another task, or another ``optim.name`` (whose
            state would not carry over); the message names the file, what it holds and what to
            do instead.
    """
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            what = f"a plain state dict ({len(ckpt)} tensors, no optimizer, schedule or epoch)"
        else:
            keys = sorted(map(str, ckpt))
            what = f"a dict with the keys {keys[:8]}{' ...' if len(keys) > 8 else ''} but no {', '.join(missing)}"
        raise ValueError(
            f"--resume {path} holds {what}, not a segdet training checkpoint: --resume continues a run from the "
            f"weights/last.pt that segdet train wrote; to start a new run from these weights, set model.weights={path}"
        )
    old = ckpt.get("config") or {}
    was, now = (old.get("optim") or {}).get("name"), cfg["optim"]["name"]
    if was is not None and was != now and old.get("task", cfg["task"]) == cfg["task"]:
        raise ValueError(
            f"--resume {path} was trained with optim.name {was}, and its optimizer state ({was}'s moments) does not "
            f"carry over to {now}: resume with optim.name={was}, or start a new run from these weights with "
            f"model.weights={path} optim.name={now}"
        )
    trained = old.get("task")
    if trained is not None and trained != cfg["task"]:
        raise ValueError(
            f"--resume {path} is a checkpoint of a {trained} run ({describe_model(ckpt['config'])}), but this config "
            f"trains {cfg['task']}; resume with that run's config.yaml, or start a new run without --resume"
        )


def load_resumed_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, ckpt: dict[str, Any], path: str | Path, cfg: dict[str, Any]
) -> None:
    """Load the checkpoint's model and optimizer state, or stop with what the checkpoint was trained as.

    The optimizer's state (moments, step counts) comes from the checkpoint; its hyperparameters
    (``lr``, ``weight_decay``, ``momentum``/betas, ``initial_lr``) stay those of this config, so a
    changed ``optim.lr`` on ``--resume`` takes effect instead of being announced and ignored.

    Raises:
        ValueError: the weights or the optimizer state do not fit this config's model (another
            ``model.arch``, encoder or class count); the message names the file, both models and
            the first mismatch.
    """
    configured = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        for group, values in zip(optimizer.param_groups, configured, strict=True):
            group.update(values)
    except (RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        trained = ckpt.get("config")
        was = f"the weights of {describe_model(trained, ckpt.get('classes'))}" if trained else "weights"
        raise ValueError(
            f"--resume {path} holds {was}, which do not fit the model of this config "
            f"({describe_model(cfg)}): {first}; resume with that run's config.yaml, or start a new run without "
            "--resume"
        ) from None


def describe_model(cfg: dict[str, Any], classes: Sequence[str] | None = None) -> str:
    """``model.arch X, model.encoder Y`` (the encoder for segmentation only), and the class count when known."""
    model = cfg.get("model") or {}
    text = f"model.arch {model.get('arch')}"
    if cfg.get("task", "segmentation") == "segmentation":
        text += f", model.encoder {model.get('encoder')}"
    return text + (f", {len(classes)} classes" if classes else "")


def check_metric(metric: str, task: Task, classes: Sequence[str] | None = None) -> None:
    """Stop unless the task computes ``train.metric``.

    Accepted: a name of ``task.metrics``, or the per-class key of a mean metric, ``<name>/<class>``
    where ``m<name>`` is in ``task.metrics`` (``iou/road`` for ``miou``). Without ``classes``
    (before the data is read) a per-class key is let through; with them its class must be one.

    Raises:
        ValueError: the task does not compute ``metric``; the message lists what it does.
    """
    if metric in task.metrics:
        return
    name, sep, cls = metric.partition("/")
    per_class = [m[1:] for m in task.metrics if m.startswith("m") and len(m) > 1]
    if sep and name in per_class and (classes is None or cls in classes):
        return
    hint = ""
    if per_class:
        shown = ", ".join(f"{p}/<class>" for p in per_class)
        hint = f", or a per-class key {shown}" + (f" (classes: {', '.join(classes)})" if classes else "")
    raise ValueError(
        f"train.metric {metric!r} is not computed by the {task.name} task, so no epoch could pick best.pt by it; "
        f"choose one of {', '.join(task.metrics)}{hint}"
    )


#: an input image with more than this many times the training input's pixels gets predict's warning
LARGE_INPUT_FACTOR = 4


def warn_large_inputs(paths: Sequence[Path], ckpt: dict[str, Any], inference: dict[str, Any] | None) -> int:
    """Warn once when whole-image prediction gets images far larger than the model was trained on.

    A whole 4000x3000 image through a U-Net trained on 512x512 crops took 6.4 GB of memory; a
    sliding window bounds it. Reads the file headers only. Nothing is checked for a checkpoint
    without ``input_size`` (detection, whose models resize their input; older checkpoints) or
    with ``inference.mode: slide``.

    Args:
        paths: the images to predict.
        ckpt: the checkpoint (its ``input_size``, ``[H, W]`` of the training batches).
        inference: the config's ``inference`` section, or ``None``.

    Returns:
        How many images are over :data:`LARGE_INPUT_FACTOR` times the training area.
    """
    size = ckpt.get("input_size")
    if not size or (inference or {}).get("mode", "whole") != "whole":
        return 0
    limit = LARGE_INPUT_FACTOR * int(size[0]) * int(size[1])
    large = []
    for path in paths:
        try:
            h, w = image_size(path)
        except ValueError:
            continue  # the predictor names an unreadable file itself
        if h * w > limit:
            large.append((path, h, w))
    if large:
        path, h, w = large[0]
        warnings.warn(
            f"{len(large)} of {len(paths)} input images have more than {LARGE_INPUT_FACTOR}x the pixels the model was "
            f"trained on ({size[0]}x{size[1]}), e.g. {path} ({h}x{w}); whole-image prediction of those needs memory "
            f"in proportion (a 4000x3000 image took 6.4 GB); predict in tiles with inference.mode=slide "
            f"inference.tile=[{size[0]},{size[1]}]",
            stacklevel=2,
        )
    return len(large)
