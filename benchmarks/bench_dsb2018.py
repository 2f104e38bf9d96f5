"""DSB2018 nuclei: segdet's planned recipe against a hand-written smp baseline at the same wall clock.

Per seed (``--seeds``, default 0 1 2):

1. **segdet**: ``segdet init DATA --output RUN/cfg.yaml --minutes M`` plans a config from the data
   (once for all seeds; ``--config FILE`` uses a hand-written folder config instead, its own
   ``train.epochs`` then setting the time), then ``segdet train RUN/cfg.yaml seed=S
   output_dir=RUN/segdet/seedS``, timed as the wall of the whole command (start-up and the
   per-epoch validation included), then ``segdet predict`` of ``weights/best.pt`` on the
   validation images, timed separately: a class-index PNG per image at its own size.
2. **baseline**: ``benchmarks/baseline_smp.py`` (U-Net ResNet-34, every image resized to 256x256,
   flips, Dice + BCE, AdamW, cosine, batch 8) trained for exactly segdet's measured train wall,
   then predicted once at 256x256: scored there against masks resized to 256 ("baseline at 256"),
   and with the logits upsampled bilinearly to each image's own size (scored like segdet).
3. **one scorer** for every prediction (:func:`score_folder`, float64 numpy, independent of
   segdet's evaluator): one confusion matrix over all validation pixels at original resolution,
   IoU and Dice of background and nucleus, mean IoU = mean over the two classes (segdet's
   ``miou``), and the nucleus Dice.

The tables (per seed, mean ± std, and segdet - baseline at original resolution against the goal
of >= 0.02 mean IoU) are printed and written to ``RUN/results.md`` and ``RUN/results.json``
(rewritten after every step, so an interrupted run keeps what it measured).

``--ablation`` removes the ingredients of the planned recipe one at a time (on ``--ablation-seeds``,
default the first seed): native-resolution crops -> every image resized to the crop size (trained,
validated and predicted resized, logits upsampled bilinearly as the baseline does), tiled
inference -> whole image, flip TTA -> none, EMA -> off, loss -> plain CE, CutMix -> off. The two
inference-only ingredients predict again from the same checkpoint (``segdet predict`` with
``inference.mode=whole`` / ``inference.flip=[]``); the others retrain with the same config and
epochs. An ingredient the plan does not use is listed as such.

Usage::

    python benchmarks/bench_dsb2018.py                                 # 3 seeds x 5 min a side
    python benchmarks/bench_dsb2018.py --minutes 10 --seeds 0 1 2 --ablation
    python benchmarks/bench_dsb2018.py --config my_dsb.yaml --seeds 0  # a hand-written segdet config
    python benchmarks/bench_dsb2018.py --minutes 0.3 --seeds 0 --limit-train 32 --limit-val 10 --ablation  # smoke

The data is not part of the repository: ``--data`` (default ``../shared/datasets/dsb2018`` beside
the repository) must hold ``train/`` and ``val/``, each with ``images/<id>.png`` and
``masks/<id>.png`` (0 background, 255 nucleus). ``--limit-train/--limit-val N`` use the first N
sorted ids (folders of symlinks under ``RUN/data``) for smoke runs; their figures are not the
benchmark's.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "dsb2018"
CLASSES = ("background", "nucleus")
BASELINE_SIZE = 256
GOAL = 0.02  # segdet - baseline mean IoU at original resolution
#: seconds per megapixel and forward pass of U-Net ResNet-34 on the 2-core CPU (measured there), for the estimate
CPU_S_PER_MPX = 3.5


# --- the one scorer: dataset-level confusion at original resolution, float64 numpy -----------------
def read_truth(path: Path) -> np.ndarray:
    """(H, W) bool nucleus mask of a DSB2018 mask PNG holding 0 (background) and 255 (nucleus)."""
    mask = np.asarray(Image.open(path))
    if mask.ndim != 2:
        raise ValueError(f"mask {path} has shape {mask.shape}; expected one grey channel of 0 and 255")
    bad = np.setdiff1d(np.unique(mask), [0, 255])
    if bad.size:
        raise ValueError(f"mask {path} holds values {bad[:10].tolist()}; DSB2018 masks hold 0 and 255 only")
    return mask == 255


def read_prediction(path: Path) -> np.ndarray:
    """(H, W) bool nucleus mask of a prediction PNG holding class indices 0 (background) and 1 (nucleus)."""
    if not path.is_file():
        raise ValueError(f"prediction {path} does not exist; every validation image needs a <id>.png prediction")
    pred = np.asarray(Image.open(path))
    if pred.ndim != 2:
        raise ValueError(f"prediction {path} has shape {pred.shape}; expected one channel of class indices 0/1")
    bad = np.setdiff1d(np.unique(pred), [0, 1])
    if bad.size:
        raise ValueError(f"prediction {path} holds values {bad[:10].tolist()}; expected class indices 0 and 1")
    return pred == 1


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(2, 2) int64 pixel counts, rows = ground truth, columns = prediction (0 background, 1 nucleus)."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction is {pred.shape} but the ground truth is {truth.shape}")
    index = truth.astype(np.int64).ravel() * 2 + pred.astype(np.int64).ravel()
    return np.bincount(index, minlength=4).reshape(2, 2)


def scores(cm: np.ndarray) -> dict:
    """IoU and Dice per class of a (2, 2) confusion matrix, in float64.

    IoU_c = TP / (TP + FP + FN), Dice_c = 2 TP / (2 TP + FP + FN); ``miou`` is the mean over
    background and nucleus, ``fg_dice`` the nucleus Dice. As in segdet's ``miou``, a class absent
    from both ground truth and prediction has no score (NaN) and is left out of the mean.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    truth, pred = cm.sum(axis=1), cm.sum(axis=0)
    union = truth + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(union > 0, 2 * tp / (truth + pred), np.nan)
    present = ~np.isnan(iou)
    return {
        "miou": float(iou[present].mean()) if present.any() else math.nan,
        "fg_dice": float(dice[1]),
        "iou": {name: float(v) for name, v in zip(CLASSES, iou)},
        "dice": {name: float(v) for name, v in zip(CLASSES, dice)},
        "confusion": cm.astype(np.int64).tolist(),
    }


