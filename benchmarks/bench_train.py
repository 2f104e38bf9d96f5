"""Time per training step: segdet's loop against a bare hand-written PyTorch loop.

Both loops train the same model (same initial weights) with the same optimizer, LR schedule and
loss on the same in-memory batches, so the ratio measures what segdet's loop adds per step
(device moves, autocast, finiteness check, scaler, scheduler, logging). segdet's side runs the
real :func:`segdet.engine.train_one_epoch`; the bare side is the loop a user would write::

    for x, y in batches:
        loss = loss_fn(model(x), y); opt.zero_grad(); loss.backward(); opt.step(); sched.step(); loss.item()

Rounds come in pairs (bare then segdet, then segdet then bare, ...) after warm-up rounds; the
ratio of the median times per step and the median ratio of the paired rounds are printed, which
cancels most of the drift of a shared machine.

Usage::

    python benchmarks/bench_train.py                       # CPU: 64x64, batch 8
    python benchmarks/bench_train.py --device cuda --height 512 --width 512 --batch 16 --amp bf16 --channels-last
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from segdet.config import load_config  # noqa: E402
from segdet.engine import build_optimizer, build_scheduler, train_one_epoch  # noqa: E402
from segdet.engine._runtime import autocast, select_amp  # noqa: E402
from segdet.task import build_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class _NoStop:
    requested = False


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "unet_cutmix.yaml"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=6, help="steps per round")
    p.add_argument("--rounds", type=int, default=5, help="measured rounds per side")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured rounds per side")
    p.add_argument("--amp", default="none", choices=("none", "fp16", "bf16", "auto"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = load_config(
        args.config,
        [
            f"data.synthetic.height={args.height}",
            f"data.synthetic.width={args.width}",
            f"data.batch_size={args.batch}",
            f"data.synthetic.train_size={args.batch * args.steps}",
            f"train.device={args.device}",
            f"train.amp={args.amp}",
            f"train.channels_last={str(args.channels_last).lower()}",
            "train.progress=false",
            "train.ema=null",
            "augment.mix=[]",
            "augment.train=[]",
        ],
    )
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as segdet sets it when train.deterministic is false
    amp = select_amp(args.amp, device)
    task = build_task(cfg)
    train_ds, _, spec = task.build_datasets()
    collate = task.collate_fn(spec)
    batches = [collate([train_ds[i * args.batch + j] for j in range(args.batch)]) for i in range(args.steps)]
    if device.type == "cuda":  # resident batches: the comparison is about the loop, not the copies
        batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    base = task.build_model(spec).to(device, memory_format=fmt)

    def fresh():
        model = copy.deepcopy(base)
        opt = build_optimizer(model, cfg["optim"])
        sched = build_scheduler(opt, cfg["schedule"], 1000, args.steps)
        scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
        return model, opt, sched, scaler

    seg_state, bare_state = fresh(), fresh()
    task.loss(seg_state[0], {k: v.to(device) for k, v in batches[0].items()})  # build the loss module once
    loss_fn = task._make_loss()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run_segdet() -> float:
        model, opt, sched, scaler = seg_state
        sync()
        t0 = time.perf_counter()
        train_one_epoch(task, model, batches, opt, sched, scaler, None, device, amp, cfg["train"], 0, _NoStop())
        sync()
        return (time.perf_counter() - t0) / args.steps

    def run_bare() -> float:
        model, opt, sched, scaler = bare_state
        model.train()
        sync()
        t0 = time.perf_counter()
        for b in batches:
            x = b["image"].to(device, non_blocking=True)
            y = b["mask"].to(device, non_blocking=True)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            loss.item()
        sync()
        return (time.perf_counter() - t0) / args.steps

    seg, bare = [], []
    for r in range(args.warmup + args.rounds):
        if r % 2:  # alternate which side goes first, so drift and cache effects cancel
            s, b = run_segdet(), run_bare()
        else:
            b, s = run_bare(), run_segdet()
        if r >= args.warmup:
            bare.append(b)
            seg.append(s)
    mb, ms = statistics.median(bare), statistics.median(seg)
    paired = statistics.median(s / b for s, b in zip(seg, bare))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(
        f"device {device} ({where}), "
        f"{cfg['model']['arch']}-{cfg['model']['encoder']} {args.batch}x3x{args.height}x{args.width}, "
        f"amp {args.amp}, channels_last {args.channels_last}, {args.rounds} rounds x {args.steps} steps"
    )
    print(f"bare PyTorch loop : {mb * 1000:8.1f} ms/step  (rounds: {', '.join(f'{v * 1000:.0f}' for v in bare)})")
    print(f"segdet loop       : {ms * 1000:8.1f} ms/step  (rounds: {', '.join(f'{v * 1000:.0f}' for v in seg)})")
    print(f"ratio segdet/bare : {ms / mb:.3f} of the medians, {paired:.3f} median of the paired rounds  (goal <= 1.05)")


if __name__ == "__main__":
    main()
