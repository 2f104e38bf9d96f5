"""Albumentations pipelines built from config lists, applied to segdet samples."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
from albumentations.core.composition import BaseCompose  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform  # noqa: E402

from segdet._suggest import did_you_mean  # noqa: E402
from segdet.config.steps import parse_step  # noqa: E402

_INDEX_FIELD = "_segdet_index"
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
):
    """Build an albumentations ``Compose`` from a config list of ``{Name: {args}}`` steps.

    Steps are applied in order. ``Name`` is any albumentations transform; the compositions
    ``OneOf``, ``SomeOf``, ``Sequential`` and ``Compose`` take their children as
    ``transforms: [...]`` in the same format, e.g.
    ``{"OneOf": {"transforms": [{"Blur": {}}, {"GaussNoise": {}}], "p": 0.5}}``. A bare string
    or ``{Name: null}`` means default arguments.

    The returned pipeline (a subclass of ``A.Compose``) is called like albumentations,
    ``pipeline(**sample)``, and keeps samples within the segdet contract:

    - with ``boxes=True``, ``bboxes`` are pascal_voc pixels (``A.BboxParams(format=
      "pascal_voc", label_fields=label_fields, clip=True, **bbox_options)``); a label field
      missing from a sample is filled in for the call and removed again (so one pipeline
      serves samples with and without ``weights``); when a box is dropped its instance mask
      in ``masks`` goes with it (one keep index for boxes, labels and masks);
    - instance ``masks`` (K, H, W) may be empty (K = 0);
    - outputs are cast back: ``bboxes`` (N, 4) float32, label fields as numpy arrays;
    - float images (the 0..255 scale MixUp produces) are divided by 255 for the transforms
      (albumentations expects float images in [0, 1]) and multiplied back after.

    Args:
        steps: the config list (``None`` or ``[]``: a pipeline that changes nothing).
        boxes: transform ``bboxes`` with the image.
        label_fields: per-box fields kept in step with the boxes (add ``"weights"`` for MixUp).
        key: config key named in error messages, e.g. ``"augment.train"``.
        seed: seed of the pipeline's own random generator (``None``: nondeterministic).
        **bbox_options: more ``A.BboxParams`` arguments (``min_visibility``, ``min_area``, ...).

    Raises:
        ValueError: unknown transform (names ``key[i]`` and the closest valid names), an
            unknown or invalid argument (names the transform and the argument).

    Example:
        >>> pipe = build_pipeline([{"HorizontalFlip": {"p": 0.5}},
        ...                        {"Resize": {"height": 64, "width": 64}}], key="augment.train")
        >>> out = pipe(image=np.zeros((32, 48, 3), np.uint8), mask=np.zeros((32, 48), np.uint8))
        >>> out["image"].shape
        (64, 64, 3)
    """
    transforms = _build_list(steps, key)
    bbox_params = None
    fields: tuple[str, ...] = ()
    if isinstance(label_fields, str):
        raise TypeError(f"label_fields must be a list of names, got the string {label_fields!r}")
    if boxes and transforms:  # an empty pipeline leaves boxes alone anyway
        if isinstance(label_fields, str):
            raise TypeError(f"label_fields must be a list of names, got the string {label_fields!r}")
        fields = (*label_fields, _INDEX_FIELD)
        options = {"clip": True, **bbox_options}
        try:
            bbox_params = A.BboxParams(format="pascal_voc", label_fields=list(fields), **options)
        except TypeError as exc:
            raise ValueError(f"{key}: bad box option in {sorted(bbox_options)}: {exc}") from exc
    elif bbox_options and not boxes:
        raise ValueError(f"{key}: box options {sorted(bbox_options)} need boxes=True")
    return SampleCompose(transforms, bbox_params=bbox_params, seed=seed, segdet_fields=fields)


def _build_list(steps, key: str) -> list:
    if steps is None:
        return []
    if isinstance(steps, (str, Mapping)) or not isinstance(steps, Sequence):
        raise ValueError(f"{key} must be a list of {{TransformName: {{args}}}} steps, got {steps!r}")
    return [_build_step(step, f"{key}[{i}]") for i, step in enumerate(steps)]


def _build_step(step, key: str):
    name, args = parse_step(step, key, "{HorizontalFlip: {p: 0.5}}")
    valid = transform_names()
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


class SampleCompose(A.Compose):
    """``A.Compose`` that keeps segdet samples within the contract (see ``build_pipeline``)."""

    def __init__(self, transforms, *, bbox_params=None, seed=None, segdet_fields=(), **kwargs):
        super().__init__(transforms, bbox_params=bbox_params, seed=seed, **kwargs)
        self.segdet_fields = tuple(segdet_fields)

    def __call__(self, *args, force_apply: bool = False, **data):
        if args:
            raise KeyError("call the pipeline with named arguments: pipeline(image=..., mask=...)")
        return _apply(self, super().__call__, data, force_apply)


def _apply(pipeline, call, data: dict, force_apply: bool) -> dict:
    data = dict(data)
    scale = data.get("image") is not None and np.issubdtype(np.asarray(data["image"]).dtype, np.floating)
    if scale:
        data["image"] = np.asarray(data["image"], np.float32) / 255.0
    empty_masks = "masks" in data and len(data["masks"]) == 0
    if empty_masks:
        del data["masks"]
    injected = []
    track = False
    if pipeline.segdet_fields and "bboxes" not in data:  # albumentations wants every box field
        data["bboxes"] = np.zeros((0, 4), np.float32)
        injected.append("bboxes")
    if pipeline.segdet_fields:
        boxes = np.asarray(data["bboxes"], np.float32).reshape(-1, 4)
        data["bboxes"] = boxes
        n = len(boxes)
        for field in pipeline.segdet_fields:
            if field not in data:
                data[field] = np.zeros(n, np.int64) if field != "weights" else np.ones(n, np.float32)
                injected.append(field)
        data[_INDEX_FIELD] = np.arange(n, dtype=np.int64)
        track = "masks" in data and len(data["masks"]) == n
    dtypes = {f: np.asarray(data[f]).dtype for f in pipeline.segdet_fields if f in data}

    out = call(force_apply=force_apply, **data)

    if scale:
        out["image"] = np.asarray(out["image"], np.float32) * 255.0
    if pipeline.segdet_fields:
        out["bboxes"] = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        for field, dtype in dtypes.items():
            out[field] = np.asarray(out[field], dtype=dtype).reshape(-1)
        if track:
            keep = out[_INDEX_FIELD]
            out["masks"] = (
                np.asarray(out["masks"])[keep] if len(keep) else np.zeros((0, *out["image"].shape[:2]), np.uint8)
            )
        out.pop(_INDEX_FIELD, None)
        for field in injected:
            out.pop(field, None)
    if empty_masks:
        out["masks"] = np.zeros((0, *out["image"].shape[:2]), np.uint8)
    return out