def score_folder(pred_dir: Path, truth_dir: Path, size: tuple[int, int] | None = None) -> dict:
    """Score ``pred_dir/<id>.png`` against every ``truth_dir/<id>.png``, summed into one confusion.

    Args:
        pred_dir: prediction PNGs (class indices 0/1); other files there are ignored.
        truth_dir: DSB2018 masks (0/255) at original resolution.
        size: ``(height, width)`` to resize the masks to first (nearest neighbour, as
            albumentations' ``Resize`` resizes masks), for predictions made at that size;
            ``None`` scores at original resolution.
    """
    truths = sorted(Path(truth_dir).glob("*.png"))
    if not truths:
        raise ValueError(f"no mask PNGs in {truth_dir}")
    cm = np.zeros((2, 2), np.int64)
    for path in truths:
        truth = read_truth(path)
        if size is not None:
            resized = cv2.resize(truth.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
            truth = resized.astype(bool)
        pred_path = Path(pred_dir) / path.name
        pred = read_prediction(pred_path)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction {pred_path} is {pred.shape[0]}x{pred.shape[1]} but {path} is scored at "
                             f"{truth.shape[0]}x{truth.shape[1]}; predict at that size")  # fmt: skip
        cm += confusion(pred, truth)
    return {**scores(cm), "images": len(truths), "pixels": int(cm.sum())}


# --- data -----------------------------------------------------------------------------------------
def check_data(data: Path) -> None:
    """Raise one clear error when ``data`` is not a DSB2018 folder (it is not in the repository)."""
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            folder = data / split / sub
            if not folder.is_dir() or not any(folder.glob("*.png")):
                raise ValueError(
                    f"no DSB2018 data at {data}: {folder} is missing or holds no PNG. The dataset is not part of "
                    "the repository; pass --data PATH to a folder with train/ and val/, each holding images/ and "
                    "masks/ (see shared/datasets/dsb2018/SOURCE.md beside the repository for where it comes from)"
                )


