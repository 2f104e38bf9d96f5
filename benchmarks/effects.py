"""The effect of each augmentation and training technique against the same config without it.

For each dataset a baseline config is written once; every row of the table is that config plus
exactly one technique, given as ``segdet train`` command-line overrides (``key=value``, YAML
values), trained over ``--seeds`` (default 0 1 2). Every row of a dataset has the same budget
(images, crop size, epochs, batch), and each run is scored once, by the validation pass after its
last epoch (``train.val_interval`` larger than the run, so no per-epoch validation and no choice
of the best epoch): the ``miou`` column of the run's last ``results.csv`` row.

Datasets (``--dataset builtin|dsb|both``):

* ``builtin``: ``configs/unet_cutmix.yaml`` (U-Net ResNet-18, random init, 64x64 synthetic
  shapes, 4 classes) with ``augment.mix: []`` (that config ships with CutMix) and a smaller budget
  (:data:`BUILTIN_BUDGET`).
* ``dsb``: DSB2018 nuclei (``--data``, default ``../shared/datasets/dsb2018`` beside the
  repository, not part of it): an evenly spaced subset of the train and val ids (folders of
  symlinks under ``OUT/data``), each image's longest side resized to ``max_size``, random
  ``crop`` x ``crop`` crops, flips, the same U-Net, AdamW 2e-3; validation on whole images at that
  scale, scored at the mask's own resolution (:data:`DSB_BUDGET`). Skipped with a message when
  the folder is absent.

Every run trains in this process with one torch thread (``--threads``) and no loader workers
(``--workers``): on a CPU other jobs also load, two OpenMP threads spin waiting for each other
(README, "Measured"), and start-up of a new interpreter or of workers per run would cost more than
a small run's training.

The table (technique, options, mean IoU mean ± sample std over the seeds per dataset, the
difference to the baseline's mean, seconds per run: the wall of :func:`segdet.engine.train`,
data set-up and the final validation included) is printed and written to ``OUT/effects.md`` and
``OUT/effects.csv`` after every run, so an interrupted run keeps what it measured. ``OUT``
(``--out``) defaults to a new temporary folder and may not lie inside the repository.

Distillation (``distill: kd | cwd``) is not a row: it needs a teacher trained first, which does
not fit this budget; README, "Feature mixing and distillation", has its own measurement.

Usage::

    python benchmarks/effects.py                                   # both datasets, 18 rows x 3 seeds
    python benchmarks/effects.py --dataset builtin --only CutMix   # the baseline and one row
    python benchmarks/effects.py --seeds 0 --dataset dsb --out /tmp/effects
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: ``shared/datasets/dsb2018`` beside the repository (or beside the folder of its git worktrees)
DEFAULT_DATA = next(
    (p / "shared" / "datasets" / "dsb2018" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").is_dir()),
    ROOT.parent / "shared" / "datasets" / "dsb2018",
)
BASELINE = "none (baseline)"

#: the built-in data's budget, the same for every row (overrides of configs/unet_cutmix.yaml)
BUILTIN_BUDGET = {
    "data.synthetic.train_size": 96,
    "data.synthetic.val_size": 32,
    "train.epochs": 4,
}
#: DSB2018: images in the subsets, the scale, the crop and epochs, the same for every row
DSB_BUDGET = {"train_images": 64, "val_images": 16, "max_size": 192, "crop": 96, "epochs": 4}
#: the training augmentation of the baseline (a policy row appends its step to it)
BUILTIN_TRAIN = [{"HorizontalFlip": {"p": 0.5}}, {"RandomBrightnessContrast": {"p": 0.3}}]


def dsb_train_steps(budget: dict) -> list[dict]:
    """The DSB baseline's ``augment.train``: longest side to ``max_size``, padded and cropped to ``crop``."""
    crop = budget["crop"]
    return [
        {"LongestMaxSize": {"max_size": budget["max_size"]}},
        {"PadIfNeeded": {"min_height": crop, "min_width": crop, "border_mode": 0, "fill": 0, "fill_mask": 255}},
        {"RandomCrop": {"height": crop, "width": crop}},
        {"HorizontalFlip": {"p": 0.5}},
        {"VerticalFlip": {"p": 0.5}},
        {"RandomBrightnessContrast": {"p": 0.3}},
    ]


