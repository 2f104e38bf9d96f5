"""Mixers of a config: ``augment.mix`` steps to :data:`augment.MIXERS` objects."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from segdet._suggest import did_you_mean
from segdet.config.steps import parse_step


def build_mixers(steps, *, num_classes: int, ignore_index: int, key: str = "augment.mix") -> list:
    """Mixer objects from a config list ``[{Name: {args}}, ...]`` of ``augment.MIXERS`` names.

    ``num_classes`` and ``ignore_index`` are passed by name to mixers whose constructor takes
    them, unless the step sets them itself.

    Raises:
        ValueError: unknown mixer (names ``key[i]`` and the closest names) or bad arguments.
    """
    import augment

    if isinstance(steps, (str, Mapping)) or not isinstance(steps, (list, tuple)):
        raise ValueError(f"{key} must be a list of {{MixerName: {{args}}}} steps, got {steps!r}")
    mixers = []
    for i, step in enumerate(steps):
        where = f"{key}[{i}]"
        name, args = parse_step(step, where, "{CutMix: {p: 0.5}}")
        if name not in augment.MIXERS:
            raise ValueError(
                f"{where}: unknown mixer {name!r}{did_you_mean(str(name), augment.MIXERS)}; "
                f"available: {sorted(augment.MIXERS)}"
            )
        cls = augment.MIXERS[name]
        params = inspect.signature(cls).parameters
        for extra, value in (("num_classes", num_classes), ("ignore_index", ignore_index)):
            if extra in params and extra not in args:
                args[extra] = value
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            unknown = [a for a in args if a not in params]
            if unknown:
                raise ValueError(
                    f"{where}: {name} has no argument {unknown[0]!r}{did_you_mean(str(unknown[0]), params)}; "
                    f"its arguments are {list(params)}"
                )
        try:
            mixers.append(cls(**args))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad arguments for {name}: {exc}") from exc
    return mixers