def limited_data(data: Path, out: Path, limits: dict[str, int | None]) -> Path:
    """``out/{train,val}/{images,masks}`` of symlinks to the first N sorted ids of each split (smoke runs)."""
    for split, limit in limits.items():
        ids = sorted(p.name for p in (data / split / "images").glob("*.png"))[:limit]
        for sub in ("images", "masks"):
            folder = out / split / sub
            folder.mkdir(parents=True, exist_ok=True)
            for name in ids:
                (folder / name).symlink_to((data / split / sub / name).resolve())
    return out


def megapixels(folder: Path) -> float:
    """Total pixels of the PNGs in ``folder``, in millions (read from the headers)."""
    total = 0
    for path in folder.glob("*.png"):
        with Image.open(path) as im:
            total += im.size[0] * im.size[1]
    return total / 1e6


# --- the commands ---------------------------------------------------------------------------------
def run_logged(cmd: list, log: Path) -> float:
    """Run ``cmd`` from the repository root with its output in ``log``; returns its wall seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    with log.open("w") as out:
        start = time.perf_counter()
        done = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-8:])
        raise RuntimeError(f"{' '.join(str(c) for c in cmd[1:])} failed (exit {done.returncode}); {log}:\n{tail}")
    return wall


def segdet(*args) -> list:
    """``python -m segdet ...`` with this interpreter, so the repository's code runs."""
    return [sys.executable, "-m", "segdet", *args]


def plan_config(args: argparse.Namespace, data: Path, run: Path) -> tuple[Path, float]:
    """``RUN/cfg.yaml`` from ``segdet init`` (or from ``--config``, pointed at ``data``); returns it and the seconds."""
    from segdet.config import load_config, save_config

    path = run / "cfg.yaml"
    if args.config:
        folders = [f"data.folder.train={data / 'train'}", f"data.folder.val={data / 'val'}"]
        cfg = load_config(args.config, folders)
        if cfg["data"]["kind"] != "folder" or cfg["task"] != "segmentation":
            raise ValueError(f"--config {args.config} must be a segmentation config with data.kind: folder")
        save_config(cfg, path)
        return path, 0.0
    wall = run_logged(segdet("init", data, "--output", path, "--minutes", args.minutes), run / "logs" / "init.log")
    load_config(path)  # fails here, naming the key, if init wrote something segdet cannot train
    return path, wall


def check_init() -> None:
    """Raise one clear error when this checkout's segdet has no ``init`` subcommand."""
    done = subprocess.run(segdet("init", "--help"), cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(
            "this checkout's segdet has no `init` subcommand yet; pass --config FILE, a segmentation config "
            "with data.kind: folder (its data.folder paths are replaced by --data)"
        )


def train_segdet(cfg: Path, seed: int, out: Path, log: Path) -> tuple[float, Path]:
    """``segdet train CFG seed=S output_dir=OUT``; returns its wall seconds and ``best.pt``."""
    wall = run_logged(segdet("train", cfg, f"seed={seed}", f"output_dir={out}"), log)
    best = out / "weights" / "best.pt"
    if not best.is_file():
        raise RuntimeError(f"segdet train wrote no {best}; see {log}")
    return wall, best


def predict_segdet(cfg: Path, ckpt: Path, images: Path, out: Path, log: Path, overrides: list = ()) -> float:
    """``segdet predict`` of ``ckpt`` on ``images`` into ``out`` (``<id>.png`` class indices); wall seconds."""
    return run_logged(segdet("predict", cfg, *overrides, "--checkpoint", ckpt, "--input", images, "--output", out), log)


def predict_resized(cfg_path: Path, ckpt: Path, images: Path, out: Path, size: tuple[int, int]) -> float:
    """Predict as the baseline does: each image resized to ``size``, logits upsampled bilinearly; wall seconds.

    For the resized-training ablation (``segdet predict`` infers at the image's own size). The
    config's inference section (flip TTA) still applies at the resized size; the labels are the
    argmax of the upsampled logits (class 1 where a one-channel logit is > 0), as segdet labels.
    """
    import torch
    import torch.nn.functional as F

    from segdet._images import read_image
    from segdet.checkpoint import load_checkpoint
    from segdet.config import load_config
    from segdet.engine._runtime import select_device
    from segdet.engine.commands import inference_spec, load_trained_model
    from segdet.segmentation._confusion import labels_from_logits
    from segdet.task import build_task

    start = time.perf_counter()
    cfg = load_config(cfg_path)
    task = build_task(cfg)
    state = load_checkpoint(ckpt)
    spec = inference_spec(task, cfg, state)
    device = select_device(cfg["train"]["device"])
    model = load_trained_model(task, spec, state).to(device)
    inference = task.inference()
    out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        for path in sorted(images.glob("*.png")):
            image = read_image(path)
            small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)  # albumentations' Resize
            x = torch.from_numpy(small).permute(2, 0, 1)[None].to(device, torch.float32) / 255.0
            logits = F.interpolate(inference(model, x), size=image.shape[:2], mode="bilinear", align_corners=False)
            labels = labels_from_logits(logits, spec.num_classes)[0].cpu().numpy().astype(np.uint8)
            Image.fromarray(labels).save(out / path.name)
    return time.perf_counter() - start


