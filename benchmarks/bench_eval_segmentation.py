"""Segmentation metric accumulation: segdet's evaluator against smp's ``get_stats``.

Both score the same precomputed logits and masks (the model forward is left out, since it is the
same for both): segdet's :class:`~segdet.segmentation.SegmentationEvaluator` ``update`` (argmax,
then one confusion matrix on the device) against what an smp user writes, ``argmax`` then
``smp.metrics.get_stats`` per batch, with the per-class IoU computed at the end from the summed
stats. It also checks that the two give the same per-class IoU, and on CUDA counts the
host synchronisations of each (``torch.cuda.set_sync_debug_mode``).

    python benchmarks/bench_eval_segmentation.py                       # CPU (and CUDA if present)
    python benchmarks/bench_eval_segmentation.py --size 512 --batch 16 --classes 21
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch


def _make_batches(n, batch, classes, size, gen):
    out = []
    for _ in range(n):
        logits = torch.randn(batch, classes, size, size, generator=gen)
        mask = torch.randint(0, classes, (batch, size, size), generator=gen)
        mask[torch.rand(batch, size, size, generator=gen) < 0.1] = 255
        out.append((logits, mask))
    return out


def _segdet_updates(batches, classes, device):
    from segdet.segmentation import SegmentationEvaluator

    ev = SegmentationEvaluator(classes, 255, None, device)
    ident = torch.nn.Identity()
    for logits, mask in batches:
        ev.update(ident, {"image": logits, "mask": mask})
    return ev


def _smp_stats(batches, classes, device):
    import segmentation_models_pytorch as smp

    return [
        smp.metrics.get_stats(logits.argmax(1), mask, mode="multiclass", num_classes=classes, ignore_index=255)
        for logits, mask in batches
    ]


def _segdet(batches, classes, device):
    metrics = _segdet_updates(batches, classes, device).compute()
    return torch.tensor([metrics[f"iou/class_{k}"] for k in range(classes)], dtype=torch.float64)


def _smp(batches, classes, device):
    import segmentation_models_pytorch as smp

    stats = _smp_stats(batches, classes, device)
    tp, fp, fn, tn = (torch.cat([s[i] for s in stats]).sum(0, keepdim=True) for i in range(4))
    return smp.metrics.iou_score(tp, fp, fn, tn, reduction="none")[0].double()


def _time(fn, batches, classes, device, repeats):
    fn(batches, classes, device)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(batches, classes, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def _syncs(fn, batches, classes, device):
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn(batches, classes, device)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return sum("synchronizing" in str(w.message) for w in caught)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cpu_batches = _make_batches(args.batches, args.batch, args.classes, args.size, torch.Generator().manual_seed(0))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{args.batches} batches of {args.batch}x{args.classes}x{args.size}x{args.size} logits, ignore_index 255")
    for device in devices:
        batches = [(lg.to(device), m.to(device)) for lg, m in cpu_batches]
        ours, theirs = _segdet(batches, args.classes, device), _smp(batches, args.classes, device)
        diff = (ours - theirs).abs().max().item()
        t_ours = _time(_segdet, batches, args.classes, device, args.repeats)
        t_smp = _time(_smp, batches, args.classes, device, args.repeats)
        line = (
            f"{device.type:5s} segdet {t_ours * 1e3:8.2f} ms  smp get_stats {t_smp * 1e3:8.2f} ms  "
            f"ratio segdet/smp {t_ours / t_smp:.3f}  max per-class IoU diff {diff:.1e}"
        )
        if device.type == "cuda":
            line += (
                f"  host syncs in the batch loop: segdet {_syncs(_segdet_updates, batches, args.classes, device)}"
                f", smp {_syncs(_smp_stats, batches, args.classes, device)}"
            )
        print(line)


if __name__ == "__main__":
    main()
