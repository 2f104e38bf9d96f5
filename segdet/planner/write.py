"""The planned config as a dict (:func:`build_config`) and as commented YAML (:func:`render`).

Every value whose reason the plan knows gets it as a comment on its line; a header block states
the fingerprint and the timings the plan rests on. The text is plain YAML: ``segdet train`` reads
it as any other config, and a user edits it as any other.

Example:
    >>> text = render(build_config(fp, plan.data, plan.candidate, paths, plan=plan), plan.why, header(fp, plan))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import yaml

from segdet.config import SCHEMA

from .fingerprint import Fingerprint
from .plan import Candidate, DataPlan, Plan

__all__ = ["build_config", "header", "render"]


def build_config(
    data: DataPlan,
    candidate: Candidate,
    paths: Mapping[str, str | None],
    *,
    plan: Plan | None = None,
    device: str = "cpu",
    output_dir: str = "runs/init",
    ignore_index: int = 255,
) -> dict[str, Any]:
    """The config of ``data`` trained as ``candidate``: the final one with ``plan``, else one to time.

    Args:
        data: the data's choices.
        candidate: encoder, crop and batch.
        paths: ``train``, ``val``, ``train_split``, ``val_split`` of ``data.folder`` (as written).
        plan: the budget's choices; ``None`` for a timing config (1 epoch, no EMA, mixing or TTA).
        device: ``cpu`` or ``cuda``, the device the plan was made for (``channels_last`` on CUDA).
        output_dir: the run folder.
        ignore_index: ``data.ignore_index``.
    """
    crop = candidate.crop
    steps: list[dict[str, Any]] = []
    if data.scale < 1.0:
        limit = round(data.scale - 1.0, 4)
        steps.append({"RandomScale": {"scale_limit": [limit, limit], "p": 1.0}})
    steps += [
        {
            "PadIfNeeded": {
                "min_height": crop,
                "min_width": crop,
                "border_mode": 0,
                "fill": 0,
                "fill_mask": ignore_index,
            }
        },
        {"RandomCrop": {"height": crop, "width": crop}},
        {"HorizontalFlip": {"p": 0.5}},
    ]
    if data.vflip:
        steps.append({"VerticalFlip": {"p": 0.5}})
    if data.rot90:
        steps.append({"RandomRotate90": {"p": 1.0}})
    steps.append({"RandomBrightnessContrast": {"p": 0.5}})

    inference: dict[str, Any] = {"mode": data.inference_mode}
    if data.inference_mode == "slide":
        inference.update(tile=[data.tile, data.tile], overlap=0.25, blend="gaussian", batch=4)
    inference.update(flip=list(plan.flip) if plan else [], scales=[data.scale])
    return {
        "task": "segmentation",
        "seed": 0,
        "output_dir": output_dir,
        "data": {
            "kind": "folder",
            "classes": list(data.classes),
            "mode": data.mode,
            "ignore_index": ignore_index,
            "batch_size": candidate.batch,
            "num_workers": "auto",
            "folder": {
                "train": paths["train"],
                "val": paths["val"],
                "train_split": paths.get("train_split"),
                "val_split": paths.get("val_split"),
                "mask_values": dict(data.mask_values) if data.mask_values else None,
            },
        },
        "augment": {"train": steps, "val": [], "mix": list(plan.mix) if plan else [], "post": []},
        "model": {
            "arch": "Unet",
            "encoder": candidate.encoder,
            "encoder_weights": None,
            "weights": None,
            "mean": list(data.mean),
            "std": list(data.std),
        },
        "inference": inference,
        "loss": dict(data.loss),
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        "schedule": {
            "name": "cosine",
            "warmup_epochs": plan.warmup_epochs if plan else 0.0,
            "min_lr_ratio": 0.01,
        },
        "train": {
            "epochs": plan.epochs if plan else 1,
            "val_interval": plan.val_interval if plan else 1,
            "device": "auto",
            "amp": "auto",
            "channels_last": device == "cuda",
            "ema": plan.ema if plan else None,
            "metric": "miou",
            "patience": None,
        },
    }


def header(fp: Fingerprint, plan: Plan, command: str, load: tuple[float, float, float] | None = None) -> list[str]:
    """The comment lines above the config: the fingerprint and the timings the plan rests on."""
    lay = fp.layout
    sizes = fp.train_sizes + fp.val_sizes
    common = Counter(sizes).most_common(4)
    (h0, w0), (h1, w1), (h2, w2) = fp.min_size, fp.typical_size, fp.max_size
    total = max(sum(fp.value_pixels.values()), 1)
    d = plan.data
    objects = "; ".join(
        f"{d.classes[c]}: {n} objects, diameter 10th pct {p10:.1f} px, median {p50:.1f} px, 90th pct {p90:.1f} px"
        for c, (p10, p50, p90, n) in sorted(d.diameters.items())
    )
    t, k = plan.timing, plan.candidate
    lines = [
        f"Planned by `{command}` from the data's fingerprint; every choice",
        "carries its reason and the measured figure behind it. Edit freely: it is a plain segdet config.",
        "",
        f"data: {lay.root} ({lay.kind}): {len(fp.train_sizes)} training and {len(fp.val_sizes)} validation pairs;",
        f"  {fp.read} training pairs decoded for the figures below (all headers read for the sizes)",
        f"  image sizes (height x width): smallest {h0}x{w0}, median {h1}x{w1}, largest {h2}x{w2};",
        f"    {len(set(sizes))} distinct, commonest " + ", ".join(f"{h}x{w} ({n})" for (h, w), n in common),
        "  colour modes: "
        + ", ".join(f"{m} {n}" for m, n in fp.modes.items())
        + " (segdet reads every image as RGB: alpha dropped, grey repeated)",
        "  mask values (share of the pixels read): "
        + ", ".join(f"{v} {n / total:.2%}" for v, n in fp.value_pixels.items()),
        f"  objects (8-connected components, equivalent diameter): {objects or 'none'}",
        "  image mean / std (RGB in [0, 1]): "
        + " ".join(f"{m:.3f}" for m in fp.mean)
        + " / "
        + " ".join(f"{s:.3f}" for s in fp.std),
        "",
        f"timed on {t.device} ({_usable_cpus()} CPUs"
        + (f", load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else "")
        + f"), {k}: {t.step_s:.3f} s/step, loading {t.data_s:.3f} s/batch,",
        f"  full-resolution forward {t.forward_px_s * 1e6:.3f} s per megapixel, checkpoint {t.checkpoint_s:.2f} s, "
        f"start {t.startup_s:.1f} s",
        f"plan: {plan.epochs} epochs x {plan.steps_per_epoch} steps = {plan.total_steps} steps, "
        + (
            f"no validation (one takes {plan.val_s:.1f} s)"
            if plan.val_interval is None
            else f"validation every {plan.val_interval} epoch(s) ({plan.val_s:.1f} s each)"
        )
        + f": predicted {plan.total_s / 60:.1f} min of {plan.budget_s / 60:g} min",
    ]
    if not plan.fits:
        lines.append("WARNING: one epoch and one validation take longer than the budget; raise --minutes.")
    return lines


def render(cfg: Mapping[str, Any], why: Mapping[str, str], header_lines: list[str] = ()) -> str:
    """``cfg`` as YAML, ``why[key]`` as a comment on the line of each dotted ``key``.

    Schema sections become indented blocks; other values are written in flow style on one line
    (steps of an ``augment`` list one per line, commented by ``why["augment.<list>.<Name>"]``).
    """
    lines = [f"# {h}".rstrip() for h in header_lines]
    state = {"after_section": True}  # a blank line between the header and the first key

    def comment(key: str) -> str:
        return f"  # {why[key]}" if key in why else ""

    def emit(node: Mapping[str, Any], schema: Mapping[str, Any], prefix: str, indent: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            sub = schema.get(key) if isinstance(schema, Mapping) else None
            top_section = prefix == "" and isinstance(sub, Mapping)
            if prefix == "" and lines and (top_section or state["after_section"]):
                lines.append("")
            if prefix == "":
                state["after_section"] = top_section
            if isinstance(sub, Mapping):
                lines.append(f"{indent}{key}:{comment(dotted)}")
                emit(value, sub, dotted + ".", indent + "  ")
            elif _is_steps(value):
                lines.append(f"{indent}{key}:{comment(dotted)}")
                for step in value:
                    lines.append(f"{indent}  - {_flow(step)}{comment(f'{dotted}.{next(iter(step))}')}")
            else:
                lines.append(f"{indent}{key}: {_flow(value)}{comment(dotted)}")

    emit(cfg, SCHEMA, "", "")
    return "\n".join(lines) + "\n"


def _is_steps(value: Any) -> bool:
    return bool(value) and isinstance(value, list) and all(isinstance(s, dict) and len(s) == 1 for s in value)


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False).strip()
    return text[: -len("...")].strip() if text.endswith("\n...") or text == "..." else text


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), which is what the timed steps used."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
