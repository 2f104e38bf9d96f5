"""Training checkpoints: atomic save, checked load, the weights used for inference, and weight files.

A checkpoint is a ``dict`` saved with :func:`torch.save`:

======================  ==========================================================
key                     value
======================  ==========================================================
``model``               state_dict of the bare model (unwrapped from DDP)
``ema``                 state_dict of the EMA weights, or ``None``
``optimizer``           optimizer state_dict
``scheduler``           LR scheduler state_dict
``scaler``              GradScaler state_dict (or ``None``)
``epoch``               number of *completed* epochs
``best_metric``         best value of ``cfg["train"]["metric"]`` so far (or ``None``)
``rng``                 ``{"python", "numpy", "torch", "cuda"}`` generator states
``config``              the resolved config (plain nested dict)
======================  ==========================================================

Extra keys written by ``segdet train``: ``interrupted`` (Ctrl-C mid-epoch: resuming restarts
epoch ``epoch + 1``), ``ema_state`` (EMA weights with its update count), ``stale_epochs`` (for
early stopping), ``classes`` and ``cat_ids`` (the :class:`~segdet.task.DataSpec`, so
``segdet predict`` needs no dataset; ``cat_ids`` is absent from checkpoints of segdet 0.1).
Readers ignore keys they do not use.

Example:
    >>> save_checkpoint({"model": model.state_dict(), "epoch": 3}, "runs/x/weights/last.pt")
    >>> state = inference_state_dict(load_checkpoint("runs/x/weights/last.pt"))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segdet._atomic import atomic_write, fsync_dir

__all__ = [
    "CHECKPOINT_KEYS",
    "copy_checkpoint",
    "inference_state_dict",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
]

CHECKPOINT_KEYS = ("model", "ema", "optimizer", "scheduler", "scaler", "epoch", "best_metric", "rng", "config")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically.

    The dict is written to a temporary file in the same folder, flushed and fsynced, then moved
    over ``path`` with :func:`os.replace`. A crash or an exception during the write leaves any
    previous file at ``path`` intact and removes the temporary file.

    Args:
        state: the checkpoint dict (see the module docstring).
        path: destination file; its folder is created if missing.

    Returns:
        The destination path.
    """
    return atomic_write(path, lambda f: torch.save(state, f))


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` hold the same checkpoint as ``src``, atomically.

    A hard link (no bytes written) where the file system allows it, else a copy; either way
    through a temporary name and :func:`os.replace`, so ``dst`` is never half-written. Later
    :func:`save_checkpoint` calls on ``src`` replace it with a new file and leave ``dst`` alone.
    """
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            import shutil

            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(dst.parent)
    return dst


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the ``.pt`` file.
        map_location: passed to :func:`torch.load`.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        ValueError: the file is not a readable checkpoint dict (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass the path of a .pt file written by segdet train"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt, truncated, or not a torch file
        raise ValueError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); it may be truncated or not a torch file"
        ) from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict")
    return ckpt


def inference_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to run inference with: ``ckpt["ema"]`` when present, else ``ckpt["model"]``.

    Args:
        ckpt: a checkpoint dict from :func:`load_checkpoint`.

    Raises:
        ValueError: the dict has neither ``ema`` nor ``model`` weights.
    """
    state = ckpt.get("ema")
    if state is None:
        state = ckpt.get("model")
    if state is None:
        raise ValueError(f"checkpoint has no 'model' or 'ema' weights (keys: {sorted(ckpt)})")
    return state


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local weights file into ``model`` (strict).

    Accepts a segdet checkpoint (its EMA weights when present, else ``model``), a plain state dict
    of the wrapped model, or a state dict of the bare smp network.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no state dict, or its tensors do not fit the model (the message
            lists missing/unexpected keys or the first shape mismatch).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights: {path} does not exist; give a local .pt file or null")
    obj = load_checkpoint(path)
    state = inference_state_dict(obj) if ("model" in obj or "ema" in obj) else obj
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"model.weights: {path} is not a state dict or a segdet checkpoint")
    own = model.state_dict()
    if not any(k in own for k in state) and all(f"net.{k}" in own for k in state):
        state = {f"net.{k}": v for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"model.weights: {path} does not fit this model (model.arch/encoder/classes differ?): "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise ValueError(
                f"model.weights: {path}: {k} has shape {tuple(v.shape)} but the model expects "
                f"{tuple(own[k].shape)} (a different number of classes?)"
            )
    model.load_state_dict(state)
