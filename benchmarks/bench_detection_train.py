"""Detection training throughput (images/s) through segdet's task: collate, forward, backward, step.

Runs the real ``DetectionTask`` pieces (synthetic data with the configured pipeline and mixers,
``detection_collate``, the torchvision detector wrapper, SGD step) for a few warm-up and timed
steps, on the CPU and, when available, on CUDA. The samples are made in the main process (no
loader workers), so on a GPU the first figure is bound by data preparation; the second, the
detector fed one pre-built batch again and again (what plain torchvision training costs without
data), is the ceiling, and the ratio shows what the data side costs.

    python benchmarks/bench_detection_train.py        # the model, data and mixers of configs/fasterrcnn_mosaic.yaml
    python benchmarks/bench_detection_train.py model.detector_args={}      # torchvision's default R-CNN head
    python benchmarks/bench_detection_train.py --config configs/bccd_fasterrcnn.yaml --batch-size 4
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402

from segdet.config import load_config  # noqa: E402
from segdet.task import build_task  # noqa: E402


def _bench(task, spec, train_ds, device, batch_size, steps, warmup, with_data):
    model = task.build_model(spec).to(device).train()
    collate = task.collate_fn(spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fixed = collate([train_ds[i] for i in range(batch_size)])

    def batch_at(step):
        if not with_data:
            return fixed
        start = (step * batch_size) % max(1, len(train_ds) - batch_size)
        return collate([train_ds[start + i] for i in range(batch_size)])

    def move(b):
        return [im.to(device) for im in b["image"]], [{k: v.to(device) for k, v in t.items()} for t in b["targets"]]

    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            begin = time.perf_counter()
        images, targets = move(batch_at(step))
        loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - begin)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="config overrides key.sub=value")
    ap.add_argument("--config", default="configs/fasterrcnn_mosaic.yaml")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config, args.overrides)
    task = build_task(cfg)
    train_ds, _, spec = task.build_datasets()
    train_ds.set_epoch(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    m = cfg["model"]
    print(
        f"{args.config}: {m['arch']}, min_size {m['min_size']}, detector_args {m['detector_args']}, "
        f"batch {args.batch_size}, {args.steps} timed steps, {args.threads} CPU threads, "
        f"mixers {[next(iter(x)) for x in cfg['augment']['mix']] or 'none'}"
    )
    for device in devices:
        full = _bench(task, spec, train_ds, device, args.batch_size, args.steps, args.warmup, with_data=True)
        bare = _bench(task, spec, train_ds, device, args.batch_size, args.steps, args.warmup, with_data=False)
        print(
            f"{device.type:5s} segdet (data + collate + step): {full:7.2f} img/s   "
            f"model step alone: {bare:7.2f} img/s   ratio {full / bare:.2f}"
        )


if __name__ == "__main__":
    main()
