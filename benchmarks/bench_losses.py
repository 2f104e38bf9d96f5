"""Time and peak memory of segdet's losses against segmentation-models-pytorch, side by side.

Each row is one forward + backward call of a loss on the same logits and target, for segdet
("ours") and the smp loss a user would pick instead; ratios below 1.0 mean segdet is cheaper.

    python benchmarks/bench_losses.py                  # issue sizes: (8,4,256,256), (8,1,512,512)
    python benchmarks/bench_losses.py --size small     # (2,4,64,64), (2,1,128,128), seconds
    python benchmarks/bench_losses.py --repeats 5 --device cuda

Time: ``--repeats`` pairs of calls after ``--warmup`` calls, each pair ours then smp back to
back so that machine load hits both alike. The ms columns are the best (minimum) call, the figure
least disturbed by other processes (as ``timeit`` advises); the time ratio is the median of the
per-pair ratios. On CPU with one thread (the default) the clock is the
calling thread's CPU time (``time.thread_time``), which other processes on a shared machine do
not inflate; otherwise wall time, synchronised around each call on CUDA.
Peak memory: the extra memory a call needs on top of its inputs, gradient included.
CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the call.
CPU: the peak of the running sum of every allocation and free that torch's CPU allocator reports
to ``torch.profiler`` (``profile_memory=True``), measured in a separate untimed call
(Python's tracemalloc does not see torch's allocator).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import losses  # noqa: E402

SIZES = {
    "default": {"multiclass": (8, 4, 256, 256), "binary": (8, 1, 512, 512)},
    "small": {"multiclass": (2, 4, 64, 64), "binary": (2, 1, 128, 128)},
}


def _cases(smp):
    """(row name, shape key, mode, ours, smp, note)."""
    L = smp.losses
    return [
        ("dice multiclass", "multiclass", "multiclass", losses.DiceLoss("multiclass"), L.DiceLoss("multiclass"), ""),
        (
            "dice multiclass ignore=255",
            "multiclass",
            "multiclass+ignore",
            losses.DiceLoss("multiclass", ignore_index=255),
            L.DiceLoss("multiclass", ignore_index=255),
            "",
        ),
        ("dice binary", "binary", "binary", losses.DiceLoss("binary"), L.DiceLoss("binary"), ""),
        (
            "jaccard multiclass",
            "multiclass",
            "multiclass",
            losses.JaccardLoss("multiclass"),
            L.JaccardLoss("multiclass"),
            "",
        ),
        ("jaccard binary", "binary", "binary", losses.JaccardLoss("binary"), L.JaccardLoss("binary"), ""),
        (
            "tversky multiclass",
            "multiclass",
            "multiclass",
            losses.TverskyLoss("multiclass", alpha=0.3, beta=0.7),
            L.TverskyLoss("multiclass", alpha=0.3, beta=0.7),
            "",
        ),
        (
            "focal binary",
            "binary",
            "binary",
            losses.FocalLoss("binary", alpha=0.25),
            L.FocalLoss("binary", alpha=0.25),
            "",
        ),
        (
            "focal multiclass",
            "multiclass",
            "multiclass",
            losses.FocalLoss("multiclass"),
            L.FocalLoss("multiclass"),
            "softmax vs smp's one-vs-rest sigmoid",
        ),
        ("lovasz binary", "binary", "binary", losses.LovaszLoss("binary"), L.LovaszLoss("binary"), ""),
        (
            "lovasz multiclass",
            "multiclass",
            "multiclass",
            losses.LovaszLoss("multiclass"),
            L.LovaszLoss("multiclass"),
            "",
        ),
        ("bce binary", "binary", "binary", losses.BCELoss("binary"), L.SoftBCEWithLogitsLoss(ignore_index=None), ""),
        (
            "mcc binary",
            "binary",
            "binary",
            losses.MCCLoss("binary"),
            _OnSigmoid(L.MCCLoss()),
            "smp's MCCLoss takes probabilities: sigmoid first",
        ),
        (
            "ce multiclass, smoothing 0.1",
            "multiclass",
            "multiclass",
            losses.CrossEntropyLoss(label_smoothing=0.1),
            L.SoftCrossEntropyLoss(smooth_factor=0.1, ignore_index=None),
            "",
        ),
        (
            "dice+bce fused, binary",
            "binary",
            "binary",
            losses.DiceBCELoss("binary"),
            _Sum(L.DiceLoss("binary"), L.SoftBCEWithLogitsLoss(ignore_index=None)),
            "goal <= 0.8x of smp Dice + BCE",
        ),
        (
            "dice+bce fused, multilabel",
            "multiclass",
            "multilabel",
            losses.DiceBCELoss("multilabel"),
            _Sum(L.DiceLoss("multilabel"), L.SoftBCEWithLogitsLoss(ignore_index=None)),
            "goal <= 0.8x of smp Dice + BCE",
        ),
    ]


class _OnSigmoid(torch.nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, x, y):
        return self.loss(torch.sigmoid(x), y)


class _Sum(torch.nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x, y):
        return self.a(x, y) + self.b(x, y)


def _inputs(shape, mode, device, gen):
    n, c, h, w = shape
    x = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
    if mode.startswith("multiclass"):
        y = torch.randint(0, c, (n, h, w), generator=gen)
        if mode.endswith("ignore"):
            y[:, : h // 8] = 255
    else:
        y = (torch.rand(shape, generator=gen) > 0.7).float()
    return x, y.to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call(fn, x, y):
    x.grad = None
    fn(x, y).backward()


def _time(fn, x, y, device, clock):
    _sync(device)
    t0 = clock()
    _call(fn, x, y)
    _sync(device)
    return clock() - t0


def _peak_bytes(fn, x, y, device):
    x.grad = None
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        _call(fn, x, y)
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _call(fn, x, y)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    ap.add_argument("--only", default="", help="run rows whose name contains this text")
    args = ap.parse_args(argv)

    import segmentation_models_pytorch as smp

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    # On a shared CPU the wall clock also counts other processes' time slices; with one torch
    # thread all the work runs on this thread, so its CPU time is the honest figure.
    cpu_clock = device.type == "cpu" and args.threads == 1
    clock = time.thread_time if cpu_clock else time.perf_counter
    clock_name = "thread CPU time" if cpu_clock else "wall time"
    memory_method = (
        "torch.cuda.max_memory_allocated" if device.type == "cuda" else "torch.profiler CPU allocation events"
    )
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {device} ({card}"
        f", {args.threads} thread(s)), torch {torch.__version__}, smp {smp.__version__}, "
        f"size {args.size}, best of {args.repeats} forward+backward calls ({clock_name}), "
        f"ratio = median of {args.repeats} paired ratios; "
        f"peak memory by {memory_method}"
    )
    header = "| loss | shape | ours ms | smp ms | time ratio | ours MiB | smp MiB | memory ratio | note |"
    print(header)
    print("|" + "---|" * 9)
    for name, key, mode, ours, theirs, note in _cases(smp):
        if args.only and args.only not in name:
            continue
        shape = SIZES[args.size][key]
        x, y = _inputs(shape, mode, device, gen)
        ours, theirs = ours.to(device), theirs.to(device)
        with torch.no_grad():
            a, b = float(ours(x, y)), float(theirs(x, y))
        for _ in range(args.warmup):
            _call(ours, x, y)
            _call(theirs, x, y)
        t_ours, t_smp = [], []
        for _ in range(args.repeats):
            t_ours.append(_time(ours, x, y, device, clock))
            t_smp.append(_time(theirs, x, y, device, clock))
        mo = _peak_bytes(ours, x, y, device)
        ms = _peak_bytes(theirs, x, y, device)
        to, ts = min(t_ours) * 1e3, min(t_smp) * 1e3
        # paired: each repeat runs ours then smp back to back, under the same load
        ratio = statistics.median(a / b for a, b in zip(t_ours, t_smp))
        same = "" if abs(a - b) <= 1e-4 * max(1.0, abs(b)) else f"values differ ({a:.4f} vs {b:.4f})"
        note = "; ".join(s for s in (note, same) if s)
        print(
            f"| {name} | {tuple(shape)} | {to:.1f} | {ts:.1f} | {ratio:.2f}x | "
            f"{mo / 2**20:.1f} | {ms / 2**20:.1f} | {mo / max(ms, 1):.2f}x | {note} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
