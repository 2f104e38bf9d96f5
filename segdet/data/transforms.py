"""Albumentations pipelines built from config lists (run on samples by ``augment.call_albumentations``)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
from albumentations.core.composition import BaseCompose  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform  # noqa: E402

from augment.policies import POLICIES  # noqa: E402
from segdet._suggest import did_you_mean  # noqa: E402
from segdet.config.steps import parse_step  # noqa: E402

_COMPOSE_NAMES = ("Compose", "OneOf", "SomeOf", "Sequential", "OneOrOther", "SelectiveChannelTransform")


def transform_names() -> list[str]:
    """Names of every albumentations transform and composition usable in a config."""
    return sorted(
        n
        for n in dir(A)
        if isinstance(getattr(A, n), type)
        and issubclass(getattr(A, n), (BasicTransform, BaseCompose))
        and n not in ("BasicTransform", "BaseCompose", "DualTransform", "ImageOnlyTransform")
    )


def build_pipeline(
    steps: Sequence[Mapping[str, Any] | str] | None,
    *,
    boxes: bool = False,
    label_fields: Sequence[str] = ("labels",),
    key: str = "augment",
    seed: int | None = None,
    **bbox_options: Any,
) -> A.Compose:
    """Build an albumentations ``Compose`` from a config list of ``{Name: {args}}`` steps.

    Steps are applied in order. ``Name`` is any albumentations transform, or one of augment's
    policies (``AutoAugment``, ``RandAugment``, ``TrivialAugment``, :mod:`augment.policies`); the compositions
    ``OneOf``, ``SomeOf``, ``Sequential`` and ``Compose`` take their children as
    ``transforms: [...]`` in the same format, e.g.
    ``{"OneOf": {"transforms": [{"Blur": {}}, {"GaussNoise": {}}], "p": 0.5}}``. A bare string
    or ``{Name: null}`` means default arguments.

    The result is a plain ``A.Compose``. With ``boxes=True`` (and at least one step) it moves
    ``bboxes`` as pascal_voc pixels: ``A.BboxParams(format="pascal_voc",
    label_fields=label_fields, clip=True, **bbox_options)``. Run it on a segdet sample through
    ``augment.call_albumentations(pipeline, sample)``, as ``augment.MixDataset`` and
    :class:`segdet.data.TransformedDataset` do: that call keeps ``labels``, ``weights`` and
    instance ``masks`` on one keep-index when a box is dropped, accepts samples without
    ``weights``, ``masks`` or ``bboxes`` and with no instances (K = 0), scales float images
    (the 0..255 scale MixUp produces) to [0, 1] for the transforms and back, and returns the
    arrays in the contract's dtypes.

    Args:
        steps: the config list (``None`` or ``[]``: a pipeline that changes nothing).
        boxes: transform ``bboxes`` with the image.
        label_fields: the ``label_fields`` of the ``BboxParams``; must include ``"labels"``.
            ``augment.call_albumentations`` keeps every per-box array in step with the boxes
            whether it is listed or not.
        key: config key named in error messages, e.g. ``"augment.train"``.
        seed: seed of the pipeline's own random generator (``None``: nondeterministic).
        **bbox_options: more ``A.BboxParams`` arguments (``min_visibility``, ``min_area``, ...).

    Returns:
        ``A.Compose`` of the steps.

    Raises:
        TypeError: ``label_fields`` is a string.
        ValueError: unknown transform (names ``key[i]`` and the closest valid names), an
            unknown or invalid argument (names the transform and the argument), box options
            without ``boxes=True``, or ``label_fields`` without ``"labels"``.

    Example:
        >>> import numpy as np
        >>> from augment import call_albumentations
        >>> pipe = build_pipeline([{"HorizontalFlip": {"p": 0.5}},
        ...                        {"Resize": {"height": 64, "width": 64}}], boxes=True, key="augment.train")
        >>> sample = {"image": np.zeros((32, 48, 3), np.uint8), "bboxes": np.array([[0, 0, 8, 8]], np.float32),
        ...           "labels": np.array([1]), "masks": np.ones((1, 32, 48), np.uint8)}
        >>> out = call_albumentations(pipe, sample)
        >>> out["image"].shape, out["bboxes"].shape, out["masks"].shape
        ((64, 64, 3), (1, 4), (1, 64, 64))
    """
    if isinstance(label_fields, str):
        raise TypeError(f"label_fields must be a list of names, got the string {label_fields!r}")
    transforms = _build_list(steps, key)
    bbox_params = None
    if boxes and transforms:  # an empty pipeline leaves boxes alone anyway
        if "labels" not in label_fields:
            raise ValueError(f"{key}: label_fields {list(label_fields)} must include 'labels' (the class of each box)")
        options = {"clip": True, **bbox_options}
        try:
            bbox_params = A.BboxParams(format="pascal_voc", label_fields=list(label_fields), **options)
        except TypeError as exc:
            raise ValueError(f"{key}: bad box option in {sorted(bbox_options)}: {exc}") from exc
    elif bbox_options and not boxes:
        raise ValueError(f"{key}: box options {sorted(bbox_options)} need boxes=True")
    return A.Compose(transforms, bbox_params=bbox_params, seed=seed)


def _build_list(steps, key: str) -> list:
    if steps is None:
        return []
    if isinstance(steps, (str, Mapping)) or not isinstance(steps, Sequence):
        raise ValueError(f"{key} must be a list of {{TransformName: {{args}}}} steps, got {steps!r}")
    return [_build_step(step, f"{key}[{i}]") for i, step in enumerate(steps)]


def _build_step(step, key: str):
    name, args = parse_step(step, key, "{HorizontalFlip: {p: 0.5}}")
    if name in POLICIES:  # augment's AutoAugment / RandAugment / TrivialAugment, built of albumentations steps
        return _build_policy(name, args, key)
    valid = [*transform_names(), *POLICIES]
    if not isinstance(name, str) or name not in valid:
        raise ValueError(
            f"{key}: unknown albumentations transform {name!r}{did_you_mean(str(name), valid)}; "
            f"see https://albumentations.ai/docs for the names"
        )
    cls = getattr(A, name)
    if name in _COMPOSE_NAMES and "transforms" in args:
        args["transforms"] = _build_list(args["transforms"], f"{key}.{name}.transforms")
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [p for p in params if p != "self" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    if not takes_any:
        for arg in args:
            if arg not in allowed:
                raise ValueError(
                    f"{key}: {name} has no argument {arg!r}{did_you_mean(str(arg), allowed)}; "
                    f"its arguments are {allowed}"
                )
    try:
        return cls(**args)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{key}: bad arguments for {name}: {_short(exc, args)}") from exc
    except TypeError as exc:
        raise ValueError(f"{key}: bad arguments for {name}: {exc}") from exc


def _build_policy(name: str, args: dict, key: str):
    build = POLICIES[name]
    params = [p for p in inspect.signature(build).parameters]
    for arg in args:
        if arg not in params:
            raise ValueError(
                f"{key}: {name} has no argument {arg!r}{did_you_mean(str(arg), params)}; its arguments are {params}"
            )
    try:
        return build(**args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key}: bad arguments for {name}: {exc}") from exc


def _short(exc: Exception, args: dict) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return "; ".join(
                f"argument {'.'.join(map(str, e.get('loc', ()))) or '?'}: {e.get('msg')} (got {e.get('input')!r})"
                for e in errors()
            )
        except Exception:  # noqa: BLE001 - fall back to the plain message
            pass
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if lines and "validation error" in lines[0]:
        lines = [ln for ln in lines[1:] if not ln.startswith("For further information")]
        # pydantic prints "field" then "  message [type=..., input_value=...]" per error
        pairs = [
            f"argument {lines[i]}"
            + (f"={args[lines[i]]!r}" if lines[i] in args else " (missing)")
            + f": {lines[i + 1].split(' [type=')[0]}"
            for i in range(0, len(lines) - 1, 2)
        ]
        return "; ".join(pairs) or str(exc)
    return " ".join(lines)