def run_baseline(data: Path, budget_s: float, seed: int, out: Path, log: Path) -> dict:
    """``benchmarks/baseline_smp.py`` for ``budget_s`` seconds of training; its ``baseline.json``."""
    workers = min(len(os.sched_getaffinity(0)), 8)  # segdet's data.num_workers: auto (one per usable core)
    script = ROOT / "benchmarks" / "baseline_smp.py"
    cmd = [sys.executable, script, "--data", data, "--budget", f"{budget_s:.2f}", "--seed", seed, "--output", out]
    run_logged([*cmd, "--size", BASELINE_SIZE, "--workers", workers], log)
    return json.loads((out / "baseline.json").read_text())


# --- one seed of the comparison -------------------------------------------------------------------
def run_segdet(cfg: Path, data: Path, run: Path, seed: int) -> dict:
    """Train, predict and score segdet's recipe for one seed."""
    out = run / "segdet" / f"seed{seed}"
    train_s, best = train_segdet(cfg, seed, out, run / "logs" / f"segdet_train_seed{seed}.log")
    print(f"  segdet train   seed {seed}: {train_s:7.1f} s")
    pred = out / "predict"
    predict_s = predict_segdet(
        cfg, best, data / "val" / "images", pred, run / "logs" / f"segdet_predict_seed{seed}.log"
    )
    result = {**score_folder(pred, data / "val" / "masks"), "train_s": train_s, "predict_s": predict_s}
    print(f"  segdet predict seed {seed}: {predict_s:7.1f} s   mean IoU {result['miou']:.4f}")
    return {**result, "checkpoint": str(best)}


def run_seed(cfg: Path, data: Path, run: Path, seed: int) -> dict:
    """segdet, then the baseline for segdet's train wall, both scored by :func:`score_folder`."""
    seg = run_segdet(cfg, data, run, seed)
    out = run / "baseline" / f"seed{seed}"
    stats = run_baseline(data, seg["train_s"], seed, out, run / "logs" / f"baseline_seed{seed}.log")
    times = {"train_s": stats["train_s"], "predict_s": stats["predict_s"]}
    base = {**score_folder(out / "original", data / "val" / "masks"), **times, "stats": stats}
    base256 = {**score_folder(out / f"at{BASELINE_SIZE}", data / "val" / "masks", (BASELINE_SIZE,) * 2), **times}
    print(
        f"  baseline       seed {seed}: {stats['train_s']:7.1f} s train ({stats['steps']} steps, "
        f"{stats['epochs']:.2f} epochs), {stats['predict_s']:.1f} s predict   mean IoU {base['miou']:.4f} "
        f"(at {BASELINE_SIZE}: {base256['miou']:.4f})"
    )
    return {"seed": seed, "segdet": seg, "baseline": base, "baseline_256": base256}


