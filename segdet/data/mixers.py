"""The mixers of a config, built from its step lists ``[{Name: {options}}, ...]``.

``augment.mix`` names :data:`augment.MIXERS` (run in the loader workers on numpy samples);
``augment.batch_mix`` names :data:`BATCH_MIXERS` from :mod:`augment.batch` (run in the training
loop on batches already on the device).

Segmentation modes (``data.mode``): binary data are two classes, so every mixer applies as in
multiclass (MixUp's two-class probabilities become the foreground probability in the loss).
Multilabel masks (one 0/1 channel per class) are copied exactly by CutMix, ResizeMix, SaliencyMix,
PuzzleMix, Mosaic, RICAP and CopyPaste, and on the device by CutMix; MixUp, which turns masks into
class probabilities, is refused in that mode with an error naming the step (:data:`MULTILABEL_REFUSED`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import augment
from augment.batch import BatchCutMix, BatchMixUp
from segdet._suggest import did_you_mean
from segdet.config.steps import parse_step

__all__ = ["BATCH_MIXERS", "MULTILABEL_REFUSED", "build_batch_mixers", "build_mixers", "check_mix_modes"]

#: names usable in ``augment.batch_mix``
BATCH_MIXERS = ("CutMix", "MixUp")
#: mixers that cannot mix multilabel masks (they blend masks into class probabilities)
MULTILABEL_REFUSED = ("MixUp",)


def _check_mode(name: str, mode: str, where: str, available: tuple[str, ...]) -> None:
    if mode == "multilabel" and name in MULTILABEL_REFUSED:
        usable = [n for n in available if n not in MULTILABEL_REFUSED]
        raise ValueError(
            f"{where}: {name} does not support data.mode multilabel (it blends masks into class probabilities, "
            f"and multilabel masks are one 0/1 channel per class); use {' or '.join(usable)}, or remove the step"
        )


def check_mix_modes(augment_cfg: Mapping, mode: str) -> None:
    """Stop on a mixer of ``augment.mix`` or ``augment.batch_mix`` that ``mode`` refuses, before any data is read.

    Steps that are malformed or unknown are left to :func:`build_mixers` and
    :func:`build_batch_mixers`, which name them.

    Raises:
        ValueError: MixUp in multilabel mode, naming the step.
    """
    for key, available in (("mix", tuple(n for n in augment.MIXERS if n != "CopyPaste")), ("batch_mix", BATCH_MIXERS)):
        steps = augment_cfg.get(key) or []
        for i, step in enumerate(steps if isinstance(steps, (list, tuple)) else []):
            if isinstance(step, Mapping) and len(step) == 1:
                _check_mode(str(next(iter(step))), mode, f"augment.{key}[{i}]", available)


def build_mixers(
    steps, *, num_classes: int, ignore_index: int, key: str = "augment.mix", mode: str = "multiclass"
) -> list:
    """Mixer objects from a config list ``[{Name: {args}}, ...]`` of ``augment.MIXERS`` names.

    ``num_classes`` and ``ignore_index`` are passed by name to mixers whose constructor takes
    them, unless the step sets them itself. ``mode`` is ``data.mode`` (see the module docstring).

    Raises:
        ValueError: unknown mixer (names ``key[i]`` and the closest names), a mixer the mode does
            not support, or bad arguments.
    """
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
        _check_mode(name, mode, where, tuple(n for n in augment.MIXERS if n != "CopyPaste"))
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


def build_batch_mixers(
    steps: list, *, num_classes: int, ignore_index: int, key: str = "augment.batch_mix", mode: str = "multiclass"
) -> list[Callable]:
    """Mixers from ``[{Name: {options}}, ...]`` (names in :data:`BATCH_MIXERS`).

    ``mode`` is ``data.mode``; MixUp is refused in multilabel mode (module docstring).

    Raises:
        ValueError / TypeError: an unknown name or option, or a mixer the mode does not support,
            named with its position in ``key``.

    Example:
        >>> build_batch_mixers([{"CutMix": {"p": 0.5}}], num_classes=4, ignore_index=255)
        [BatchCutMix(p=0.5, alpha=1.0, per_sample=True, pairing='permutation')]
    """
    if not isinstance(steps, list):
        raise TypeError(f"{key} must be a list of {{Name: {{options}}}}, got {type(steps).__name__}")
    mixers: list[Callable] = []
    for i, step in enumerate(steps):
        name, options = parse_step(step, f"{key}[{i}]", "{CutMix: {p: 0.5}}")
        if name not in BATCH_MIXERS:
            raise ValueError(f"{key}[{i}]: unknown batch mixer {name!r}; choose one of {', '.join(BATCH_MIXERS)}")
        _check_mode(name, mode, f"{key}[{i}]", BATCH_MIXERS)
        try:
            if name == "CutMix":
                mixers.append(BatchCutMix(**options))
            else:
                mixers.append(BatchMixUp(num_classes=num_classes, ignore_index=ignore_index, **options))
        except TypeError as exc:
            raise ValueError(f"{key}[{i}].{name}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{key}[{i}].{name}: {exc}") from None
    return mixers
