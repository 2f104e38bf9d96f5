"""Optimizers and per-iteration learning-rate schedules with linear warmup."""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import torch
from torch import nn

from segdet._suggest import did_you_mean

__all__ = ["build_optimizer", "build_scheduler", "LRFactor", "set_scheduler_step"]


#: optimizers of the ``pytorch-optimizer`` package: ``optim.name`` -> (class name, fixed arguments).
#: AdaBoundW is AdaBound with decoupled weight decay, as AdamW is to Adam.
LIBRARY_OPTIMIZERS = {
    "adabound": ("AdaBound", {"weight_decouple": False}),
    "adaboundw": ("AdaBound", {"weight_decouple": True}),
    "lion": ("Lion", {}),
}


def _library_optimizer(name: str, groups: list[dict[str, Any]], optim_cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """``optim.name`` of :data:`LIBRARY_OPTIMIZERS`, built by the ``pytorch-optimizer`` package."""
    try:
        import pytorch_optimizer
    except ImportError:
        raise ValueError(
            f"optim.name {name} comes from the pytorch-optimizer package, which is not installed; "
            "pip install 'segdet[optim]' (or pip install pytorch-optimizer)"
        ) from None
    cls_name, fixed = LIBRARY_OPTIMIZERS[name]
    cls = getattr(pytorch_optimizer, cls_name)
    params = inspect.signature(cls.__init__).parameters
    accepted = [k for k in params if k not in ("self", "params", "kwargs")]
    kwargs: dict[str, Any] = {"lr": optim_cfg["lr"], **fixed}
    if "betas" in params:  # optim.momentum is beta1, beta2 the optimizer's own default
        kwargs["betas"] = (optim_cfg["momentum"], params["betas"].default[1])
    for key, value in (optim_cfg.get("args") or {}).items():
        if key not in accepted or key in ("lr", "weight_decay", *fixed):
            own = {"lr": "optim.lr", "weight_decay": "optim.weight_decay"}.get(key)
            hint = f"; set {own} instead" if own else did_you_mean(str(key), accepted)
            raise ValueError(f"optim.args.{key}: {cls_name} ({name}) has no option {key!r}{hint}")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(groups, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"optim ({name}): {exc}") from None


def build_optimizer(model: nn.Module, optim_cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """The ``optim.name`` optimizer over the trainable parameters; no weight decay on biases and norm weights (1-D).

    ``adamw`` and ``sgd`` are torch's; ``adabound``, ``adaboundw`` and ``lion`` are those of the
    ``pytorch-optimizer`` package (:data:`LIBRARY_OPTIMIZERS`), with ``optim.momentum`` as beta1
    and ``optim.args`` passed on, each key checked against the optimizer's signature.

    Args:
        model: the model (its parameters with ``requires_grad``).
        optim_cfg: the ``optim`` section: ``name``, ``lr``, ``weight_decay``, ``momentum``, ``args``.

    Raises:
        ValueError: an unknown name, an ``optim.args`` key the optimizer does not take (with
            did-you-mean), a value it rejects, or ``pytorch-optimizer`` not installed.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": optim_cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    name, lr = optim_cfg["name"], optim_cfg["lr"]
    if name in LIBRARY_OPTIMIZERS:
        return _library_optimizer(name, groups, optim_cfg)
    if optim_cfg.get("args"):
        raise ValueError(
            f"optim.args is for the pytorch-optimizer optimizers ({', '.join(LIBRARY_OPTIMIZERS)}), not {name}"
        )
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(optim_cfg["momentum"], 0.999))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim_cfg["momentum"], nesterov=optim_cfg["momentum"] > 0)
    raise ValueError(f"optim.name {name!r} is not one of adamw, sgd, {', '.join(LIBRARY_OPTIMIZERS)}")


class LRFactor:
    """Multiplier of the peak LR at optimizer step ``it`` (0-based).

    Warmup: ``(it + 1) / warmup`` for the first ``warmup`` steps. Then, with ``t`` going from 0 to 1
    over the remaining steps and ``m = min_lr_ratio``:

    - cosine: ``m + (1 - m) * (1 + cos(pi t)) / 2``
    - poly: ``m + (1 - m) * (1 - t) ** power``
    - onecycle: warmup (default 30% of the run when ``warmup_epochs`` is 0) starting at 1/25, then
      cosine to 1e-4
    - constant: 1
    """

    def __init__(self, name: str, total: int, warmup: int, min_lr_ratio: float = 0.0, power: float = 0.9) -> None:
        if name not in ("cosine", "poly", "onecycle", "constant"):
            raise ValueError(f"schedule.name {name!r} is not cosine, poly, onecycle or constant")
        if name == "onecycle" and warmup == 0:
            warmup = max(1, int(0.3 * total))
        self.name, self.total, self.warmup = name, max(total, 1), min(warmup, max(total - 1, 0))
        self.min_lr_ratio, self.power = min_lr_ratio, power

    def __call__(self, it: int) -> float:
        """The learning-rate factor after ``it`` optimizer steps."""
        if it < self.warmup:
            w = (it + 1) / self.warmup
            return 1 / 25 + (1 - 1 / 25) * w if self.name == "onecycle" else w
        if self.name == "constant":
            return 1.0
        t = min((it - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        if self.name == "cosine":
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.name == "poly":
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * (1 - t) ** self.power
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * t))  # onecycle


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule_cfg: dict[str, Any], epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` to be stepped after every optimizer step.

    Args:
        optimizer: the optimizer whose learning rates are scaled.
        schedule_cfg: the ``schedule`` section (``name``, ``warmup_epochs``, ``min_lr_ratio``, ``power``).
        epochs: training epochs.
        steps_per_epoch: optimizer steps per epoch (batches / accumulate, rounded up).

    A warmup at least as long as the run is cut to one step less than the run, with one warning
    that gives both lengths.
    """
    total, warmup = epochs * steps_per_epoch, round(schedule_cfg["warmup_epochs"] * steps_per_epoch)
    if warmup >= total:
        warnings.warn(
            f"schedule.warmup_epochs = {schedule_cfg['warmup_epochs']:g} ({warmup} optimizer steps) is not shorter "
            f"than the run (train.epochs = {epochs}, {total} steps): the warmup is cut to {total - 1} steps, so the "
            "learning rate only reaches its peak at the last step; shorten schedule.warmup_epochs",
            stacklevel=2,
        )
    factor = LRFactor(
        schedule_cfg["name"], total, warmup, schedule_cfg.get("min_lr_ratio", 0.0), schedule_cfg.get("power", 0.9)
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_scheduler_step(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Move a LambdaLR to optimizer step ``step`` and set the LRs accordingly."""
    scheduler.last_epoch = step
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(step)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