# --- the ablation ---------------------------------------------------------------------------------
#: albumentations steps that set the training image's size (crops, pads, resizes)
SIZE_STEPS = {
    "RandomCrop", "CenterCrop", "Crop", "CropNonEmptyMaskIfExists", "RandomSizedCrop", "RandomResizedCrop",
    "RandomCropFromBorders", "PadIfNeeded", "Resize", "LongestMaxSize", "SmallestMaxSize", "RandomScale",
}  # fmt: skip


def _names(steps: list) -> list[str]:
    from segdet.config.steps import parse_step

    return [parse_step(s, "augment", "{Name: {args}}")[0] for s in steps]


def crop_size(cfg: dict) -> tuple[int, int] | None:
    """``(height, width)`` of the first crop of ``augment.train`` (the planned native-resolution crop), if any."""
    from segdet.config.steps import parse_step

    for step in cfg["augment"]["train"]:
        name, kwargs = parse_step(step, "augment.train", "{RandomCrop: {height: 256, width: 256}}")
        if "Crop" in name and "height" in kwargs and "width" in kwargs:
            return int(kwargs["height"]), int(kwargs["width"])
    return None


def resized(cfg: dict, size: tuple[int, int]) -> dict:
    """``cfg`` trained and validated on whole images resized to ``size`` (crops, pads and resizes dropped)."""
    cfg = copy.deepcopy(cfg)
    resize = {"Resize": {"height": size[0], "width": size[1]}}
    train = cfg["augment"]["train"]
    cfg["augment"]["train"] = [resize] + [s for s, n in zip(train, _names(train)) if n not in SIZE_STEPS]
    cfg["augment"]["val"] = [resize]
    return cfg


def without_ema(cfg: dict) -> dict:
    """``cfg`` with ``train.ema: null``."""
    cfg = copy.deepcopy(cfg)
    cfg["train"]["ema"] = None
    return cfg


def plain_ce(cfg: dict) -> dict:
    """``cfg`` with ``loss: {ce: 1.0}``."""
    cfg = copy.deepcopy(cfg)
    cfg["loss"] = {"ce": 1.0}
    return cfg


def without_cutmix(cfg: dict) -> dict:
    """``cfg`` without CutMix in ``augment.mix`` and ``augment.batch_mix``."""
    cfg = copy.deepcopy(cfg)
    for key in ("mix", "batch_mix"):
        steps = cfg["augment"][key]
        cfg["augment"][key] = [s for s, n in zip(steps, _names(steps)) if n != "CutMix"]
    return cfg


def ablations(cfg: dict) -> list[dict]:
    """The ingredients of the recipe ``cfg`` and how each is removed.

    Each entry: ``ingredient``, ``how``, ``present`` (the recipe uses it), and either ``config``
    (retrain with it; ``resize`` set when the predictions must be made resized) or ``overrides``
    (predict again from the same checkpoint).
    """
    crop = crop_size(cfg)
    size = crop or (BASELINE_SIZE, BASELINE_SIZE)
    names_mix = _names(cfg["augment"]["mix"]) + _names(cfg["augment"]["batch_mix"])
    return [
        {
            "ingredient": "native-resolution crops",
            "how": f"images resized to {size[0]}x{size[1]} (train, val, predict)",
            "present": crop is not None
            and not {"Resize", "LongestMaxSize", "SmallestMaxSize"} & set(_names(cfg["augment"]["train"])),
            "config": resized(cfg, size),
            "resize": size,
        },
        {
            "ingredient": "tiled inference",
            "how": "inference.mode=whole",
            "present": cfg["inference"]["mode"] == "slide",
            "overrides": ["inference.mode=whole"],
        },
        {
            "ingredient": "flip TTA",
            "how": "inference.flip=[]",
            "present": bool(cfg["inference"]["flip"]),
            "overrides": ["inference.flip=[]"],
        },
        {
            "ingredient": "EMA",
            "how": "train.ema=null",
            "present": cfg["train"]["ema"] is not None,
            "config": without_ema(cfg),
        },
        {
            "ingredient": "Dice + CE loss",
            "how": "loss: {ce: 1.0}",
            "present": set(cfg["loss"]) != {"ce"},
            "config": plain_ce(cfg),
        },
        {
            "ingredient": "CutMix",
            "how": "CutMix removed from augment.mix / batch_mix",
            "present": "CutMix" in names_mix,
            "config": without_cutmix(cfg),
        },
    ]


