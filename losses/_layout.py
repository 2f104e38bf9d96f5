"""The one canonical (N, C, P) layout every segmentation loss works on, and views of its target."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._checks import InputTypeError, check_logits
from ._deferred import verify
from ._precision import compute_dtype
from .constants import BINARY_MODE, MULTICLASS_MODE


@dataclass
class Prepared:
    """Logits and target flattened to (N, C, P), in the compute dtype.

    Attributes:
        x: (N, C, P) logits (or probabilities when ``from_logits`` is False).
        t: (N, C, P) dense target, zero where ignored; None for hard multiclass targets.
        idx: (N, P) long class index (0 where ignored) for hard multiclass targets, else None.
        v: validity weight, (N, 1, P) for multiclass or (N, C, P) otherwise, or None when
            every element counts with weight 1.
        soft: whether the target was floating.
        spatial: the spatial shape ``*S`` of the logits.
        mode: the task mode.
        hard: the target holds only 0/1 values (integer or bool input).
        v_mask: ``v`` is a 0/1 mask (from ``ignore_index``) rather than a soft pixel mass.
        poison: None when the target values were checked in the call; on a CUDA device a 0-d
            tensor, NaN if they are bad and 0 otherwise, that every loss adds to its result
            (:func:`poisoned`).
    """

    x: torch.Tensor
    t: torch.Tensor | None
    idx: torch.Tensor | None
    v: torch.Tensor | None
    soft: bool
    spatial: tuple[int, ...]
    mode: str
    hard: bool
    v_mask: bool
    poison: torch.Tensor | None = None


def _bad_values(values: torch.Tensor) -> list:
    """Up to five distinct offending values, for an error message."""
    return values.unique()[:5].tolist()


def _min_max(t: torch.Tensor) -> list[torch.Tensor]:
    """[min, max] of ``t`` as 0-d tensors (0 and 0 for an empty ``t``); NaN propagates."""
    if t.numel() == 0:
        zero = torch.zeros((), dtype=t.dtype, device=t.device)
        return [zero, zero]
    return list(torch.aminmax(t))


def prepare(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    ignore_index: int | None,
    name: str,
) -> Prepared:
    """Checks ``logits``/``target`` against ``mode`` and flattens both to (N, C, P).

    Shapes and dtypes are checked at once. Target values cost one min/max reduction; on the
    CPU they are checked in the call, on a CUDA device without waiting for it
    (:mod:`losses._deferred`): a bad target makes ``poison`` NaN, hard class indices are clamped
    so that no kernel reads out of range, and a later call raises the error.

    Raises:
        TypeError: non-tensor input, integer logits, or a floating multiclass index target.
        ValueError: shapes that do not fit the mode, or target values outside the valid range.
    """
    check_logits(logits, mode, name)
    if not isinstance(target, torch.Tensor):
        raise InputTypeError(f"{name}: target must be a torch.Tensor, got {type(target).__name__}")
    n, c = logits.shape[:2]
    spatial = tuple(logits.shape[2:])
    m = math.prod(spatial)
    dtype = compute_dtype(logits)
    x = (logits if logits.dtype == dtype else logits.to(dtype)).reshape(n, c, m)
    if target.device != x.device:
        target = target.to(x.device)
    soft = target.is_floating_point()
    tshape = tuple(target.shape)

    if mode == MULTICLASS_MODE:
        if soft:
            if tshape != tuple(logits.shape):
                raise InputTypeError(
                    f"{name}: a floating multiclass target is a soft target and must have the "
                    f"logits' shape {tuple(logits.shape)}, got {tshape}; pass class indices "
                    "as an integer (long) tensor of shape (N, *S)"
                )
            t = target.to(dtype).reshape(n, c, m)
            mass = t.sum(1, keepdim=True)

            def explain(stats):
                if not (stats[0] >= 0 and stats[1] <= 1):
                    bad = (t < 0) | (t > 1) | torch.isnan(t)
                    return f"{name}: soft multiclass target values must lie in [0, 1], found {_bad_values(t[bad])}"
                return (
                    f"{name}: soft multiclass target probabilities sum to more than 1 at some "
                    f"pixels (max {stats[2]:.4f}); normalise the target"
                )

            stats = [*_min_max(t), _min_max(mass)[1]]
            poison = verify(
                stats,
                (0.0, -math.inf, -math.inf),
                (math.inf, 1.0, 1 + 1e-3),
                name,
                explain,
                lambda s: (
                    f"a soft multiclass target with values in [{s[0]:g}, {s[1]:g}] and pixel sums up to {s[2]:g} "
                    "(values must lie in [0, 1], sums at most 1)"
                ),
            )
            return Prepared(x, t, None, mass, True, spatial, mode, False, False, poison)
        if target.dim() == logits.dim() and target.shape[1] == 1:
            target = target[:, 0]
        if tuple(target.shape) != (n, *spatial):
            raise ValueError(
                f"{name}: multiclass target must be (N, *S) = {(n, *spatial)} class indices "
                f"for logits {tuple(logits.shape)}, got {tshape}"
            )
        idx = target.reshape(n, m).long()
        valid = None if ignore_index is None else idx != ignore_index
        checked = idx if valid is None else idx.masked_fill(~valid, 0)

        def explain(stats):
            out = (idx < 0) | (idx >= c)
            if valid is not None:
                out &= valid
            return (
                f"{name}: multiclass target holds {_bad_values(idx[out])}, outside [0, {c}) "
                f"and not ignore_index={ignore_index}"
            )

        poison = verify(
            _min_max(checked),
            (0.0, -math.inf),
            (math.inf, c - 1.0),
            name,
            explain,
            lambda s: (
                f"a multiclass target with class indices from {s[0]:g} to {s[1]:g}, outside [0, {c}) "
                f"and not ignore_index={ignore_index}"
            ),
        )
        if poison is not None:
            checked = checked.clamp(0, c - 1)  # unchecked: keep gathers and scatters in range
        v = None if valid is None else valid.to(dtype).unsqueeze(1)
        return Prepared(x, None, checked, v, False, spatial, mode, True, True, poison)

    # binary and multilabel: a dense 0/1 (or soft) target of the logits' shape.
    if mode == BINARY_MODE and target.dim() == logits.dim() - 1:
        target = target.unsqueeze(1)
    if tuple(target.shape) != tuple(logits.shape):
        expect = "(N, *S) or (N, 1, *S)" if mode == BINARY_MODE else "(N, C, *S)"
        raise ValueError(f"{name}: {mode} target must be {expect} matching logits {tuple(logits.shape)}, got {tshape}")
    raw = target.reshape(n, c, m)
    valid = None if ignore_index is None else raw != ignore_index
    checked = raw if valid is None else raw.masked_fill(~valid, 0)
    poison = None
    if raw.dtype != torch.bool:
        allowed = "in [0, 1]" if soft else "0 or 1"

        def explain(stats):
            out = (raw < 0) | (raw > 1) | (torch.isnan(raw) if soft else False)
            if not soft:
                out = out | ((raw != 0) & (raw != 1))
            if valid is not None:
                out &= valid
            return (
                f"{name}: {mode} target values must be {allowed} (or ignore_index="
                f"{ignore_index}), found {_bad_values(raw[out])}"
            )

        poison = verify(
            _min_max(checked),
            (0.0, -math.inf),
            (math.inf, 1.0),
            name,
            explain,
            lambda s: (
                f"a {mode} target with values from {s[0]:g} to {s[1]:g} (they must be {allowed} "
                f"or ignore_index={ignore_index})"
            ),
        )
    t = checked if checked.dtype == dtype else checked.to(dtype)
    v = None if valid is None else valid.to(dtype)
    return Prepared(x, t, None, v, soft, spatial, mode, not soft, True, poison)


def poisoned(out: torch.Tensor, p: Prepared) -> torch.Tensor:
    """``out`` plus the NaN-or-0 verdict of a deferred target check (``out`` itself without one)."""
    return out if p.poison is None else out + p.poison.to(out.dtype)


def dense_target(p: Prepared) -> torch.Tensor:
    """The (N, C, P) target of ``p``, one-hot encoding hard class indices (zero where ignored)."""
    if p.t is not None:
        return p.t
    n, c, _ = p.x.shape
    t = torch.zeros_like(p.x)
    src = p.v if p.v is not None else torch.ones_like(p.x[:, :1])
    return t.scatter_(1, p.idx.unsqueeze(1), src)


def sigmoid_target(p: Prepared) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(t, w) for per-channel sigmoid losses: the (N, C, P) target and its element weight.

    Binary/multilabel: the target and its validity. Hard multiclass: one-hot (one-vs-rest) with
    the pixel validity. Soft multiclass: the target divided by its pixel mass, weighted by that
    mass (all-zero pixels get weight 0 and target 0).
    """
    if p.idx is not None:
        return dense_target(p), p.v
    if p.mode == MULTICLASS_MODE and p.soft:
        mass = p.v
        t = p.t / mass.clamp_min(torch.finfo(mass.dtype).tiny)
        return t, mass
    return p.t, p.v


def spatial_view(loss: torch.Tensor, p: Prepared) -> torch.Tensor:
    """(N, C', P) back to (N, C', *S) for ``reduction="none"``."""
    return loss.reshape(*loss.shape[:2], *p.spatial)
