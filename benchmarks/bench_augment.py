"""Mixing augmentations: segdet's Mosaic against albumentations' ``A.Mosaic``, and batch mixers.

1. A 2x2 Mosaic of four 640x640 uint8 images, each with a 5-class mask and 10 boxes, to
   640x640, all rows in one run, interleaved. Crop geometry: ``A.Mosaic`` with
   ``cell_shape = target_size`` (its "cover" fit then crops the tiles without resizing) against
   ``augment.Mosaic(fit="none")``, the same crop-only work. Resize geometry: ``A.Mosaic`` with
   400x400 cells (every tile resized to 400x400, then cropped) against
   ``augment.Mosaic(fit="cover")`` (every tile resized to cover its cell, then cropped). CPU
   time per sample of one thread (the machine may be shared) and the ratios (goal: <= 0.25x).
2. ``min_visibility=0.9`` honesty check on the same inputs: every box carries an id, so the
   visible fraction of each output box is its area over the area of its source box (both
   crop geometries keep the tiles' scale). Counts the kept boxes below 0.9 for each library.
3. Every mixer of ``augment.MIXERS`` on the same four 640x640 samples (two for the two-source
   mixers), always firing: CPU time per output sample of one thread, and the spectral-residual
   saliency map alone (``augment.spectral_residual_saliency`` of one 640x640 image), which
   SaliencyMix computes once per sample (the partner's) and PuzzleMix twice (both images).
4. ``augment.batch`` CutMix and MixUp on a (16, 3, 512, 512) float batch with (16, 512, 512)
   5-class masks: milliseconds per call on the CPU (1 thread) and, when present, on CUDA
   (synchronised around the timing); the host cost of a call (the same on a (16, 3, 8, 8)
   batch, where only the op dispatch is left); on CUDA also a U-Net ResNet-34 bf16 training
   step on the same batch, alone and with each mixer in front of it (the mixer's share of a
   step).

    python benchmarks/bench_augment.py                     # about 10 s on a 2-core CPU
    python benchmarks/bench_augment.py --repeat 200 --batch-repeat 20 --check-repeat 300
    python benchmarks/bench_augment.py --only-mixers       # the per-sample mixer rows only
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment import MIXERS, Mosaic, spectral_residual_saliency  # noqa: E402
from augment.batch import batch_cutmix, batch_mixup  # noqa: E402

SIZE, CLASSES, BOXES = 640, 5, 10


def make_samples(rng: np.random.Generator) -> list[dict]:
    samples = []
    for s in range(4):
        image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        mask = rng.integers(0, CLASSES, (SIZE, SIZE), dtype=np.uint8)
        wh = rng.uniform(30, 200, (BOXES, 2))
        xy = rng.uniform(0, SIZE - wh)
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        samples.append(
            {
                "image": image,
                "mask": mask,
                "bboxes": boxes,
                "labels": rng.integers(0, CLASSES, BOXES).astype(np.int64),
                "ids": np.arange(BOXES, dtype=np.int64) + 100 * s,
            }
        )
    return samples


def albumentations_mosaic(min_visibility: float, seed: int, cell: int = SIZE):
    import albumentations as A

    return A.Compose(
        [
            A.Mosaic(
                grid_yx=(2, 2),
                target_size=(SIZE, SIZE),
                cell_shape=(cell, cell),
                center_range=(0.25, 0.75),
                fit_mode="cover",
                fill=0,
                fill_mask=255,
                p=1.0,
            )
        ],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels", "ids"], min_visibility=min_visibility),
        seed=seed,
    )


def run_albumentations(transform, samples: list[dict]) -> dict:
    first, others = samples[0], samples[1:]
    meta = [
        {"image": s["image"], "mask": s["mask"], "bboxes": s["bboxes"], "labels": s["labels"], "ids": s["ids"]}
        for s in others
    ]
    return transform(
        image=first["image"],
        mask=first["mask"],
        bboxes=first["bboxes"],
        labels=first["labels"],
        ids=first["ids"],
        mosaic_metadata=meta,
    )


def run_ours(mosaic: Mosaic, samples: list[dict], rng: np.random.Generator) -> dict:
    # The box ids ride along as labels (Mosaic keeps one index for boxes and labels).
    return mosaic([{**{k: s[k] for k in ("image", "mask", "bboxes")}, "labels": s["ids"]} for s in samples], rng)


def cpu_seconds_per_call(fn, repeat: int, warmup: int = 1) -> float:
    """CPU time of this process per call (the machine may be shared; one thread is used)."""
    for _ in range(warmup):
        fn()
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def bench_mosaic(samples: list[dict], repeat: int) -> None:
    rng = np.random.default_rng(0)
    crop_only = albumentations_mosaic(0.0, seed=0)
    resized = albumentations_mosaic(0.0, seed=0, cell=400)
    ours_none = Mosaic(p=1.0, size=(SIZE, SIZE), fit="none", mask_fill=255)
    ours_cover = Mosaic(p=1.0, size=(SIZE, SIZE), fit="cover", mask_fill=255)
    calls = {
        "A.Mosaic cell 640 (crop)": lambda: run_albumentations(crop_only, samples),
        "segdet fit='none' (crop)": lambda: run_ours(ours_none, samples, rng),
        "A.Mosaic cell 400 (resize)": lambda: run_albumentations(resized, samples),
        "segdet fit='cover' (resize)": lambda: run_ours(ours_cover, samples, rng),
    }
    times = dict.fromkeys(calls, 0.0)
    rounds = 5  # interleaved, so that a change in machine load hits every row alike
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name] += cpu_seconds_per_call(fn, max(1, repeat // rounds)) / rounds
    base = times["A.Mosaic cell 640 (crop)"]
    print(
        f"\n2x2 Mosaic of 4 x {SIZE}x{SIZE} uint8 + {CLASSES}-class mask + {BOXES} boxes -> {SIZE}x{SIZE} "
        f"({repeat} calls each, CPU ms of 1 thread)"
    )
    print(f"{'':30s} {'ms/sample':>10s} {'vs A.Mosaic cell 640':>21s} {'vs A.Mosaic cell 400':>21s}")
    for name, t in times.items():
        print(f"{name:30s} {t * 1e3:10.2f} {t / base:20.2f}x {t / times['A.Mosaic cell 400 (resize)']:20.2f}x")


def visible_fractions(out: dict, samples: list[dict]) -> np.ndarray:
    source = {int(i): b for s in samples for i, b in zip(s["ids"], s["bboxes"])}
    ids = out["ids"] if "ids" in out else out["labels"]
    fractions = []
    for box, i in zip(np.asarray(out["bboxes"]).reshape(-1, 4), ids):
        ref = source[int(i)]
        area = (ref[2] - ref[0]) * (ref[3] - ref[1])
        fractions.append((box[2] - box[0]) * (box[3] - box[1]) / area)
    return np.asarray(fractions)


def check_min_visibility(samples: list[dict], repeat: int) -> None:
    ours = Mosaic(p=1.0, size=(SIZE, SIZE), fit="none", min_visibility=0.9)
    rng = np.random.default_rng(1)
    counts = {}
    for name in ("A.Mosaic cell 640 (crop)", "segdet fit='none' (crop)"):
        kept = below = 0
        for r in range(repeat):
            if name.startswith("A."):
                out = run_albumentations(albumentations_mosaic(0.9, seed=r), samples)
            else:
                out = run_ours(ours, samples, rng)
            f = visible_fractions(out, samples)
            kept += len(f)
            below += int((f < 0.9 - 1e-6).sum())
        counts[name] = (kept, below)
    print(f"\nmin_visibility=0.9, {repeat} mosaics: boxes kept / kept with less than 90% of the box visible")
    for name, (kept, below) in counts.items():
        print(f"{name:30s} {kept:6d} kept {below:6d} below 0.9")


def box_masks(boxes: np.ndarray) -> np.ndarray:
    """(N, SIZE, SIZE) uint8 instance masks filling each box's pixels."""
    masks = np.zeros((len(boxes), SIZE, SIZE), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[k, y0:y1, x0:x1] = 1
    return masks


def bench_mixers(samples: list[dict], repeat: int) -> None:
    """Per-sample CPU time of every registered mixer, interleaved rounds, plus the saliency map alone."""
    rng = np.random.default_rng(2)
    inputs = [{k: s[k] for k in ("image", "mask", "bboxes", "labels")} for s in samples]
    calls = {}
    with_masks = [{**s, "masks": box_masks(s["bboxes"])} for s in inputs]  # CopyPaste pastes by instance mask
    for name, cls in MIXERS.items():
        options = {"p": 1.0}
        if "num_classes" in inspect.signature(cls).parameters:
            options.update(num_classes=CLASSES, ignore_index=255)
        mixer = cls(**options)
        sources = (with_masks if name == "CopyPaste" else inputs)[: int(mixer.num_sources)]
        row = f"{name} (+ instance masks)" if name == "CopyPaste" else name
        calls[row] = lambda mixer=mixer, sources=sources: mixer(sources, rng)
    calls["saliency map of one image"] = lambda: spectral_residual_saliency(inputs[1]["image"])
    times = dict.fromkeys(calls, 0.0)
    rounds = 5
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name] += cpu_seconds_per_call(fn, max(1, repeat // rounds)) / rounds
    print(
        f"\nmixers of augment.MIXERS on {SIZE}x{SIZE} uint8 + {CLASSES}-class mask + {BOXES} boxes per source, "
        f"default options, p=1 ({repeat} calls each, CPU ms of 1 thread)"
    )
    for name, t in sorted(times.items(), key=lambda kv: kv[1]):
        print(f"{name:30s} {t * 1e3:10.2f} ms/sample")


def bench_batch(device: torch.device, repeat: int, size: int = 512) -> dict:
    g = torch.Generator(device=device).manual_seed(0)
    images = torch.rand(16, 3, size, size, generator=g, device=device)
    masks = torch.randint(0, CLASSES, (16, size, size), generator=g, device=device)
    masks[:, :8] = 255
    calls = {
        "batch CutMix (hard mask)": lambda: batch_cutmix(images, masks, generator=g),
        f"batch MixUp (-> soft {CLASSES}-class)": lambda: batch_mixup(images, masks, generator=g, num_classes=CLASSES),
    }
    out = {}
    for name, fn in calls.items():
        if device.type != "cuda":
            out[name] = cpu_seconds_per_call(fn, repeat, warmup=2)
            continue
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        torch.cuda.synchronize()
        out[name] = (time.perf_counter() - start) / repeat
    return out


def unet_step_seconds(
    device: torch.device, repeat: int, shape: tuple[int, int, int] = (16, 512, 512)
) -> dict[str, float] | None:
    """U-Net ResNet-34 bf16 training step on the same batch, alone and with each batch mixer in
    front of it (the mixer's kernels queue behind the previous step's, as in training)."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return None
    model = smp.Unet("resnet34", encoder_weights=None, classes=CLASSES).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator(device=device).manual_seed(0)
    b, h, w = shape
    x = torch.rand(b, 3, h, w, device=device)
    y = torch.randint(0, CLASSES, (b, h, w), device=device)

    def step(images, target):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(images), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def pair(out):
        return out.images, out.target

    variants = {
        "U-Net ResNet-34 train step (bf16)": lambda: step(x, y),
        "  same step after batch CutMix": lambda: step(*pair(batch_cutmix(x, y, generator=g))),
        "  same step after batch MixUp": lambda: step(*pair(batch_mixup(x, y, generator=g, num_classes=CLASSES))),
    }
    times = dict.fromkeys(variants, 0.0)
    for _ in range(3):
        for fn in variants.values():
            fn()
    rounds = 3  # interleaved, so that clock changes hit every row alike
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(rounds):
        for name, fn in variants.items():
            sync()
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            sync()
            times[name] += (time.perf_counter() - start) / repeat / rounds
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=100, help="Mosaic calls per library")
    parser.add_argument("--check-repeat", type=int, default=100, help="mosaics for the min_visibility count")
    parser.add_argument("--batch-repeat", type=int, default=5, help="calls per batch mixer")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    parser.add_argument("--skip-mosaic", action="store_true", help="batch mixers only (no albumentations needed)")
    parser.add_argument("--only-mixers", action="store_true", help="the per-sample mixer rows only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}")
    if args.only_mixers:
        bench_mixers(make_samples(np.random.default_rng(0)), args.repeat)
        return
    if not args.skip_mosaic:
        import albumentations as A

        print(f"albumentations {A.__version__}")
        samples = make_samples(np.random.default_rng(0))
        bench_mosaic(samples, args.repeat)
        check_min_visibility(samples, args.check_repeat)
        bench_mixers(samples, args.repeat)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print("\nbatch mixers on (16, 3, 512, 512) float32 + (16, 512, 512) masks, per call")
    for device in devices:
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
        for mixer, t in bench_batch(device, args.batch_repeat).items():
            print(f"{name:30s} {mixer:34s} {t * 1e3:9.2f} ms")
        if device.type == "cpu":
            # At 8x8 the arithmetic is nothing: what is left is the host cost of dispatching the
            # ops, which on a GPU bounds a call from below when the device is idle.
            for mixer, t in bench_batch(device, 500, size=8).items():
                print(f"{'CPU, (16, 3, 8, 8): host cost':30s} {mixer:34s} {t * 1e6:9.0f} us")
        if device.type == "cuda":
            steps = unet_step_seconds(device, max(3, args.batch_repeat))
            if steps is not None:
                first, base = next(iter(steps.items()))
                for row, t in steps.items():
                    extra = "" if row == first else f"  ({(t - base) / base:+.1%} of the step)"
                    print(f"{name:30s} {row:34s} {t * 1e3:9.2f} ms{extra}")


if __name__ == "__main__":
    main()
