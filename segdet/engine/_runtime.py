"""Device, precision, seeding and RNG state for the training loop (loaders: ``loader.py``)."""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from typing import Any

import numpy as np
import torch


def select_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"train.device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device is {name!r} but CUDA is not available here; use train.device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"train.device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def select_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``None`` (full precision), ``torch.float16`` or ``torch.bfloat16``.

    ``auto`` is bf16 when the GPU supports it, else fp16; on CPU always ``None``. ``fp16`` or
    ``bf16`` asked for on another device than CUDA runs in full precision with one warning (as
    ultralytics and Lightning do).
    """
    if device.type != "cuda" and amp in ("fp16", "bf16"):
        warnings.warn(
            f"train.amp is {amp} but the device is {device}: mixed precision runs on CUDA only, so this runs in full "
            "precision (fp32); set train.amp: none (or auto) to say so",
            stacklevel=2,
        )
    if device.type != "cuda" or amp == "none":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.amp is bf16 but this GPU does not support bfloat16; use train.amp=fp16")
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context when ``dtype`` is ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic kernels (``deterministic``) or the fastest ones (cudnn benchmark)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch ``epoch`` of a run seeded with ``seed`` (stable across resumes)."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def to_device(obj: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor in a nested dict/list/tuple to ``device`` (non-blocking from pinned memory).

    With ``channels_last``, a 4-D ``image`` tensor is converted to the NHWC memory format.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        out = {k: to_device(v, device) for k, v in obj.items()}
        if channels_last and isinstance(out.get("image"), torch.Tensor) and out["image"].ndim == 4:
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj
