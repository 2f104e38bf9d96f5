"""A weighted sum of registered losses, built from a config dict, that reports every term."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import torch
from torch import nn

from ._checks import check_mode
from ._names import did_you_mean
from .registry import LOSSES

_RESERVED = ("mode", "ignore_index")


def _option_names(cls: type) -> list[str]:
    code = cls.__init__.__code__
    names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
    return [n for n in names if not n.startswith("_")]


class ComboLoss(nn.Module):
    """``sum_k weight_k * loss_k(logits, target)`` over the named terms of ``spec``.

    Args:
        spec: ``{name: weight}`` or ``{name: {"weight": w, **options}}``, as a YAML config
            writes it; names are keys of :data:`losses.LOSSES` (case-insensitive), options are
            that class's constructor arguments. A missing ``weight`` means 1.
        mode: "binary", "multiclass" or "multilabel", passed to every term.
        ignore_index: passed to every term. Default None.

    Attributes:
        terms: ``nn.ModuleDict`` name -> loss module.
        weights: name -> weight.
        last_terms: after each forward, name -> detached, unweighted term value.

    Raises:
        ValueError: an unknown name (with the closest valid names), an unknown option (naming
            the option and the term), a weight that is not a finite number >= 0, or an empty spec.

    Example:
        >>> loss = ComboLoss({"ce": 1.0, "dice": {"weight": 0.5, "smooth": 1.0}}, "multiclass",
        ...                  ignore_index=255)
        >>> total = loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
        >>> sorted(loss.last_terms)
        ['ce', 'dice']
    """

    def __init__(self, spec: Mapping, mode: str, ignore_index: int | None = None) -> None:
        super().__init__()
        check_mode(mode, "ComboLoss")
        if not isinstance(spec, Mapping) or not spec:
            raise ValueError(
                f"ComboLoss: spec must be a non-empty dict of loss name -> weight or options, "
                f"got {spec!r}; valid names: {sorted(LOSSES)}"
            )
        self.mode = mode
        self.ignore_index = ignore_index
        self.weights: dict[str, float] = {}
        terms = {}
        for raw_name, entry in spec.items():
            name = str(raw_name).lower()
            if name not in LOSSES:
                raise ValueError(f"ComboLoss: unknown loss {raw_name!r}; {did_you_mean(name, LOSSES)}")
            if name in terms:
                raise ValueError(
                    f"ComboLoss: loss {raw_name!r} appears twice in the spec (names are "
                    "case-insensitive); merge the two entries"
                )
            cls = LOSSES[name]
            if isinstance(entry, Mapping):
                options = dict(entry)
                weight = options.pop("weight", 1.0)
            else:
                options, weight = {}, entry
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
                raise ValueError(f"ComboLoss: weight of {raw_name!r} must be a number, got {weight!r}")
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(
                    f"ComboLoss: weight of {raw_name!r} is {weight!r}; a weight must be a finite number >= 0 "
                    "(0 turns the term off but still reports it)"
                )
            valid = [n for n in _option_names(cls) if n not in _RESERVED]
            for option in options:
                if option in _RESERVED:
                    raise ValueError(
                        f"ComboLoss: option {option!r} of loss {raw_name!r} is set once for all "
                        f"terms; pass ComboLoss(spec, mode=..., ignore_index=...)"
                    )
                if option not in valid:
                    raise ValueError(
                        f"ComboLoss: unknown option {option!r} for loss {raw_name!r}; {did_you_mean(option, valid)}"
                    )
            try:
                terms[name] = cls(mode=mode, ignore_index=ignore_index, **options)
            except (ValueError, TypeError) as err:
                raise ValueError(f"ComboLoss: loss {raw_name!r}: {err}") from err
            self.weights[name] = float(weight)
        self.terms = nn.ModuleDict(terms)
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the terms on (N, C, *S) logits and a target; keeps each term in ``last_terms``."""
        total = None
        last = {}
        for name, loss in self.terms.items():
            value = loss(logits, target)
            last[name] = value.detach()
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        self.last_terms = last
        return total