def run_ablation(cfg_path: Path, data: Path, run: Path, seeds: list[int], full: dict[int, dict]) -> list[dict]:
    """Each present ingredient removed, per seed; ``full`` holds (or receives) the full recipe per seed."""
    from segdet.config import load_config, save_config

    for seed in seeds:
        if seed not in full:
            full[seed] = run_segdet(cfg_path, data, run, seed)
    rows = []
    for entry in ablations(load_config(cfg_path)):
        slug = entry["ingredient"].split()[0].lower().replace("-", "_")
        row = {k: entry[k] for k in ("ingredient", "how", "present")}
        row["retrained"] = "config" in entry
        row["with"] = [full[s]["miou"] for s in seeds]
        if not entry["present"]:
            rows.append({**row, "without": None})
            print(f"  ablation {entry['ingredient']}: not in the plan")
            continue
        without, train_s = [], []
        for seed in seeds:
            out = run / "ablation" / f"{slug}_seed{seed}"
            pred, logs = out / "predict", run / "logs" / f"ablation_{slug}_seed{seed}"
            if "config" in entry:
                variant = save_config(entry["config"], run / "ablation" / f"{slug}.yaml")
                wall, best = train_segdet(variant, seed, out, logs.with_suffix(".train.log"))
                train_s.append(wall)
                if entry.get("resize"):
                    predict_resized(variant, best, data / "val" / "images", pred, entry["resize"])
                else:
                    predict_segdet(variant, best, data / "val" / "images", pred, logs.with_suffix(".predict.log"))
            else:
                ckpt = Path(full[seed]["checkpoint"])
                log = logs.with_suffix(".predict.log")
                predict_segdet(cfg_path, ckpt, data / "val" / "images", pred, log, entry["overrides"])
            without.append(score_folder(pred, data / "val" / "masks")["miou"])
            print(f"  ablation {entry['ingredient']} seed {seed}: {without[-1]:.4f} (with: {full[seed]['miou']:.4f})")
        rows.append({**row, "without": without, "train_s": train_s})
    return rows


# --- the report -----------------------------------------------------------------------------------
def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def fmt(values: list[float], digits: int = 4, sign: bool = False) -> str:
    """``mean ± std`` of ``values`` (just the value for one); ``sign`` writes a leading + on positive means."""
    mean, std = mean_std(values)
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


SIDES = (("segdet", "segdet"), ("baseline", "baseline"), ("baseline_256", f"baseline at {BASELINE_SIZE}"))


