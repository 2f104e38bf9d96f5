"""The one validation pass, used every epoch and by ``segdet eval``."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from segdet.task import Evaluator

from ._progress import Progress, batch_size
from ._runtime import autocast, to_device
from .distributed import watch

__all__ = ["validate"]


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    evaluator: Evaluator,
    device: torch.device,
    amp: torch.dtype | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Run ``evaluator`` over ``loader`` and return its metrics.

    The model is put in eval mode (and back in its previous mode afterwards); batches are moved to
    ``device`` and evaluated under autocast ``amp`` (``None``: full precision). ``progress`` shows
    a tqdm bar on a terminal and plain lines elsewhere (``segdet.engine._progress``).

    Returns:
        ``evaluator.compute()`` after ``evaluator.sync()``: a flat dict of floats.
    """
    was_training = model.training
    model.eval()
    evaluator.reset()
    batches = Progress(loader, "  val", enabled=progress, unit="batch")
    images, begin = 0, time.perf_counter()
    try:
        for i, batch in enumerate(batches):
            batch = to_device(batch, device)
            with autocast(device, amp):
                evaluator.update(model, batch)
            images += batch_size(batch)
            batches.update(i + 1, img_s=images / (time.perf_counter() - begin))
    finally:
        model.train(was_training)
    with watch("the evaluator's sync after validation (summing/gathering every rank's results)"):
        evaluator.sync()
    return {k: float(v) for k, v in evaluator.compute().items()}
