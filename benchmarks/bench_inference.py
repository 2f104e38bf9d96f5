"""Whole-image vs sliding-window inference (and flip TTA): images/s, peak memory, blending share.

Each row runs in its own process, so its peak resident memory (``ru_maxrss``) is its own: the
default U-Net ResNet-18 (random init, 2 classes) predicts one image of the given size through
:class:`segdet.segmentation.inference.Inference`, after one warm-up pass on a small image. The
blending share is the time outside the model's forward passes (tile gathering, weighting,
accumulation, normalisation) over the whole call; its goal is under 10 %.

Usage::

    python benchmarks/bench_inference.py                       # 2048x2048 and 6000x4000, CPU
    python benchmarks/bench_inference.py --sizes 2048x2048 --rows slide slide+flip
    python benchmarks/bench_inference.py --device cuda

On the 2-core CPU a 6000x4000 row takes minutes; ``--sizes 2048x2048`` is the quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROWS = {
    "whole": {"mode": "whole"},
    "slide": {"mode": "slide", "tile": [512, 512], "overlap": 0.25, "blend": "gaussian", "batch": 4},
    "slide+flip": {
        "mode": "slide",
        "tile": [512, 512],
        "overlap": 0.25,
        "blend": "gaussian",
        "batch": 4,
        "flip": ["h"],
    },
}


def _child(row: str, height: int, width: int, device: str, threads: int) -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import torch

    from segdet.segmentation.inference import Inference
    from segdet.segmentation.model import build_segmentation_model

    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    model_cfg = {"arch": "Unet", "encoder": "resnet18", "encoder_weights": None, "weights": None}
    model = build_segmentation_model(model_cfg, num_classes=2).to(dev).eval()
    inference = Inference.from_config(ROWS[row])
    forward_s = [0.0]

    class Timed(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = self.net(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            forward_s[0] += time.perf_counter() - start
            return out

    timed = Timed(model)
    with torch.inference_mode():
        warm = min(height, 512), min(width, 512)
        Inference(mode="whole")(model, torch.rand(1, 3, *warm, device=dev))
        image = torch.rand(1, 3, height, width, device=dev)
        forward_s[0] = 0.0
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        start = time.perf_counter()
        logits = inference(timed, image)
        labels = logits.argmax(1)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    cuda_gb = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    print(
        json.dumps(
            {
                "row": row,
                "size": f"{height}x{width}",
                "seconds": total,
                "images_per_s": 1.0 / total,
                "forward_s": forward_s[0],
                "blend_share": max(0.0, 1.0 - forward_s[0] / total),
                "peak_rss_gb": peak_gb,
                "cuda_peak_gb": cuda_gb,
                "pixels": int(labels.numel()),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["2048x2048", "6000x4000"], help="HxW of the images")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    parser.add_argument("--child", nargs=3, metavar=("ROW", "H", "W"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row, h, w = args.child
        _child(row, int(h), int(w), args.device, args.threads)
        return
    print(f"U-Net ResNet-18, 2 classes, {args.device}, {args.threads} threads; tile 512x512, overlap 0.25, batch 4")
    print(f"{'size':>10} {'row':>11} {'s/image':>9} {'images/s':>9} {'peak GB':>8} {'blending':>9}")
    for size in args.sizes:
        h, w = (int(v) for v in size.lower().split("x"))
        for row in args.rows:
            cmd = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads)]
            done = subprocess.run([*cmd, "--child", row, str(h), str(w)], capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{size:>10} {row:>11}  failed: {last}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            peak = r["cuda_peak_gb"] if r["cuda_peak_gb"] is not None else r["peak_rss_gb"]
            blend = f"{100 * r['blend_share']:.1f}%" if row != "whole" else "-"
            print(f"{size:>10} {row:>11} {r['seconds']:9.2f} {r['images_per_s']:9.3f} {peak:8.2f} {blend:>9}")


if __name__ == "__main__":
    main()
