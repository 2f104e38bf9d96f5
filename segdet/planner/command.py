"""``segdet init DATA --output CONFIG``: fingerprint the data, time a few steps, write the plan.

Steps: find the pairs (:mod:`.layout`), measure them (:mod:`.fingerprint`), decide what the data
decides (:func:`.plan.plan_data`), time candidate configs on this machine until the chosen one is
a measured one (:mod:`.timing`, at most :data:`MAX_TIMINGS`), decide the rest
(:func:`.plan.plan_budget`), write the commented YAML and, for one ``images/`` + ``masks/`` folder,
the two split files beside it (each atomically), then load the file back through
:func:`segdet.config.load_config` and check its task, so what was written is known to be valid.
Nothing is written before every check has passed.

Example:
    >>> path = init_config("data/nuclei", "nuclei.yaml", minutes=10)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segdet._atomic import atomic_write_text
from segdet.config import load_config, validate_config
from segdet.task import build_task

from .fingerprint import MAX_FILES, Fingerprint, fingerprint
from .layout import find_layout
from .plan import Candidate, Plan, Timing, first_candidate, plan_budget, plan_data
from .timing import time_candidate
from .write import build_config, header, render

__all__ = ["MAX_TIMINGS", "init_config", "split_paths"]

#: candidate configs timed at most
MAX_TIMINGS = 4

Timer = Callable[[dict[str, Any], tuple[int, int]], Timing]


def split_paths(output: Path) -> tuple[Path, Path]:
    """The split files written beside ``output``: ``<stem>.train.txt`` and ``<stem>.val.txt``."""
    return output.with_name(f"{output.stem}.train.txt"), output.with_name(f"{output.stem}.val.txt")


def init_config(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    minutes: float = 10.0,
    task: str = "segmentation",
    force: bool = False,
    max_files: int = MAX_FILES,
    timer: Timer | None = None,
    device: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[Path, Plan]:
    """Plan a config for the data in ``data`` that trains within ``minutes`` here, and write it to ``output``.

    Args:
        data: a dataset folder (``train/`` + ``val/``, or ``images/`` + ``masks/``).
        output: the YAML file to write.
        minutes: the training budget (training and validation) in minutes.
        task: ``segmentation`` (``detection`` is not planned yet).
        force: overwrite ``output`` (and its split files) when they exist.
        max_files: training pairs decoded for the fingerprint at most.
        timer: times a candidate config (default :func:`~segdet.planner.timing.time_candidate`);
            tests pass a fake one.
        device: ``cpu`` or ``cuda`` to plan for; default: where ``train.device: auto`` trains.
        echo: prints the progress lines and the summary.

    Returns:
        The written path and the plan.

    Raises:
        ValueError: ``--minutes`` not positive, an unsupported task, an existing file without
            ``force``, or any data error (naming the folder or file and the fix).
    """
    if task != "segmentation":
        raise ValueError(
            f"--task {task} is not supported by segdet init yet; it plans segmentation configs only "
            "(write a detection config by hand, e.g. from configs/bccd_fasterrcnn.yaml)"
        )
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"--minutes must be a positive number of minutes, got {minutes}")
    output = Path(output)
    _refuse_existing([output], force)
    budget_s = 60.0 * float(minutes)

    layout = find_layout(data)
    if layout.split:
        _refuse_existing(list(split_paths(output)), force)
    echo(f"fingerprint: {len(layout.train_images)} training and {len(layout.val_images)} validation pairs ...")
    fp = fingerprint(layout, max_files=max_files)
    data_plan = plan_data(fp)
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    timer = timer or time_candidate
    out_dir = f"runs/{output.stem}"
    measured: dict[Candidate, Timing] = {}
    with tempfile.TemporaryDirectory(prefix="segdet-init-") as tmp:
        paths = _write_splits(fp, Path(tmp), output) if layout.split else _folders(fp)
        candidate = first_candidate(fp, data_plan, device)
        for _ in range(MAX_TIMINGS):
            echo(f"timing {candidate} on {device} ...")
            cfg = validate_config(build_config(data_plan, candidate, paths, device=device, output_dir=out_dir))
            measured[candidate] = timer(cfg, _val_forward_size(fp))
            plan = plan_budget(fp, data_plan, measured, budget_s, device=device)
            if plan.candidate in measured:
                break
            candidate = plan.candidate
        else:
            plan = plan_budget(fp, data_plan, measured, budget_s, device=device, only_measured=True)

    final_paths = {**paths, **_split_names(output)} if layout.split else paths
    cfg = build_config(data_plan, plan.candidate, final_paths, plan=plan, device=device, output_dir=out_dir)
    command = _command(data, output, minutes)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    text = render(cfg, plan.why, header(fp, plan, command, load))
    if layout.split:
        train_txt, val_txt = split_paths(output)
        atomic_write_text(train_txt, "".join(f"{s}\n" for s in layout.train_stems))
        atomic_write_text(val_txt, "".join(f"{s}\n" for s in layout.val_stems))
    atomic_write_text(output, text)
    loaded = load_config(output)  # the file as segdet train will read it
    build_task(loaded).check()
    for line in _summary(fp, plan, output):
        echo(line)
    return output, plan


def _refuse_existing(paths: list[Path], force: bool) -> None:
    for path in paths:
        if path.exists() and not force:
            raise ValueError(f"{path} already exists; pass --force to overwrite it, or choose another --output")
        if path.is_dir():
            raise ValueError(f"{path} is a folder; --output must name a YAML file, e.g. {path / 'config.yaml'}")


def _folders(fp: Fingerprint) -> dict[str, str | None]:
    lay = fp.layout
    return {"train": str(lay.train_root.resolve()), "val": str(lay.val_root.resolve())}


def _split_names(output: Path) -> dict[str, str]:
    train_txt, val_txt = split_paths(output)
    return {"train_split": train_txt.name, "val_split": val_txt.name}  # beside the config: relative to it


def _write_splits(fp: Fingerprint, folder: Path, output: Path) -> dict[str, str | None]:
    """Split files for the timing configs, in a temporary folder (the final ones are written last)."""
    lay = fp.layout
    train_txt, val_txt = (folder / p.name for p in split_paths(output))
    train_txt.write_text("".join(f"{s}\n" for s in lay.train_stems))
    val_txt.write_text("".join(f"{s}\n" for s in lay.val_stems))
    return {**_folders(fp), "train_split": str(train_txt), "val_split": str(val_txt)}


def _val_forward_size(fp: Fingerprint) -> tuple[int, int]:
    """The validation image size that holds the median validation pixel (the cost per pixel grows with the size).

    Sizes sorted by area, the first at which the running sum of pixels reaches half of them all.
    """
    sizes = sorted(fp.val_sizes, key=lambda s: s[0] * s[1])
    half, total = sum(h * w for h, w in sizes) / 2, 0
    for h, w in sizes:
        total += h * w
        if total >= half:
            return h, w
    return sizes[-1]


def _command(data, output, minutes) -> str:
    return " ".join(
        ["segdet", "init", shlex.quote(str(data)), "--output", shlex.quote(str(output)), "--minutes", f"{minutes:g}"]
    )


def _summary(fp: Fingerprint, plan: Plan, output: Path) -> list[str]:
    d, k = plan.data, plan.candidate
    h, w = fp.typical_size
    lines = [
        f"wrote {output}"
        + (f" and its split files {', '.join(p.name for p in split_paths(output))}" if fp.layout.split else ""),
        f"  data: {len(fp.train_sizes)} train / {len(fp.val_sizes)} val pairs, median {h}x{w}, classes "
        + ", ".join(f"{n} {f:.1%}" for n, f in zip(d.classes, d.frequencies)),
        f"  model: Unet {k.encoder}, crop {k.crop}, batch {k.batch}"
        + (f", scale x{d.scale:g}" if d.scale < 1 else ", native resolution")
        + f", loss {' + '.join(d.loss)}",
        f"  train: {plan.epochs} epochs ({plan.total_steps} steps), "
        + ("no validation, " if plan.val_interval is None else f"validation every {plan.val_interval}, ")
        + f"ema {plan.ema or 'off'}, mix {'CutMix' if plan.mix else 'none'}, inference {d.inference_mode}"
        + (f" + flip {'/'.join(plan.flip)}" if plan.flip else ""),
        f"  predicted {plan.total_s / 60:.1f} min of the {plan.budget_s / 60:g} min budget"
        + ("" if plan.fits else " (OVER: raise --minutes)"),
        f"train it with: segdet train {output}",
    ]
    return lines
