"""Checks of the options and logits every loss takes: mode, reduction, logits, class weights."""

from __future__ import annotations

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


def class_weight_vector(
    classes: Sequence[int] | None,
    class_weights: Sequence[float] | torch.Tensor | None,
    num_classes: int,
    device: torch.device,
    dtype: torch.dtype,
    name: str,
) -> torch.Tensor | None:
    """(C,) weights that combine ``class_weights`` and the ``classes`` subset; None if neither."""
    if classes is None and class_weights is None:
        return None
    w = torch.ones(num_classes, device=device, dtype=dtype)
    if class_weights is not None:
        cw = torch.as_tensor(class_weights, dtype=dtype, device=device).reshape(-1)
        if cw.numel() != num_classes:
            raise ValueError(
                f"{name}: class_weights has {cw.numel()} values but the logits have {num_classes} channels"
            )
        w = cw
    if classes is not None:
        keep = torch.zeros(num_classes, device=device, dtype=dtype)
        for c in classes:
            if not 0 <= int(c) < num_classes:
                raise ValueError(f"{name}: classes contains {c}, outside [0, {num_classes})")
            keep[int(c)] = 1
        w = w * keep
    return w
