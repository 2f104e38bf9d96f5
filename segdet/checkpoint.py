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

Extra keys written by ``segdet train``: ``position`` (a checkpoint written inside epoch
``epoch + 1``, by ``train.checkpoint_every`` or Ctrl-C: ``batch`` (batches of that epoch done),
``sums``, ``n``, ``images`` and ``skipped`` (the epoch's running loss sums and counts),
``samples`` and ``batch_size`` (what the epoch's order depends on besides seed and epoch) and
``batch_mix_rng`` (the state of the device generator of ``augment.batch_mix``); always written at
the end of an optimizer step, so no accumulated gradient is pending; resuming continues with the
next batch), ``interrupted`` (stopped by Ctrl-C; a checkpoint of segdet 0.1 marked so has
no ``position`` and restarts epoch ``epoch + 1``), ``ema_state`` (EMA weights with its update
count), ``input_size`` (``[H, W]`` of the stacked training batches, for the size warning of
``segdet predict``; ``None`` for tasks whose batches are lists), ``stale_epochs`` (for early
stopping), ``classes`` and ``cat_ids`` (the :class:`~segdet.task.DataSpec`, so
``segdet predict`` needs no dataset; ``cat_ids`` is absent from checkpoints of segdet 0.1).
Readers ignore keys they do not use.

Example:
    >>> save_checkpoint({"model": model.state_dict(), "epoch": 3}, "runs/x/weights/last.pt")
    >>> state = inference_state_dict(load_checkpoint("runs/x/weights/last.pt"))
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segdet._atomic import atomic_write, fsync_dir

__all__ = [
    "CHECKPOINT_KEYS",
    "CheckpointWriteError",
    "copy_checkpoint",
    "inference_state_dict",
    "load_checkpoint",
    "load_weights",
    "newest_readable_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_KEYS = ("model", "ema", "optimizer", "scheduler", "scaler", "epoch", "best_metric", "rng", "config")


#: errno values of a write that the file system refused, and how the message says it
_REFUSED = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "an input/output error of the device",
}


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, read-only folder, ...); the file there before is intact.

    Attributes:
        path: the checkpoint that was being written.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def _refusal(exc: BaseException) -> str | None:
    """Why the file system refused a write, from ``exc`` or its chain; ``None``: not a refused write.

    ``torch.save`` reports a failed write of its zip container as a ``RuntimeError`` (``enforce
    fail at inline_container.cc``, ``file write failed``) and drops the errno, so those are read
    as a failed write whose cause the free space then tells.
    """
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _REFUSED:
            return _REFUSED[seen.errno]
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("inline_container" in text or "write failed" in text):
        return "the write failed"
    return None


def _free_space(folder: Path) -> str:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" ({free / 2**20:.0f} MiB free on {folder})"


def _write_error(exc: BaseException, path: Path, what: str) -> CheckpointWriteError | None:
    reason = _refusal(exc)
    if reason is None:
        return None
    return CheckpointWriteError(
        f"cannot write {what} {path}: {reason}{_free_space(path.parent)}; the {path.name} that was there before "
        f"(if any) is intact and loadable. Free disk space or make {path.parent} writable",
        path,
    )


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

    Raises:
        CheckpointWriteError: the file system refused the write (full disk, quota, read-only or
            not writable folder); the message names the file, the reason and the free space.
    """
    path = Path(path)
    try:
        return atomic_write(path, lambda f: torch.save(state, f))
    except (OSError, RuntimeError) as exc:
        error = _write_error(exc, path, "checkpoint")
        if error is None:
            raise
        raise error from exc


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
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        error = _write_error(exc, dst, "checkpoint") if isinstance(exc, OSError) else None
        if error is None:
            raise
        raise error from exc
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
        ValueError: the file is not a readable checkpoint dict (the message names it; see
            :func:`newest_readable_checkpoint` for offering another one).
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


def newest_readable_checkpoint(folder: str | os.PathLike, exclude: str | os.PathLike | None = None) -> Path | None:
    """The most recently written ``*.pt`` of ``folder`` that loads as a training checkpoint, or ``None``.

    What ``--resume`` offers when the checkpoint it was given is corrupt or truncated (usually
    ``best.pt`` beside a damaged ``last.pt``).

    Args:
        folder: where to look (``RUN/weights``).
        exclude: a file to leave out (the damaged one).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    skip = Path(exclude).resolve() if exclude is not None else None
    files = [p for p in folder.glob("*.pt") if p.is_file() and p.resolve() != skip]
    for candidate in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            ckpt = load_checkpoint(candidate)
        except (ValueError, FileNotFoundError):
            continue
        if "model" in ckpt and "optimizer" in ckpt:
            return candidate
    return None


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
