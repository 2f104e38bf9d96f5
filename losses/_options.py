"""Checks of the numeric options of the losses, run when a loss is built and on every functional call.

Each check returns the option as the loss stores it (a float, a tuple) or raises one ValueError
that names the loss, the option, the value and the range it must lie in. Options that depend on
the number of channels are checked here as far as the mode allows before any logits are seen:
binary mode has exactly one channel.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from .constants import BINARY_MODE


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(value, option: str, name: str, low: float = -math.inf, high: float = math.inf, above: bool = False) -> float:
    """``value`` as a float if it is a finite number in [low, high] (or (low, high] when ``above``).

    Raises:
        ValueError: naming ``name``, ``option``, the value and the range.
    """
    ok = _is_number(value) and math.isfinite(value) and (value > low if above else value >= low) and value <= high
    if not ok:
        lo = "(" if above else "["
        hi = "]" if math.isfinite(high) else ")"
        span = f"{lo}{low:g}, {high:g}{hi}" if math.isfinite(low) else f"(-inf, {high:g}{hi}"
        raise ValueError(f"{name}: {option}={value!r} must be a finite number in {span}")
    return float(value)


def values(value, option: str, name: str, low: float = 0.0, high: float = math.inf) -> tuple[float, ...]:
    """A scalar, sequence or tensor of numbers as a tuple of floats, each finite and in [low, high]."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().reshape(-1).tolist()
    elif isinstance(value, Sequence) and not isinstance(value, str):
        flat = list(value)
    else:
        flat = [value]
    if not flat:
        raise ValueError(f"{name}: {option} is empty; give one value or one per channel")
    bad = [v for v in flat if not (_is_number(v) and math.isfinite(v) and low <= v <= high)]
    if bad:
        span = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise ValueError(f"{name}: {option} holds {bad[:5]}; every value must be a finite number {span}")
    return tuple(float(v) for v in flat)


def check_class_options(
    mode: str,
    classes: Sequence[int] | None,
    class_weights: Sequence[float] | torch.Tensor | None,
    name: str,
) -> tuple[tuple[int, ...] | None, tuple[float, ...] | torch.Tensor | None]:
    """``classes`` and ``class_weights`` as tuples, checked against what ``mode`` allows.

    ``classes`` must be non-negative integers, ``class_weights`` finite, >= 0 and not all 0; in
    binary mode (one channel) ``classes`` can only be [0] and ``class_weights`` has one value.
    ``class_weights`` given as a tensor off the CPU is returned as it is with only its size
    checked: reading its values would wait for the device on every call.
    """
    cls = None
    if classes is not None:
        flat = classes.reshape(-1).tolist() if isinstance(classes, torch.Tensor) else list(classes)
        bad = [c for c in flat if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 0]
        if not flat or bad:
            raise ValueError(
                f"{name}: classes={classes!r} must be a non-empty list of class indices >= 0"
                + (f"; {bad[:5]} are not" if bad else "")
            )
        cls = tuple(int(c) for c in flat)
        if mode == BINARY_MODE and set(cls) != {0}:
            raise ValueError(
                f"{name}: classes={list(cls)} does not fit mode='binary', which has one channel (index 0); "
                "leave classes unset, or use mode='multiclass' or 'multilabel'"
            )
    weights = None
    if isinstance(class_weights, torch.Tensor) and class_weights.device.type != "cpu":
        if mode == BINARY_MODE and class_weights.numel() != 1:
            raise ValueError(
                f"{name}: class_weights has {class_weights.numel()} values but mode='binary' has one channel"
            )
        return cls, class_weights
    if class_weights is not None:
        weights = values(class_weights, "class_weights", name, 0.0)
        if not any(weights):
            raise ValueError(f"{name}: class_weights={list(weights)} are all 0; no class would count")
        if mode == BINARY_MODE and len(weights) != 1:
            raise ValueError(
                f"{name}: class_weights has {len(weights)} values but mode='binary' has one channel; "
                "leave class_weights unset (or give one value), or use mode='multiclass' or 'multilabel'"
            )
    return cls, weights
