"""Training throughput of segdet's loop and the share of each step spent waiting for data.

Rows (each a short run of segdet's own ``train_one_epoch`` with the default loader, after warm-up
steps that absorb worker start-up and first-call costs):

* ``seg default``  - configs/unet_cutmix.yaml as written (batch 8, U-Net ResNet-18).
* ``det default``  - configs/fasterrcnn_mosaic.yaml as written (batch 8, Faster R-CNN MobileNetV3).
* ``seg 512 ...``  - (CUDA, or ``--large`` on CPU) unet_cutmix scaled to 512x512 with a U-Net
  ResNet-34, fp32 against bf16 + channels_last.

For each row: images/s of the loop, ``wait``: the fraction of wall time the loop spent blocked
on the data loader, and ``resident``: images/s of the same model's forward + backward +
optimizer step on one batch kept on the device (no loader, no loop), with ``loop/resident`` their
ratio (1.0 = the loop costs nothing on top of the model).

    python benchmarks/bench_throughput.py --threads 1         # CPU rows here (short; 1 thread on a shared CPU)
    python benchmarks/bench_throughput.py --device cuda       # the 512x512 GPU rows too

Exits non-zero when a row fails. Numbers on a shared CPU vary from run to run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class TimedLoader:
    """Yields ``steps`` batches of ``loader`` and records how long each ``next()`` blocked."""

    def __init__(self, loader: Any, steps: int) -> None:
        self.loader, self.steps = loader, steps
        self.waits: list[float] = []
        self.marks: list[float] = []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.loader)
        for _ in range(self.steps):
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                it = iter(self.loader)
                batch = next(it)
            self.marks.append(t0)
            self.waits.append(time.perf_counter() - t0)
            yield batch
        self.marks.append(time.perf_counter())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg: dict[str, Any], warmup: int, steps: int, resident_steps: int) -> dict[str, float]:
    """Loop images/s, data-wait fraction and resident-batch images/s for ``cfg``."""
    from segdet.engine._runtime import autocast, configure_determinism, select_amp, to_device
    from segdet.engine.distributed import setup
    from segdet.engine.loader import auto_num_workers, make_train_loader, set_loader_epoch
    from segdet.engine.optim import build_optimizer, build_scheduler
    from segdet.engine.trainer import _StopFlag, train_one_epoch
    from segdet.task import build_task

    t = cfg["train"]
    device = setup(cfg["train"])
    amp = select_amp(t["amp"], device)
    configure_determinism(False)
    task = build_task(cfg)
    train_ds, _, spec = task.build_datasets()
    bs = cfg["data"]["batch_size"]
    workers = auto_num_workers(cfg["data"]["num_workers"], len(train_ds), bs)
    loader = make_train_loader(
        train_ds,
        task.collate_fn(spec),
        bs,
        workers,
        seed=cfg["seed"],
        device=device,
        generator=torch.Generator().manual_seed(0),
    )
    set_loader_epoch(loader, 0)
    memory_format = torch.channels_last if t["channels_last"] else torch.contiguous_format
    model = task.build_model(spec).to(device, memory_format=memory_format)
    optimizer = build_optimizer(model, cfg["optim"])
    scheduler = build_scheduler(
        optimizer, {**cfg["schedule"], "name": "constant", "warmup_epochs": 0}, 1, warmup + steps
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    timed = TimedLoader(loader, warmup + steps)
    cfg = {**cfg, "train": {**t, "progress": False}}
    train_one_epoch(task, model, timed, optimizer, scheduler, scaler, None, device, amp, cfg["train"], 0, _StopFlag())
    _sync(device)
    wall = timed.marks[-1] - timed.marks[warmup]
    wait = sum(timed.waits[warmup:])
    loop_ips = steps * bs / wall

    # the model alone: one batch resident on the device, forward + backward + step
    batch = to_device(next(iter(loader)), device, t["channels_last"])
    for i in range(warmup + resident_steps):
        if i == warmup:
            _sync(device)
            begin = time.perf_counter()
        with autocast(device, amp):
            loss, _ = task.loss(model, batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    resident_ips = resident_steps * bs / (time.perf_counter() - begin)
    return {"workers": workers, "batch": bs, "loop_ips": loop_ips, "wait": wait / wall, "resident_ips": resident_ips}


def _config(name: str, device: str, overrides: list[str]) -> dict[str, Any]:
    from segdet.config import load_config

    return load_config(ROOT / "configs" / name, [f"train.device={device}", "train.progress=false", *overrides])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (CUDA: x5)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per row (CUDA: x5)")
    parser.add_argument("--batch", type=int, default=None, help="batch size of the 512x512 rows (default: config's)")
    parser.add_argument("--large", action="store_true", help="also run the 512x512 rows on CPU (slow)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        print(
            f"bench_throughput: --device {args.device} but CUDA is not available here; use --device cpu",
            file=sys.stderr,
        )
        return 2
    steps = args.steps * (5 if cuda else 1)
    warmup = args.warmup * (5 if cuda else 1)  # cudnn autotuning and worker start-up

    rows: list[tuple[str, str, list[str]]] = [
        ("seg default", "unet_cutmix.yaml", []),
        ("det default", "fasterrcnn_mosaic.yaml", []),
    ]
    if cuda or args.large:
        big = [
            "data.synthetic.height=512",
            "data.synthetic.width=512",
            "model.encoder=resnet34",
            "data.synthetic.train_size=512",
        ] + ([f"data.batch_size={args.batch}"] if args.batch else [])
        rows += [("seg 512 r34 fp32", "unet_cutmix.yaml", big + ["train.amp=none", "train.channels_last=false"])]
        if not cuda or torch.cuda.is_bf16_supported():
            rows += [
                (
                    "seg 512 r34 bf16+cl" if cuda else "seg 512 r34 cl",
                    "unet_cutmix.yaml",
                    big + [f"train.amp={'bf16' if cuda else 'none'}", "train.channels_last=true"],
                )
            ]
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"segdet training throughput on {device} ({name}); {warmup} warm-up + {steps} timed steps per row")
    header = (
        f"{'row':<20} {'batch':>5} {'workers':>7} {'img/s':>8} {'wait':>6} {'resident img/s':>15} {'loop/resident':>13}"
    )
    print(header)
    print("-" * len(header))
    failed = 0
    for label, config, overrides in rows:
        try:
            cfg = _config(config, str(device), overrides)
            r = measure(cfg, warmup, steps, steps)
            print(
                f"{label:<20} {r['batch']:>5} {r['workers']:>7} {r['loop_ips']:>8.1f} {r['wait']:>6.1%} "
                f"{r['resident_ips']:>15.1f} {r['loop_ips'] / r['resident_ips']:>13.2f}",
                flush=True,
            )
        except Exception as exc:  # report the row and go on; the exit status says it failed
            failed += 1
            print(f"{label:<20} FAILED: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(file=sys.stderr)
    if cuda:
        print("goals: wait < 5% with the default loader; loop/resident >= 0.90")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
