"""Value checks of loss inputs (target ranges) that never make the host wait for the device.

Reading a value computed on a GPU (``.item()``, ``.tolist()``, ``if tensor:``) stalls the host
until the device has caught up, once per check, which costs a training step its overlap of
host and device work. So a check runs in one of two ways:

- on the CPU (and on devices without CUDA events) the few statistics it needs (a min and a max)
  are read at once and a bad input raises its ValueError in the call itself;
- on a CUDA device nothing is read. The verdict stays on the device and makes the loss NaN when
  the input is bad (so the step is never applied silently: a trainer's NaN guard fires), and the
  statistics travel to pinned host memory behind a CUDA event. The first loss call that finds
  the copy arrived, or :func:`check_deferred`, raises the same ValueError, naming the earlier
  call and the values it saw.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ._checks import constant

#: Checks waiting for their statistics; past this many the oldest is waited for.
MAX_PENDING = 64


@dataclass
class _Pending:
    name: str
    device: str
    host: torch.Tensor
    event: object | None
    low: tuple[float, ...]
    high: tuple[float, ...]
    summary: Callable[[list[float]], str]


_PENDING: deque[_Pending] = deque()


def on_host(device: torch.device) -> bool:
    """Whether checks on ``device`` read their statistics at once (everything but CUDA)."""
    return device.type != "cuda"


def _inside(values: Sequence[float], low: Sequence[float], high: Sequence[float]) -> bool:
    # NaN fails both comparisons, so a NaN statistic is a failed check
    return all(lo <= v <= hi for v, lo, hi in zip(values, low, high))


def verify(
    stats: Sequence[torch.Tensor],
    low: Sequence[float],
    high: Sequence[float],
    name: str,
    explain: Callable[[list[float]], str],
    summary: Callable[[list[float]], str],
) -> torch.Tensor | None:
    """Checks ``low[i] <= stats[i] <= high[i]`` for 0-d tensors ``stats``.

    Args:
        stats: 0-d statistics of the input (a min, a max), all on one device.
        low: lower bound of each statistic (``-math.inf`` for none).
        high: upper bound of each statistic.
        name: the loss, for the message.
        explain: the ValueError message of a failed check on the host, from the statistics (it
            may look at the input again to list the offending values).
        summary: what a failed deferred check saw, from the statistics, for the later message.

    Returns:
        None after a check on the host (which raises when it fails); on a CUDA device a 0-d
        tensor to add to the loss: 0 when the check holds, NaN when it fails.

    Raises:
        ValueError: the check failed (host), or an earlier deferred check has failed.
    """
    device = stats[0].device
    if on_host(device):
        values = [float(s) for s in stats]
        if not _inside(values, low, high):
            raise ValueError(explain(values))
        return None
    raise_arrived(wait=False)
    packed = torch.stack([s.to(torch.float64) for s in stats])
    low_t = constant(tuple(low), device, torch.float64)
    high_t = constant(tuple(high), device, torch.float64)
    ok = ((packed >= low_t) & (packed <= high_t)).all()
    _record(name, packed, tuple(low), tuple(high), summary)
    return torch.where(ok, 0.0, math.nan)


def _record(name, packed, low, high, summary) -> None:
    if packed.device.type == "cuda":
        host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
        host.copy_(packed, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(packed.device))
    else:  # only when a test routes a CPU tensor through the deferred path
        host, event = packed.clone(), None
    _PENDING.append(_Pending(name, str(packed.device), host, event, low, high, summary))
    if len(_PENDING) > MAX_PENDING:
        raise_arrived(wait=True, limit=len(_PENDING) - MAX_PENDING)


def raise_arrived(wait: bool, limit: int | None = None) -> None:
    """Reads the pending checks whose statistics have arrived (all of them when ``wait``).

    Raises the ValueError of the first failed one; the checks after it are dropped.
    """
    done = 0
    while _PENDING and (limit is None or done < limit):
        entry = _PENDING[0]
        if entry.event is not None:
            if wait:
                entry.event.synchronize()
            elif not entry.event.query():
                return
        _PENDING.popleft()
        done += 1
        values = entry.host.tolist()
        if not _inside(values, entry.low, entry.high):
            _PENDING.clear()
            raise ValueError(
                f"{entry.name}: an earlier call on {entry.device} got {entry.summary(values)}; "
                "that call returned a NaN loss"
            )


def check_deferred() -> None:
    """Waits for the input checks of earlier loss calls on CUDA and raises the first that failed.

    On a CUDA device a bad target (a class index out of range, a soft target outside [0, 1])
    makes the loss NaN and its ValueError is raised by a later loss call. Call this where a
    NaN loss is caught, to learn why; it waits for the device.

    Raises:
        ValueError: naming the loss, the device and the values an earlier call saw.

    Example:
        >>> loss = DiceLoss("multiclass")(logits.cuda(), target.cuda())
        >>> if not torch.isfinite(loss):
        ...     check_deferred()  # raises if the target was bad; else the logits were
    """
    raise_arrived(wait=True)
