"""Export time, and onnxruntime CPU latency against PyTorch eager, for the default U-Net.

The model is the one of ``configs/unet_cutmix.yaml`` (U-Net ResNet-18, 4 classes, random
weights); a checkpoint of it is written to a temporary folder and exported with
:func:`segdet.engine.export` (the code path of ``segdet export``), timed end to end. Then the
same input, (batch, 3, size, size) float in [0, 1], runs through PyTorch eager
(``torch.no_grad``, the ``SegmentationModel`` as trained) and through the ``.onnx`` file in
onnxruntime's CPU provider, both with the same number of threads, in alternating rounds after
warm-up; the medians and their ratio are printed, with the max abs difference of the logits.

Usage::

    python benchmarks/bench_export.py                           # 512x512, batch 1, torch's thread count
    python benchmarks/bench_export.py --threads 1 --rounds 30
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from segdet.checkpoint import save_checkpoint  # noqa: E402
from segdet.config import load_config  # noqa: E402
from segdet.engine import export  # noqa: E402
from segdet.task import DataSpec, build_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "unet_cutmix.yaml"))
    p.add_argument("--size", type=int, default=512, help="input height and width")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="CPU threads of both runtimes (default: torch's)")
    p.add_argument("--rounds", type=int, default=20, help="timed calls per runtime")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per runtime")
    args = p.parse_args()

    import onnxruntime as ort

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    cfg = load_config(args.config, ["train.device=cpu"])
    task = build_task(cfg)
    spec = DataSpec(tuple(cfg["data"]["classes"] or ("background", "foreground")))
    torch.manual_seed(0)
    model = task.build_model(spec).eval()
    m = cfg["model"]
    print(
        f"model: {m['arch']} {m['encoder']}, {spec.num_classes} classes; input {args.batch}x3x{args.size}x{args.size}"
    )
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {threads} thread(s), {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint({"model": model.state_dict(), "config": cfg, **spec.to_checkpoint()}, Path(tmp) / "m.pt")
        t0 = time.perf_counter()
        onnx_path = export(cfg, ckpt, "onnx", Path(tmp) / "m.onnx")
        t_onnx = time.perf_counter() - t0
        t0 = time.perf_counter()
        export(cfg, ckpt, "torchscript", Path(tmp) / "m.ts")
        t_ts = time.perf_counter() - t0
        size_mb = onnx_path.stat().st_size / 2**20
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    feed = {"image": x.numpy()}

    def run_torch() -> np.ndarray:
        with torch.no_grad():
            return model(x).numpy()

    def run_ort() -> np.ndarray:
        return sess.run(None, feed)[0]

    diff = float(np.abs(run_torch() - run_ort()).max())
    for _ in range(args.warmup):
        run_torch()
        run_ort()
    times: dict[str, list[float]] = {"torch": [], "ort": []}
    for r in range(args.rounds):  # alternate which runs first, so drift hits both sides alike
        order = [("torch", run_torch), ("ort", run_ort)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    paired = statistics.median(o / t for o, t in zip(times["ort"], times["torch"]))

    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| export to ONNX (segdet.engine.export, end to end) | {t_onnx:.1f} s ({size_mb:.1f} MiB file) |")
    print(f"| export to TorchScript | {t_ts:.1f} s |")
    print(f"| PyTorch eager latency (median of {args.rounds}) | {med['torch']:.1f} ms |")
    print(f"| onnxruntime CPU latency (median of {args.rounds}) | {med['ort']:.1f} ms |")
    print(f"| onnxruntime / PyTorch | **{med['ort'] / med['torch']:.2f}x** (median of paired rounds {paired:.2f}x) |")
    print(f"| max abs difference of the logits | {diff:.1e} |")


if __name__ == "__main__":
    main()
