"""Distributed data parallel training under ``torchrun``: process group, device, model wrapping.

``torchrun --nproc_per_node=N -m segdet train CONFIG`` starts N processes with ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` in their environment. :func:`setup` reads them, joins the
process group (``nccl`` on CUDA, ``gloo`` on CPU) with ``train.dist_timeout`` seconds as the
timeout of every collective, and returns this process's device (``cuda:LOCAL_RANK``). Without
those variables (or with ``WORLD_SIZE=1``) everything here is a no-op and the run is a plain
single-process one.

A stalled collective (another rank crashed, ran out of memory or is stuck in its data loader)
raises :class:`DistributedTimeout` after the timeout, naming the stage that stalled, instead of
hanging forever.

Example:
    >>> device = setup(cfg["train"])                     # before building the model
    >>> model = prepare_model(model, cfg["train"], device)  # SyncBatchNorm when train.sync_bn
    >>> ddp = wrap_model(model, device)         # DistributedDataParallel when distributed
    >>> with watch("validation"):
    ...     evaluator.sync()
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from . import _dist
from ._runtime import select_device

__all__ = [
    "DistributedTimeout",
    "setup",
    "env_world_size",
    "is_distributed",
    "prepare_model",
    "wrap_model",
    "broadcast_module",
    "any_rank",
    "watch",
    "cleanup",
]


class DistributedTimeout(RuntimeError):
    """A collective operation did not complete within ``train.dist_timeout`` seconds."""


_STATE: dict[str, Any] = {"timeout": None, "owned": False}


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset), checked."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"environment variable WORLD_SIZE={raw!r} is not an integer; launch with torchrun --nproc_per_node=N"
        ) from None
    if value < 1:
        raise ValueError(f"environment variable WORLD_SIZE={value} must be >= 1")
    return value


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return _dist.world_size() > 1


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None and default is not None:
        return default
    if raw is None:
        raise ValueError(
            f"WORLD_SIZE is set but {name} is not: launch with torchrun --nproc_per_node=N, "
            f"which sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT"
        )
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def setup(train_cfg: dict[str, Any]) -> torch.device:
    """Join the torchrun process group (once per process) and return this process's device.

    Args:
        train_cfg: the ``train`` section; reads ``device`` and ``dist_timeout``.

    Returns:
        The device: ``select_device(train.device)`` in a single process; under torchrun with CUDA,
        ``cuda:LOCAL_RANK`` (``train.device`` ``cuda:N`` is not allowed there: torchrun picks it).

    Raises:
        ValueError: inconsistent environment or device settings (the message says which).
    """
    t = train_cfg
    timeout = float(t.get("dist_timeout", 600))
    world = _dist.world_size() if dist.is_available() and dist.is_initialized() else env_world_size()
    if world <= 1:
        return select_device(t["device"])
    name = t["device"]
    use_cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    if use_cuda and ":" in name:
        raise ValueError(
            f"train.device={name!r} under torchrun: each process uses cuda:LOCAL_RANK; "
            "set train.device=cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    local_rank = _env_int("LOCAL_RANK", default=0)
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"train.device is {name!r} but CUDA is not available here; use train.device=cpu")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are "
                "visible: use at most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = select_device(name)
    if not dist.is_initialized():
        if not dist.is_available():
            raise ValueError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
        rank = _env_int("RANK")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend,
            timeout=datetime.timedelta(seconds=timeout),
            rank=rank,
            world_size=world,
            device_id=device if device.type == "cuda" else None,
        )
        _STATE["owned"] = True
        atexit.register(cleanup)
    _STATE["timeout"] = timeout
    with watch("start-up (every process joins the group)"):
        dist.barrier()
    return device


def cleanup() -> None:
    """Leave the process group if :func:`setup` created it (also registered with ``atexit``)."""
    if _STATE["owned"] and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _STATE["owned"] = False


def prepare_model(model: nn.Module, train_cfg: dict[str, Any], device: torch.device) -> nn.Module:
    """Convert BatchNorm to SyncBatchNorm when ``train.sync_bn`` is set and the run is distributed.

    Call before the optimizer and the EMA copy are built (the conversion makes new modules). The
    state-dict keys are unchanged, so checkpoints load in a single process.

    Raises:
        ValueError: ``train.sync_bn`` on CPU (SyncBatchNorm needs CUDA).
    """
    if not train_cfg.get("sync_bn") or not is_distributed():
        return model
    if device.type != "cuda":
        raise ValueError(
            "train.sync_bn=true needs CUDA (SyncBatchNorm has no CPU kernel); set train.sync_bn=false for CPU runs"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` unchanged.

    Wrap after loading a resumed state dict (the bare model's keys); DDP broadcasts rank 0's
    weights at construction, so every rank starts from the same ones.
    """
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    with watch("wrapping the model in DistributedDataParallel (weight broadcast)"):
        return nn.parallel.DistributedDataParallel(
            model, device_ids=ids, output_device=ids[0] if ids else None, find_unused_parameters=find_unused_parameters
        )


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> nn.Module:
    """Copy ``src``'s parameters and buffers into ``module`` on every rank (in place).

    DDP keeps the weights equal, but each rank updates its own BatchNorm running statistics (and
    an EMA copy of them) during its last forward: broadcasting them before validation makes every
    rank score exactly the weights that rank 0 saves.
    """
    if not is_distributed():
        return module
    with watch("broadcast of the weights before validation"):
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)
    return module


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (a one-element all-reduce); ``flag`` alone otherwise.

    The training loop asks this after every step whether Ctrl-C was pressed, so all ranks stop
    after the same step instead of one waiting for the others in the next gradient all-reduce.
    """
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    with watch("the per-step stop check (Ctrl-C) across processes"):
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _is_timeout(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("timed out", "timeout", "time out", "watchdog"))


@contextlib.contextmanager
def watch(what: str, timeout: float | None = None) -> Iterator[None]:
    """Turn a timed-out or broken collective inside the block into :class:`DistributedTimeout`.

    The message names ``what`` stalled, this rank, the timeout and the usual causes. Outside a
    distributed run the block runs unchanged. ``timeout`` (seconds) is the one quoted in the
    message when the block uses a group with its own timeout (default ``train.dist_timeout``).

    With NCCL the timeout is enforced by its watchdog, which ends the process with its own
    message (the stalled operation and its sequence number) rather than raising here.
    """
    try:
        yield
    except DistributedTimeout:
        raise
    except RuntimeError as exc:  # torch.distributed.DistError subclasses RuntimeError
        if not (is_distributed() and (_is_timeout(exc) or isinstance(exc, getattr(dist, "DistError", ())))):
            raise
        timeout = _STATE["timeout"] if timeout is None else timeout
        limit = f"{timeout:g} s (train.dist_timeout)" if timeout is not None else "the process group's timeout"
        raise DistributedTimeout(
            f"rank {_dist.rank()}/{_dist.world_size()}: {what} did not complete within {limit}. Another "
            f"process stopped or is stuck (look for an error or out-of-memory message in its output, or a "
            f"data loader that stalls); raise train.dist_timeout if a step is legitimately that slow. "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
