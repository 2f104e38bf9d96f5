"""Config lists of steps, ``[{Name: {args}}, ...]``: albumentations transforms, mixers, batch mixers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["parse_step"]


def parse_step(step: Any, where: str, example: str) -> tuple[str, dict[str, Any]]:
    """Split one config step into its name and arguments.

    A step is a one-key mapping ``{Name: {args}}`` (``{Name: null}`` means no arguments) or a bare
    ``Name``.

    Args:
        step: the step as read from YAML.
        where: its config key for error messages, e.g. ``"augment.mix[0]"``.
        example: a valid step shown in the error, e.g. ``"{CutMix: {p: 0.5}}"``.

    Raises:
        ValueError: the step is not one name with a mapping of arguments.

    Example:
        >>> parse_step({"CutMix": {"p": 0.5}}, "augment.mix[0]", "{CutMix: {p: 0.5}}")
        ('CutMix', {'p': 0.5})
    """
    if isinstance(step, str):
        return step, {}
    if not isinstance(step, Mapping) or len(step) != 1:
        raise ValueError(f"{where} must be one {{Name: {{args}}}} mapping (e.g. {example}), got {step!r}")
    name, args = next(iter(step.items()))
    args = {} if args is None else args
    if not isinstance(args, Mapping):
        raise ValueError(f"{where}: arguments of {name} must be a mapping of name -> value, got {args!r}")
    return str(name), dict(args)
