"""What a checkpoint inside an epoch costs: seconds per ``weights/last.pt`` and its share of an epoch.

The checkpoint is the one ``segdet train`` writes (model, EMA weights and state, AdamW moments,
scheduler, RNG states, config, the epoch position) for U-Net with a ResNet-18 encoder (smp,
14.3 M parameters), written with :func:`segdet.checkpoint.save_checkpoint` (temporary file,
fsync, rename, fsync of the folder) into ``--dir``. A training step of the same model (forward,
backward, AdamW step, EMA update) on a batch of ``--batch`` x 3 x ``--size`` x ``--size`` is
timed on ``--device``; the share of an epoch at ``train.checkpoint_every: N`` is
``save / (save + N * step)``.

Usage::

    python benchmarks/bench_checkpoint.py                        # CPU, batch 4 of 128x128, N = 100
    python benchmarks/bench_checkpoint.py --device cuda --batch 16 --size 512 --dir /scratch/x
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from segdet.checkpoint import save_checkpoint  # noqa: E402
from segdet.config import load_config  # noqa: E402
from segdet.engine import ModelEMA, build_optimizer, build_scheduler  # noqa: E402
from segdet.engine._runtime import rng_state  # noqa: E402
from segdet.task import DataSpec, build_task  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "unet_cutmix.yaml"


def main(argv: list[str] | None = None) -> None:
    """Time the saves and the steps; print one line each and the share of an epoch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--every", type=int, default=100, help="train.checkpoint_every")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args(argv)

    cfg = load_config(CONFIG, ["model.encoder=resnet18", "model.arch=Unet", f"train.device={args.device}"])
    device = torch.device(args.device)
    task = build_task(cfg)
    spec = DataSpec(("background", "circle", "square", "triangle"))
    model = task.build_model(spec).to(device)
    optimizer = build_optimizer(model, cfg["optim"])
    scheduler = build_scheduler(optimizer, cfg["schedule"], 10, 1000)
    ema = ModelEMA(model, 0.999)
    params = sum(p.numel() for p in model.parameters())

    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 4, (args.batch, args.size, args.size), device=device)
    times = []
    for i in range(args.steps + 1):  # the first one warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update(model)
        loss.item()
        if i:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)

    def state() -> dict:
        return {
            "model": model.state_dict(),
            "ema": ema.module.state_dict(),
            "ema_state": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": None,
            "epoch": 3,
            "position": {"batch": 100, "sums": {"loss": torch.tensor(1.0)}, "n": 100, "images": 400, "skipped": 0},
            "best_metric": 0.5,
            "stale_epochs": 0,
            "rng": rng_state(),
            "config": cfg,
            "interrupted": False,
            **spec.to_checkpoint(),
        }

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "weights" / "last.pt"
        saves = []
        for _ in range(args.saves + 1):
            t0 = time.perf_counter()
            save_checkpoint(state(), path)  # the state dicts copy GPU tensors to the host as torch.save writes
            saves.append(time.perf_counter() - t0)
        size = path.stat().st_size
    save = statistics.median(saves[1:])
    share = save / (save + args.every * step)
    print(f"U-Net R18 ({params / 1e6:.1f} M parameters), {args.device}, checkpoint {size / 2**20:.0f} MiB")
    print(f"save: {save:.3f} s median of {args.saves} (min {min(saves[1:]):.3f} s)")
    print(f"step: {step:.3f} s median of {args.steps} (batch {args.batch} x 3 x {args.size} x {args.size})")
    print(f"checkpoint_every {args.every}: {100 * share:.2f} % of the training time spent saving")


if __name__ == "__main__":
    main()
