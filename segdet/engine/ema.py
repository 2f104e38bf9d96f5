"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * weights`` after every optimizer step.

    The decay ramps up as ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    average is not dominated by the random initial weights in short runs. Floating-point
    parameters and buffers are averaged; integer buffers (e.g. BatchNorm's ``num_batches_tracked``)
    are copied.

    Args:
        model: the model being trained (bare, not DDP-wrapped).
        decay: target decay in ``[0, 1]``, e.g. 0.999.

    Example:
        >>> ema = ModelEMA(model, decay=0.999)
        >>> ...; optimizer.step(); ema.update(model)
        >>> evaluate(ema.module)
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"train.ema must be in [0, 1], got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s weights (buffers are copied)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for name, avg in self.module.state_dict().items():
            new = current[name].detach()
            if avg.dtype.is_floating_point:
                avg.lerp_(new.to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict:
        """The averaged weights with the update count and decay, for checkpoints."""
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
