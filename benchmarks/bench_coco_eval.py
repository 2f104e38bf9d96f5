"""COCO box evaluation time: pycocotools against faster-coco-eval on the same detections.

Builds a synthetic ground truth (``--images`` images, ``--classes`` categories, boxes of every
COCO size range) and noisy detections (jittered true boxes with some label errors plus false
positives, up to 100 per image), scores them with segdet's evaluation path on both backends,
checks that all twelve COCOeval summary numbers are identical and prints the time ratio.

    python benchmarks/bench_coco_eval.py                 # 2000 images, 20 classes
    python benchmarks/bench_coco_eval.py --images 5000 --classes 80
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from segdet.detection._cocoapi import STAT_NAMES, evaluate


def make_data(n_images: int, n_classes: int, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(n_images):
        h, w = int(rng.integers(300, 640)), int(rng.integers(300, 640))
        images.append({"id": i, "height": h, "width": w, "file_name": f"{i}.jpg"})
        n = int(rng.integers(0, 15))
        side = rng.choice([16.0, 60.0, 150.0], n) * rng.uniform(0.7, 1.3, n)
        x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
        cls = rng.integers(1, n_classes + 1, n)
        for j in range(n):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(cls[j]),
                    "bbox": [float(x[j]), float(y[j]), float(side[j]), float(side[j])],
                    "area": float(side[j] ** 2),
                    "iscrowd": 0,
                }
            )
            if rng.random() < 0.85:
                jit = rng.normal(0, 0.08 * side[j], 4)
                c = int(cls[j]) if rng.random() < 0.9 else int(rng.integers(1, n_classes + 1))
                dets.append(
                    {
                        "image_id": i,
                        "category_id": c,
                        "score": float(rng.uniform(0.3, 1.0)),
                        "bbox": [
                            float(x[j] + jit[0]),
                            float(y[j] + jit[1]),
                            float(max(1.0, side[j] + jit[2])),
                            float(max(1.0, side[j] + jit[3])),
                        ],
                    }
                )
        for _ in range(int(rng.integers(0, 20))):
            s = float(rng.uniform(10, 200))
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(rng.integers(1, n_classes + 1)),
                    "score": float(rng.uniform(0.05, 0.6)),
                    "bbox": [float(rng.uniform(0, w - 10)), float(rng.uniform(0, h - 10)), s, s],
                }
            )
    cats = [{"id": c, "name": f"class{c}"} for c in range(1, n_classes + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    gt, dets = make_data(args.images, args.classes)
    print(f"{args.images} images, {len(gt['annotations'])} boxes, {len(dets)} detections, {args.classes} classes")
    backends = ["pycocotools"]
    if importlib.util.find_spec("faster_coco_eval"):
        backends.append("faster-coco-eval")
    else:
        print("faster-coco-eval is not installed (pip install 'segdet[fast-coco]'): timing pycocotools only")
    times, stats = {}, {}
    for backend in backends:
        best = float("inf")
        for _ in range(args.repeats):
            begin = time.perf_counter()
            stats[backend] = evaluate(gt, dets, backend=backend)[0]
            best = min(best, time.perf_counter() - begin)
        times[backend] = best
        print(f"{backend:17s} {best:7.2f} s   mAP {stats[backend][0]:.4f}  AP50 {stats[backend][1]:.4f}")
    if len(backends) == 2:
        a, b = stats["pycocotools"], stats["faster-coco-eval"]
        same = bool(np.array_equal(a, b))
        print(f"all 12 stats identical: {same}" + ("" if same else f"  max diff {np.abs(a - b).max():.2e}"))
        if not same:
            for name, x, y in zip(STAT_NAMES, a, b):
                print(f"  {name:11s} {x:.6f} {y:.6f}")
        print(f"speed-up faster-coco-eval vs pycocotools: {times['pycocotools'] / times['faster-coco-eval']:.2f}x")


if __name__ == "__main__":
    main()
