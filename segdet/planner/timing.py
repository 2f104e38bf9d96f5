"""Timing a few real training steps of a candidate config on this machine.

:func:`time_candidate` builds the task, datasets and model of a config exactly as ``segdet train``
does, and runs one warm-up step and ``steps`` timed forward/backward/optimizer steps on batches
drawn from the run's own training loader, its ``data.num_workers`` loader processes running
beside the steps as they do in training (on a CPU they share the cores, so a step timed without
them would be too quick); the wait for each batch is the loading cost. Then one warm-up and one
timed full-resolution forward pass in eval mode (the validation cost per pixel), and one
checkpoint write of the model, its EMA copy and the optimizer state (to a temporary folder).
CUDA work is synchronised before each clock reading.

Example:
    >>> t = time_candidate(cfg, forward_size=(256, 320))  # doctest: +SKIP
    >>> t.step_s  # doctest: +SKIP
    1.93
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from segdet.checkpoint import save_checkpoint
from segdet.engine._runtime import autocast, select_amp, select_device
from segdet.engine.loader import auto_num_workers, make_train_loader
from segdet.engine.optim import build_optimizer
from segdet.task import build_task

from .plan import STRIDE, Timing

__all__ = ["TIMED_STEPS", "time_candidate"]

#: timed steps after the warm-up step
TIMED_STEPS = 4


def time_candidate(cfg: dict[str, Any], forward_size: tuple[int, int], steps: int = TIMED_STEPS) -> Timing:
    """Measure one training configuration (a validated config) on ``cfg["train"]["device"]``.

    Args:
        cfg: a validated segmentation config (crop, batch and encoder as planned).
        forward_size: (height, width) of the full-resolution forward pass timed for validation.
        steps: timed steps after one warm-up step.

    Returns:
        The :class:`~segdet.planner.plan.Timing`; ``step_s`` is the median timed step.

    Raises:
        ValueError: any config or data error the run itself would raise.
    """
    begin = time.perf_counter()
    task = build_task(cfg)
    task.check()
    device = select_device(cfg["train"]["device"])
    amp = select_amp(cfg["train"]["amp"], device)
    train_ds, _, spec = task.build_datasets()
    collate = task.collate_fn(spec)
    memory_format = torch.channels_last if cfg["train"]["channels_last"] else torch.contiguous_format
    model = task.build_model(spec).to(device, memory_format=memory_format)
    startup_s = time.perf_counter() - begin

    batch = cfg["data"]["batch_size"]
    workers = auto_num_workers(cfg["data"]["num_workers"], len(train_ds), batch)
    loader = make_train_loader(train_ds, collate, batch, workers, seed=int(cfg["seed"]), device=device)
    optimizer = build_optimizer(model, cfg["optim"])
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    model.train()
    times, waits = [], []
    batches = iter(loader)
    try:
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            raw = next(batches, None)
            if raw is None:  # fewer batches than steps: start the epoch again
                batches = iter(loader)
                raw = next(batches)
            waits.append(time.perf_counter() - t0)
            b = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
            if cfg["train"]["channels_last"]:
                b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
            _sync(device)
            t0 = time.perf_counter()
            with autocast(device, amp):
                loss, _ = task.loss(model, b)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            _sync(device)
            times.append(time.perf_counter() - t0)
    finally:
        del batches  # stops the loader processes
    step_s = statistics.median(times[1:]) if len(times) > 1 else times[0]
    data_s = statistics.median(waits[1:]) if len(waits) > 1 else waits[0]  # the first waits for the workers to start

    h, w = (-(-s // STRIDE) * STRIDE for s in forward_size)
    x = torch.rand(1, 3, h, w, device=device)
    model.eval()
    forward = []
    with torch.no_grad():
        for _ in range(2):
            _sync(device)
            t0 = time.perf_counter()
            with autocast(device, amp):
                model(x)
            _sync(device)
            forward.append(time.perf_counter() - t0)
    forward_px_s = forward[-1] / (h * w)

    state = {
        "model": model.state_dict(),
        "ema": {k: v.clone() for k, v in model.state_dict().items()},  # a copy: torch.save keeps shared storage once
        "optimizer": optimizer.state_dict(),
    }
    with tempfile.TemporaryDirectory(prefix="segdet-init-") as tmp:
        t0 = time.perf_counter()
        save_checkpoint(state, Path(tmp) / "last.pt")
        checkpoint_s = time.perf_counter() - t0
    return Timing(
        step_s=step_s,
        data_s=data_s,
        forward_px_s=forward_px_s,
        checkpoint_s=checkpoint_s,
        startup_s=startup_s,
        device=device.type,
        workers=workers,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