def flow(value) -> str:
    """A YAML value on one line, as a ``key=value`` override takes it."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()


def techniques(train_steps: list[dict], lr: float) -> list[tuple[str, str, list[str]]]:
    """(row name, options as the table shows them, overrides) of every row; the first is the baseline.

    Mixers run with ``p: 0.5`` and their defaults otherwise; policies are appended to the
    baseline's ``augment.train``. Lion runs at a tenth of the baseline's learning rate and ten
    times its weight decay, the Lion paper's advice (lr 3-10x smaller, decoupled decay 3-10x
    larger than AdamW's); AdaBound keeps the baseline's lr and pytorch-optimizer's defaults.
    """
    rows: list[tuple[str, str, list[str]]] = [(BASELINE, "-", [])]

    def add(name: str, overrides: list[str], shown: str | None = None) -> None:
        rows.append((name, shown or " ".join(f"`{o}`" for o in overrides), overrides))

    for name in ("CutMix", "FMix", "Mosaic", "MixUp", "CopyPaste", "RICAP", "ResizeMix", "SaliencyMix", "PuzzleMix"):
        step = {"CutMix": {"p": 0.5, "shape": "fmix"}} if name == "FMix" else {name: {"p": 0.5}}
        add(name, [f"augment.mix={flow([step])}"])
    policies = {
        "AutoAugment": {"policy": "imagenet"},
        "RandAugment": {"num_ops": 2, "magnitude": 9},
        "TrivialAugment": {},
    }
    for name, options in policies.items():
        step = {name: options}
        add(name, [f"augment.train={flow([*train_steps, step])}"], f"`{flow(step)}` appended to `augment.train`")
    add("ManifoldMixup", [f"augment.feature_mix={flow([{'ManifoldMixup': {'p': 0.5, 'alpha': 2.0}}])}"])
    add("PatchUp", [f"augment.feature_mix={flow([{'PatchUp': {'p': 0.5, 'block': 7, 'gamma': 0.75}}])}"])
    add("label smoothing", [f"loss={flow({'ce': {'weight': 1.0, 'label_smoothing': 0.1}, 'dice': 1.0})}"])
    add(
        "Lion",
        ["optim.name=lion", f"optim.lr={lr / 10:g}", "optim.weight_decay=0.001"],
        "`optim.name=lion`, `optim.lr` a tenth of the baseline's, `optim.weight_decay=0.001` (10x)",
    )
    add("AdaBound", ["optim.name=adabound"], "`optim.name=adabound` (baseline lr, pytorch-optimizer's defaults)")
    return rows


# --- datasets -------------------------------------------------------------------------------------
def builtin_config(out: Path, workers: int) -> tuple[Path, list[dict], float]:
    """``OUT/builtin.yaml``: configs/unet_cutmix.yaml without CutMix, at :data:`BUILTIN_BUDGET`."""
    from segdet.config import load_config, save_config

    overrides = [f"{k}={v}" for k, v in BUILTIN_BUDGET.items()]
    overrides += ["augment.mix=[]", f"train.val_interval={BUILTIN_BUDGET['train.epochs'] + 1}", "train.progress=false"]
    overrides += [f"data.num_workers={workers}"]
    cfg = load_config(ROOT / "configs" / "unet_cutmix.yaml", overrides)
    if cfg["augment"]["train"] != BUILTIN_TRAIN:
        raise ValueError(
            f"configs/unet_cutmix.yaml's augment.train changed to {cfg['augment']['train']}; update BUILTIN_TRAIN"
        )
    path = out / "builtin.yaml"
    save_config(cfg, path)
    return path, BUILTIN_TRAIN, float(cfg["optim"]["lr"])


def evenly_spaced(ids: list[str], n: int) -> list[str]:
    """``n`` of the sorted ``ids`` at even spacing (the ids are grouped by image type, so not the first n)."""
    if n >= len(ids):
        return ids
    return [ids[(i * len(ids)) // n] for i in range(n)]


def dsb_subset(data: Path, out: Path, budget: dict) -> Path:
    """``out/{train,val}/{images,masks}``: symlinks to an evenly spaced subset of each split."""
    for split, n in (("train", budget["train_images"]), ("val", budget["val_images"])):
        ids = evenly_spaced(sorted(p.name for p in (data / split / "images").glob("*.png")), n)
        for sub in ("images", "masks"):
            folder = out / split / sub
            folder.mkdir(parents=True, exist_ok=True)
            for name in ids:
                link = folder / name
                if not link.exists():
                    link.symlink_to((data / split / sub / name).resolve())
    return out


def dsb_config(data: Path, out: Path, workers: int) -> tuple[Path, list[dict], float]:
    """``OUT/dsb.yaml``: a folder config on the DSB subset at :data:`DSB_BUDGET`."""
    from segdet.config import load_config, save_config

    subset = dsb_subset(data, out / "data" / "dsb2018", DSB_BUDGET)
    train_steps = dsb_train_steps(DSB_BUDGET)
    raw = {
        "task": "segmentation",
        "seed": 0,
        "data": {
            "kind": "folder",
            "classes": ["background", "nucleus"],
            "ignore_index": 255,
            "batch_size": 8,
            "num_workers": workers,
            "folder": {"train": str(subset / "train"), "val": str(subset / "val"), "mask_values": {0: 0, 255: 1}},
        },
        "augment": {
            "train": train_steps,
            "val": [{"LongestMaxSize": {"max_size": DSB_BUDGET["max_size"]}}],
            "mix": [],
        },
        "model": {"arch": "Unet", "encoder": "resnet18", "encoder_weights": None},
        "loss": {"ce": 1.0, "dice": 1.0},
        "optim": {"name": "adamw", "lr": 0.002, "weight_decay": 0.0001},
        "schedule": {"name": "cosine", "warmup_epochs": 0.5},
        "train": {
            "epochs": DSB_BUDGET["epochs"],
            "val_interval": DSB_BUDGET["epochs"] + 1,
            "metric": "miou",
            "progress": False,
        },
    }
    path = out / "dsb.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    save_config(load_config(path), path)  # fails here, naming the key, if the config is wrong
    return path, train_steps, 0.002


def check_dsb(data: Path) -> str | None:
    """``None`` when ``data`` holds DSB2018's train/ and val/ images and masks, else why not."""
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            folder = data / split / sub
            if not folder.is_dir() or not any(folder.glob("*.png")):
                return f"{folder} is missing or holds no PNG"
    return None


