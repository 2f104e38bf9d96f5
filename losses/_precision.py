"""The compute dtype of the losses and a switch that keeps autocast out of their reductions."""

from __future__ import annotations

import torch


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other floating dtype is reduced in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def no_autocast(device: torch.device):
    """A context that turns autocast off on ``device`` so reductions stay in float32.

    When autocast is not on there (the common case outside AMP) it is a no-op context, which
    saves building and entering an autocast context on every loss call.
    """
    if device.type in ("cuda", "cpu") and torch.is_autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return _NOTHING


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False


_NOTHING = _Nothing()
