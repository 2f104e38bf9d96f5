"""Mask R-CNN on a DSB 2018 subset: training images/s and the time of mask evaluation.

Runs segdet's own pieces (``configs/maskrcnn_dsb.yaml`` with its ``instances/`` folder data,
pipeline, CopyPaste and fitted anchors, at ``--size`` crops; ``detection_collate``; the
torchvision detector wrapper; an AdamW step) for each ``--archs`` entry, random init:

- training: ``--warmup`` untimed and ``--steps`` timed steps of ``--batch-size`` samples made in
  the main process (data + collate + forward + backward + step), on the CPU and on CUDA when
  there is one;
- evaluation: the validation pass of ``segdet eval`` over ``--val-images`` images (model forward,
  masks thresholded and RLE-encoded by the ``DetectionEvaluator``), then COCOeval ``bbox`` and
  ``segm`` on what it collected, timed apart, on each installed backend (pycocotools and
  faster-coco-eval), with a check that both backends agree on all twelve mask numbers.

A random-init model keeps up to ``model.detections_per_img`` (200) low-score detections per
image, so the evaluation times are those of a full result set, not of an empty one.

The data is outside the repository: ``--data`` (default ``../shared/datasets/dsb2018`` beside the
repository) with ``train/`` and ``val/`` (``images/``, ``instances/``). Without it the script says
so and exits 0.

    python benchmarks/bench_maskrcnn.py                    # 32 train / 8 val images, 256 px crops
    python benchmarks/bench_maskrcnn.py --archs maskrcnn_resnet50_fpn --steps 10
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from segdet.config import load_config  # noqa: E402
from segdet.detection._cocoapi import BACKENDS, evaluate  # noqa: E402
from segdet.engine.validate import validate  # noqa: E402
from segdet.task import build_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "maskrcnn_dsb.yaml"
ARCHS = ("maskrcnn_resnet50_fpn", "maskrcnn_mobilenet_v3_large_p3_fpn")


def _subset(folder: Path, n: int, out: Path) -> Path:
    """A split file naming the first ``n`` image stems of ``folder/images`` (sorted)."""
    stems = sorted(p.stem for p in (folder / "images").iterdir())[:n]
    out.write_text("\n".join(stems) + "\n")
    return out


def _config(data: Path, arch: str, size: int, n_train: int, n_val: int, tmp: Path) -> dict:
    crop = f"{{height: {size}, width: {size}, pad_if_needed: true}}"
    return load_config(
        CONFIG,
        [
            f"data.folder.train={data / 'train'}",
            f"data.folder.val={data / 'val'}",
            f"data.folder.train_split={_subset(data / 'train', n_train, tmp / 'train.txt')}",
            f"data.folder.val_split={_subset(data / 'val', n_val, tmp / 'val.txt')}",
            "data.num_workers=0",
            f"augment.train=[{{RandomCrop: {crop}}}, {{HorizontalFlip: {{p: 0.5}}}}, {{VerticalFlip: {{p: 0.5}}}}]",
            f"augment.val=[{{CenterCrop: {crop}}}]",
            f"model.arch={arch}",
            f"model.min_size={size}",
            f"model.max_size={size}",
        ],
    )


def _train_rate(
    task, spec, train_ds, device, batch_size: int, steps: int, warmup: int
) -> tuple[float, torch.nn.Module]:
    """Images/s of timed training steps, and the model they trained."""
    model = task.build_model(spec).to(device).train()
    collate = task.collate_fn(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            begin = time.perf_counter()
        start = (step * batch_size) % max(1, len(train_ds) - batch_size + 1)
        batch = collate([train_ds[start + i] for i in range(batch_size)])
        images = [im.to(device) for im in batch["image"]]
        targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
        loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - begin), model


class _TimedForward(torch.nn.Module):
    """The model, with the seconds its forward calls took added up in ``seconds``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def forward(self, images):
        begin = time.perf_counter()
        out = self.model(images)
        if images and images[0].device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - begin
        return out


def _eval_times(task, spec, model, val_ds, device) -> None:
    loader = torch.utils.data.DataLoader(val_ds, batch_size=2, collate_fn=task.collate_fn(spec))
    evaluator = task.make_evaluator(spec, device)
    timed = _TimedForward(model)
    begin = time.perf_counter()
    validate(timed, loader, evaluator, device)  # forward, masks to RLE, both COCOeval runs
    total = time.perf_counter() - begin
    n_dets = len(evaluator.detections())
    n_gt = len(evaluator.ground_truth()["annotations"])
    print(
        f"  {device.type:4s} eval pass ({len(val_ds)} images, {n_gt} nuclei, {n_dets} detections, "
        f"{evaluator.backend}): {total:.2f} s, of which model forward {timed.seconds:.2f} s and the rest "
        f"(data, masks thresholded + RLE, COCOeval bbox + segm) {total - timed.seconds:.2f} s"
    )
    dets = evaluator.detections()
    stats = {}
    for backend in BACKENDS:
        if backend == "faster-coco-eval" and importlib.util.find_spec("faster_coco_eval") is None:
            print("  faster-coco-eval is not installed (pip install 'segdet[fast-coco]'): pycocotools only")
            continue
        for iou_type in ("bbox", "segm"):
            gt = evaluator.ground_truth(iou_type)
            begin = time.perf_counter()
            stats[backend, iou_type] = evaluate(gt, dets, backend=backend, iou_type=iou_type)[0]
            took = time.perf_counter() - begin
            s = stats[backend, iou_type]
            print(f"  COCOeval {iou_type:4s} {backend:17s} {took:6.2f} s   mAP {s[0]:.4f}  AP50 {s[1]:.4f}")
    if ("faster-coco-eval", "segm") in stats:
        diff = float(np.abs(stats["pycocotools", "segm"] - stats["faster-coco-eval", "segm"]).max())
        print(f"  segm: the two backends' 12 numbers differ by at most {diff:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "dsb2018")
    ap.add_argument("--archs", default=",".join(ARCHS), help="comma-separated model.arch names")
    ap.add_argument("--images", type=int, default=32, help="training images (the first, sorted by id)")
    ap.add_argument("--val-images", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="square crop side, also model.min_size/max_size")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    missing = [p for p in (args.data / "train" / "instances", args.data / "val" / "instances") if not p.is_dir()]
    if missing:
        print(f"bench_maskrcnn: skipped: the DSB 2018 data is not at {args.data} (no {missing[0]}); pass --data")
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"DSB 2018 subset: {args.images} train / {args.val_images} val images, {args.size}x{args.size} crops, "
        f"batch {args.batch_size}, {args.steps} timed steps, {args.threads} CPU threads, torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            cfg = _config(args.data, arch, args.size, args.images, args.val_images, Path(tmp))
            task = build_task(cfg)
            train_ds, val_ds, spec = task.build_datasets()
            train_ds.set_epoch(0)
            print(f"{arch} (random init):")
            for device in devices:
                rate, model = _train_rate(task, spec, train_ds, device, args.batch_size, args.steps, args.warmup)
                print(f"  {device.type:4s} training: {rate:6.2f} images/s (data + collate + step)")
                _eval_times(task, spec, model, val_ds, device)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