def seed_table(results: list[dict]) -> list[str]:
    """Mean IoU, Dice and times per seed and side, then mean ± std per side."""
    lines = [
        "| seed | side | mean IoU | nucleus Dice | IoU background | IoU nucleus | train wall s | predict wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for key, label in SIDES:
            s = r[key]
            lines.append(
                f"| {r['seed']} | {label} | {s['miou']:.4f} | {s['fg_dice']:.4f} | {s['iou']['background']:.4f} | "
                f"{s['iou']['nucleus']:.4f} | {s['train_s']:.1f} | {s['predict_s']:.1f} |"
            )
    for key, label in SIDES if len(results) > 1 else ():
        col = [r[key] for r in results]
        lines.append(
            f"| mean ± std | {label} | {fmt([s['miou'] for s in col])} | {fmt([s['fg_dice'] for s in col])} | "
            f"{fmt([s['iou']['background'] for s in col])} | {fmt([s['iou']['nucleus'] for s in col])} | "
            f"{fmt([s['train_s'] for s in col], 1)} | {fmt([s['predict_s'] for s in col], 1)} |"
        )
    return lines


def difference_table(results: list[dict]) -> tuple[list[str], dict]:
    """segdet - baseline at original resolution per seed, the mean ± std, and the verdict on the goal."""
    lines = [
        "| seed | segdet mean IoU | baseline mean IoU | segdet - baseline | nucleus Dice difference | "
        "train wall baseline / segdet | predict wall segdet / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    diffs, dice_diffs, fg_diffs = [], [], []
    for r in results:
        seg, base = r["segdet"], r["baseline"]
        diffs.append(seg["miou"] - base["miou"])
        dice_diffs.append(seg["fg_dice"] - base["fg_dice"])
        fg_diffs.append(seg["iou"]["nucleus"] - base["iou"]["nucleus"])
        lines.append(
            f"| {r['seed']} | {seg['miou']:.4f} | {base['miou']:.4f} | {diffs[-1]:+.4f} | {dice_diffs[-1]:+.4f} | "
            f"{base['train_s'] / seg['train_s']:.3f} | {seg['predict_s'] / base['predict_s']:.2f}x |"
        )
    mean = statistics.fmean(diffs)
    if len(results) > 1:
        lines.append(f"| mean ± std | | | {fmt(diffs, sign=True)} | {fmt(dice_diffs, sign=True)} | | |")
    met = mean >= GOAL
    wins = sum(d >= GOAL for d in diffs)
    verdict = (
        f"Goal: segdet - baseline >= {GOAL} mean IoU at original resolution, at the same training wall clock: "
        f"**{'met' if met else 'missed'}** (mean difference {mean:+.4f} over {len(diffs)} seed(s); "
        f"{wins}/{len(diffs)} seeds at or above {GOAL}); nucleus IoU difference {fmt(fg_diffs, sign=True)}"
        + (" (lower: the mean IoU gain is background, not nuclei)" if statistics.fmean(fg_diffs) < 0 else "")
        + "."
    )
    summary = {"diff_mean": mean, "diffs": diffs, "dice_diffs": dice_diffs, "nucleus_iou_diffs": fg_diffs}
    return lines + ["", verdict], {**summary, "goal_met": met}


def ablation_table(rows: list[dict], noise: float = math.nan) -> list[str]:
    """Per ingredient: mean IoU with and without it, the difference, and whether it gives anything.

    ``noise`` is the seed-to-seed std of the full recipe (NaN when unknown): a positive difference
    below it is reported as within the noise.
    """
    lines = [
        "| ingredient | removed by | retrained | mean IoU with | mean IoU without | with - without | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["without"] is None:
            lines.append(f"| {row['ingredient']} | - | - | - | - | - | not in the plan |")
            continue
        delta = [w - wo for w, wo in zip(row["with"], row["without"])]
        mean = statistics.fmean(delta)
        verdict = "gives nothing" if mean <= 0 else "within seed noise" if mean < noise else "helps"  # NaN: helps
        lines.append(
            f"| {row['ingredient']} | {row['how']} | {'yes' if row['retrained'] else 'no, same checkpoint'} | "
            f"{fmt(row['with'])} | {fmt(row['without'])} | {fmt(delta, sign=True)} | {verdict} |"
        )
    return lines


def write_report(run: Path, meta: dict, results: list[dict], ablation: list[dict] | None) -> str:
    """``RUN/results.md`` and ``RUN/results.json``; returns the markdown."""
    smoke = " (SMOKE RUN on a subset: not benchmark figures)" if meta["smoke"] else ""
    lines = [f"# DSB2018: segdet vs a hand-written smp baseline at the same wall clock{smoke}"]
    lines += ["", meta["setup"], ""]
    summary = None
    if results:
        diff_lines, summary = difference_table(results)
        lines += ["## Per seed", "", *seed_table(results), "", "## segdet - baseline, original resolution", ""]
        lines += diff_lines
    if ablation is not None:
        noise = mean_std([r["segdet"]["miou"] for r in results])[1] if len(results) > 1 else math.nan
        lines += ["", "## Ablation: one ingredient of the recipe removed at a time", ""]
        lines += ablation_table(ablation, noise)
        where = (
            f"{noise:.4f} (positive differences below it: within seed noise)" if not math.isnan(noise) else "unknown"
        )
        lines += ["", f"Seed-to-seed std of segdet's mean IoU over the main seeds: {where}."]
    text = "\n".join(lines) + "\n"
    (run / "results.md").write_text(text)
    payload = {**meta, "results": results, "summary": summary, "ablation": ablation}
    (run / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    return text


def estimate_min(minutes: float, seeds: int, val_mpx: float, val_images: int, ablation_runs: int) -> tuple:
    """Rough minutes of the main comparison and of the ablation, from this machine's CPU rates."""
    seg_predict = val_mpx * CPU_S_PER_MPX * 3 / 60  # at most three passes (flip TTA h and v)
    base_predict = val_images * BASELINE_SIZE**2 / 1e6 * CPU_S_PER_MPX / 60 + 0.2
    main = 1.0 + seeds * (2 * minutes + seg_predict + base_predict + 0.5)
    return main, ablation_runs * (4 * (minutes + seg_predict + 0.2) + 2 * seg_predict)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DSB2018 folder with train/ and val/")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--minutes", type=float, default=5.0, help="segdet init's training budget per seed")
    p.add_argument("--config", type=Path, default=None, help="a segdet folder config instead of segdet init")
    p.add_argument("--output", type=Path, default=ROOT / "runs" / "bench_dsb2018", help="run folder (new)")
    p.add_argument("--ablation", action="store_true", help="remove the recipe's ingredients one at a time")
    p.add_argument("--ablation-seeds", type=int, nargs="+", default=None, help="default: the first of --seeds")
    p.add_argument("--limit-train", type=int, default=None, help="smoke runs: the first N training images")
    p.add_argument("--limit-val", type=int, default=None, help="smoke runs: the first N validation images")
    args = p.parse_args()
    try:
        _run(args)
    except (ValueError, RuntimeError) as exc:
        print(f"bench_dsb2018: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {args.minutes}")
    check_data(args.data)
    if not args.config:
        check_init()
    run = args.output.resolve()
    if run.exists() and any(run.iterdir()):
        raise ValueError(f"run folder {run} is not empty; pass --output NEW_FOLDER or delete it")
    run.mkdir(parents=True, exist_ok=True)
    smoke = args.limit_train is not None or args.limit_val is not None
    data = args.data.resolve()
    if smoke:
        data = limited_data(data, run / "data", {"train": args.limit_train, "val": args.limit_val})
    ablation_seeds = args.ablation_seeds or args.seeds[:1]
    val_images = len(list((data / "val" / "images").glob("*.png")))
    val_mpx = megapixels(data / "val" / "images")
    main_min, abl_min = estimate_min(args.minutes, len(args.seeds), val_mpx, val_images, len(ablation_seeds))
    budget = "the config's train.epochs" if args.config else f"{args.minutes:g} min (segdet init --minutes)"
    print(f"DSB2018 at {data}: {val_images} validation images, {val_mpx:.1f} Mpx; training per seed and side: {budget}")
    print(
        f"estimate on the 2-core CPU: ~{main_min:.0f} min for {len(args.seeds)} seed(s)"
        + (f" + ~{abl_min:.0f} min of ablation ({len(ablation_seeds)} seed(s))" if args.ablation else "")
        + (" (with --config the training time is the config's)" if args.config else "")
    )
    cfg, plan_s = plan_config(args, data, run)
    source = f"--config {args.config}" if args.config else f"segdet init --minutes {args.minutes:g} ({plan_s:.0f} s)"
    setup = (
        f"Data: {data} ({val_images} validation images, {val_mpx:.1f} Mpx, scored at original resolution). "
        f"segdet config: {cfg} from {source}. Baseline: benchmarks/baseline_smp.py, trained for segdet's measured "
        f"train wall of the same seed. Machine: {len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs."
    )
    meta = {"smoke": smoke, "setup": setup, "config": str(cfg), "seeds": args.seeds, "data": str(data)}
    print(f"segdet config: {cfg}")
    results = []
    for seed in args.seeds:
        results.append(run_seed(cfg, data, run, seed))
        write_report(run, meta, results, None)
    ablation = None
    if args.ablation:
        full = {r["seed"]: r["segdet"] for r in results}
        ablation = run_ablation(cfg, data, run, ablation_seeds, full)
    print()
    print(write_report(run, meta, results, ablation))
    print(f"wrote {run / 'results.md'} and {run / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