# --- runs -----------------------------------------------------------------------------------------
def train(cfg: Path, overrides: list[str], seed: int, run: Path, log: Path) -> tuple[float, float]:
    """Train ``CFG OVERRIDES seed=S output_dir=RUN`` in this process; returns (last-epoch miou, wall seconds).

    The same as ``segdet train CFG OVERRIDES seed=S output_dir=RUN`` (the front door calls
    :func:`segdet.engine.train` with the same :func:`segdet.config.load_config` result), without
    a new interpreter's start-up per run. The run's output and any traceback go to ``log``.

    Raises:
        RuntimeError: the run failed (its traceback is in ``log``), or wrote no ``miou``.
    """
    from segdet.config import load_config
    from segdet.engine import train as segdet_train

    log.parent.mkdir(parents=True, exist_ok=True)
    args = [*overrides, f"seed={seed}", f"output_dir={run}"]
    with log.open("w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print(f"segdet train {cfg} " + " ".join(args), flush=True)
        start = time.perf_counter()
        try:
            segdet_train(load_config(cfg, args))
        except Exception as exc:
            traceback.print_exc()
            raise RuntimeError(f"{type(exc).__name__}: {exc} (traceback in {log})") from exc
        wall = time.perf_counter() - start
    with (run / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or rows[-1].get("miou") in (None, ""):
        raise RuntimeError(f"{run / 'results.csv'} has no miou in its last row; see {log}")
    return float(rows[-1]["miou"]), wall


def slug(name: str) -> str:
    """A row's folder name and short ``--only`` name: its first word, lower case (``none`` is the baseline)."""
    return name.split(" ")[0].lower()


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value, NaN for none)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# --- the table ------------------------------------------------------------------------------------
def table(
    rows: list[tuple[str, str, list[str]]], results: dict, datasets: list[str], failures: dict
) -> tuple[str, list[dict]]:
    """Markdown table and CSV records of ``results[(dataset, technique)] = [(seed, miou, wall), ...]``.

    A row's cell says how many of its runs failed (``failures[(dataset, technique)]``: messages).
    """
    head = ["technique", "options"]
    for d in datasets:
        head += [f"{d} mean IoU", f"{d} Δ vs baseline", f"{d} s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    records = []
    for name, shown, overrides in rows:
        cells = [name, shown]
        for d in datasets:
            runs = results.get((d, name), [])
            base = [m for _, m, _ in results.get((d, BASELINE), [])]
            mean, std = mean_std([m for _, m, _ in runs])
            failed = len(failures.get((d, name), []))
            if not runs:
                cells += [f"failed ({failed} runs)" if failed else "-", "-", "-"]
                continue
            delta = mean - statistics.fmean(base) if base and name != BASELINE else math.nan
            cells += [
                f"{mean:.4f} ± {std:.4f}" + (f" ({failed} failed)" if failed else ""),
                "-" if math.isnan(delta) else f"{delta:+.4f}",
                f"{statistics.fmean(w for _, _, w in runs):.0f}",
            ]
            for seed, miou, wall in runs:
                records.append(
                    {"dataset": d, "technique": name, "options": " ".join(overrides), "seed": seed,
                     "miou": f"{miou:.6f}", "wall_s": f"{wall:.1f}"}
                )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), records


def write(out: Path, header: str, rows, results, datasets, failures: dict) -> str:
    """Rewrite ``OUT/effects.md`` and ``OUT/effects.csv``; returns the markdown (failed runs listed under it)."""
    md, records = table(rows, results, datasets, failures)
    text = f"{header}\n\n{md}\n"
    for (d, name), messages in failures.items():
        text += "".join(f"\n- failed, {d} {name} {m}" for m in messages)
    text += "\n" if failures else ""
    (out / "effects.md").write_text(text)
    with (out / "effects.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["dataset", "technique", "options", "seed", "miou", "wall_s"])
        writer.writeheader()
        writer.writerows(records)
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("builtin", "dsb", "both"), default="both")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="a row (repeatable); the baseline always runs"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DSB2018 folder with train/ and val/")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared CPU)")
    p.add_argument("--workers", type=int, default=0, help="data.num_workers of every run (default 0)")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder outside the repository (default: a new temp dir)"
    )
    args = p.parse_args()
    try:
        _run(args)
    except (ValueError, RuntimeError) as exc:
        print(f"effects: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(args.threads)
    out = (args.out or Path(tempfile.mkdtemp(prefix="segdet_effects_"))).resolve()
    if out == ROOT or ROOT in out.parents:
        raise ValueError(
            f"--out {out} lies inside the repository {ROOT}; pass a folder outside it (default: a temp dir)"
        )
    out.mkdir(parents=True, exist_ok=True)
    datasets = ["builtin", "dsb"] if args.dataset == "both" else [args.dataset]
    configs = {}
    if "builtin" in datasets:
        configs["builtin"] = builtin_config(out, args.workers)
    if "dsb" in datasets:
        why = check_dsb(args.data)
        if why:
            print(f"effects: skipping DSB2018: {why}; the data is not part of the repository, pass --data PATH")
            datasets.remove("dsb")
        else:
            configs["dsb"] = dsb_config(args.data.resolve(), out, args.workers)
    if not datasets:
        raise ValueError("no dataset to run")
    all_rows = techniques(BUILTIN_TRAIN, 0.004)
    names = [n for n, _, _ in all_rows]
    wanted = None
    if args.only:
        wanted = {o.lower() for o in args.only}
        unknown = [o for o in args.only if o.lower() not in {n.lower() for n in names} | {slug(n) for n in names}]
        if unknown:
            raise ValueError(f"--only {unknown[0]!r} is not a row; rows: {names} (or the first word, lower case)")
    header = (
        f"Seeds {args.seeds}; builtin: configs/unet_cutmix.yaml, augment.mix=[], {BUILTIN_BUDGET}; "
        f"dsb: {DSB_BUDGET}. {args.threads} torch thread(s), data.num_workers={args.workers}, "
        f"machine: {os.cpu_count()} CPUs. Configs in {out}."
    )
    print(header)
    results: dict = {}
    failures: dict = {}
    shown: list[tuple[str, str, list[str]]] = []
    for d in datasets:
        cfg, train_steps, lr = configs[d]
        for name, text, overrides in techniques(train_steps, lr):
            if wanted and name != BASELINE and not {name.lower(), slug(name)} & wanted:
                continue
            if name not in [n for n, _, _ in shown]:
                shown.append((name, text, overrides))
            for seed in args.seeds:
                run, log = (
                    out / "runs" / d / slug(name) / f"seed{seed}",
                    out / "logs" / d / f"{slug(name)}_seed{seed}.log",
                )
                try:
                    miou, wall = train(cfg, overrides, seed, run, log)
                except RuntimeError as exc:
                    failures.setdefault((d, name), []).append(f"seed {seed}: {exc}")
                    print(f"{d:8s} {name:16s} seed {seed}: FAILED: {exc}", flush=True)
                else:
                    results.setdefault((d, name), []).append((seed, miou, wall))
                    print(f"{d:8s} {name:16s} seed {seed}: mean IoU {miou:.4f} in {wall:.0f} s", flush=True)
                write(out, header, shown, results, datasets, failures)
    print()
    print(write(out, header, shown, results, datasets, failures))
    print(f"wrote {out / 'effects.md'} and {out / 'effects.csv'}")


if __name__ == "__main__":
    sys.exit(main())
