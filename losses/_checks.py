"""Checks of the options and logits every loss takes: mode, reduction, logits, class weights."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from .constants import BINARY_MODE, MODES, REDUCTIONS


class InputTypeError(TypeError, ValueError):
    """A wrong type or dtype; catchable as TypeError or as ValueError."""


def check_mode(mode: str, name: str) -> str:
    """``mode`` itself if it is one of ``MODES``, else a ValueError naming it, prefixed with ``name``."""
    if mode not in MODES:
        raise ValueError(f"{name}: mode={mode!r} is not one of {list(MODES)}")
    return mode


def check_reduction(reduction: str, name: str) -> str:
    """``reduction`` itself if it is one of ``REDUCTIONS``, else a ValueError naming it."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction={reduction!r} is not one of {list(REDUCTIONS)}")
    return reduction


def check_logits(logits: torch.Tensor, mode: str, name: str) -> None:
    """Raises unless ``logits`` is a floating (N, C, *S) tensor, with C = 1 in binary mode."""
    if not isinstance(logits, torch.Tensor):
        raise InputTypeError(f"{name}: logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise InputTypeError(f"{name}: logits must be floating, got dtype {logits.dtype}")
    if logits.dim() < 2:
        raise ValueError(f"{name}: logits must be (N, C, *S), got shape {tuple(logits.shape)}")
    if mode == BINARY_MODE and logits.shape[1] != 1:
        raise ValueError(
            f"{name}: binary mode expects logits (N, 1, *S), got shape {tuple(logits.shape)}; "
            "use mode='multilabel' for several sigmoid channels or 'multiclass' for softmax"
        )


@functools.lru_cache(maxsize=128)
def constant(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A (len(values),) tensor of Python numbers, built once per device and dtype and then reused.

    Building it anew would copy it to the device (and wait for the copy) on every call; the
    cached tensor is shared, so callers must not change it in place.
    """
    return torch.tensor(values, device=device, dtype=dtype)


def nonfinite_guard(x: torch.Tensor) -> torch.Tensor | None:
    """0 when every element of ``x`` is finite, NaN otherwise, as a 0-d tensor; None if empty.

    An activation can hide a non-finite logit (sigmoid(inf) = 1); adding this to a loss keeps it
    NaN so that a trainer's NaN guard fires. One pass over ``x`` (min and max), no device sync.
    """
    if not x.numel():
        return None
    lo, hi = torch.aminmax(x.detach())
    return (lo + hi) * 0


def class_weight_vector(
    classes: Sequence[int] | None,
    class_weights: Sequence[float] | torch.Tensor | None,
    num_classes: int,
    device: torch.device,
    dtype: torch.dtype,
    name: str,
) -> torch.Tensor | None:
    """(C,) weights that combine ``class_weights`` and the ``classes`` subset; None if neither.

    Python numbers become a cached device tensor (no copy to the device per call); a tensor of
    weights is moved and cast, and its values are not read.
    """
    if classes is None and class_weights is None:
        return None
    w = None
    if isinstance(class_weights, torch.Tensor):
        if class_weights.numel() != num_classes:
            raise ValueError(
                f"{name}: class_weights has {class_weights.numel()} values but the logits have {num_classes} channels"
            )
        w = class_weights.detach().to(device=device, dtype=dtype).reshape(-1)
        host = [1.0] * num_classes
    elif class_weights is not None:
        host = [float(v) for v in class_weights]
        if len(host) != num_classes:
            raise ValueError(f"{name}: class_weights has {len(host)} values but the logits have {num_classes} channels")
    else:
        host = [1.0] * num_classes
    if classes is not None:
        keep = set()
        for c in classes:
            if not 0 <= int(c) < num_classes:
                raise ValueError(f"{name}: classes contains {c}, outside [0, {num_classes})")
            keep.add(int(c))
        host = [v if k in keep else 0.0 for k, v in enumerate(host)]
    vec = constant(tuple(host), device, dtype)
    return vec if w is None else w * vec
