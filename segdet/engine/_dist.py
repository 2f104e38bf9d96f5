"""Process-group helpers; everything degrades to a single process when torch.distributed is off."""

from __future__ import annotations

import torch.distributed as dist
from torch import nn


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on the process that writes checkpoints, logs and images (rank 0)."""
    return rank() == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DistributedDataParallel / DataParallel wrapper."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model
