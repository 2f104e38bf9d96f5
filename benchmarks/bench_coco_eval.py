"""COCO box and mask evaluation time: pycocotools against faster-coco-eval on the same detections.

Builds a synthetic ground truth (``--images`` images, ``--classes`` categories, boxes of every
COCO size range) and noisy detections (jittered true boxes with some label errors plus false
positives, up to 100 per image), scores them with segdet's evaluation path on both backends,
checks that all twelve COCOeval summary numbers agree and prints the time ratio. The ``segm``
rows give every object an instance mask, the ellipse inside its box: ground truth as a polygon
(as COCO files hold most objects), detections as compressed RLE (as Mask R-CNN results are
written), scored with ``iouType="segm"``.

    python benchmarks/bench_coco_eval.py                 # 2000 images, 20 classes, bbox and segm
    python benchmarks/bench_coco_eval.py --images 5000 --classes 80 --iou-types bbox
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from segdet.detection._cocoapi import IOU_TYPES, STAT_NAMES, evaluate

#: corners of the polygon that stands for the ellipse inside a box
_POLYGON_CORNERS = 24


def _ellipse(box: list[float]) -> list[float]:
    """The ellipse inscribed in an [x, y, w, h] box as a flat COCO polygon."""
    x, y, w, h = box
    t = np.linspace(0, 2 * np.pi, _POLYGON_CORNERS, endpoint=False)
    return np.stack([x + w / 2 * (1 + np.cos(t)), y + h / 2 * (1 + np.sin(t))], 1).ravel().tolist()


def add_masks(gt: dict, dets: list[dict]) -> tuple[dict, list[dict]]:
    """Copies with a ``segmentation`` per object: polygons for the ground truth, RLE for the detections.

    The ground truth's ``area`` becomes the mask area, as in COCO files.
    """
    from pycocotools import mask as mask_utils

    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    anns = []
    for a in gt["annotations"]:
        h, w = sizes[a["image_id"]]
        poly = _ellipse(a["bbox"])
        area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([poly], h, w))))
        anns.append({**a, "segmentation": [poly], "area": area})
    out = []
    for d in dets:
        h, w = sizes[d["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects([_ellipse(d["bbox"])], h, w))
        out.append({**d, "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")}})
    return {**gt, "annotations": anns}, out


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
    ap.add_argument("--iou-types", default="bbox,segm", help=f"comma-separated, of {', '.join(IOU_TYPES)}")
    args = ap.parse_args()
    iou_types = [t for t in args.iou_types.split(",") if t]
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown:
        ap.error(f"--iou-types {','.join(unknown)}: choose from {', '.join(IOU_TYPES)}")
    gt, dets = make_data(args.images, args.classes)
    print(f"{args.images} images, {len(gt['annotations'])} boxes, {len(dets)} detections, {args.classes} classes")
    backends = ["pycocotools"]
    if importlib.util.find_spec("faster_coco_eval"):
        backends.append("faster-coco-eval")
    else:
        print("faster-coco-eval is not installed (pip install 'segdet[fast-coco]'): timing pycocotools only")
    for iou_type in iou_types:
        data = (gt, dets) if iou_type == "bbox" else add_masks(gt, dets)
        times, stats = {}, {}
        for backend in backends:
            best = float("inf")
            for _ in range(args.repeats):
                begin = time.perf_counter()
                stats[backend] = evaluate(*data, backend=backend, iou_type=iou_type)[0]
                best = min(best, time.perf_counter() - begin)
            times[backend] = best
            print(
                f"{iou_type:4s} {backend:17s} {best:7.2f} s   mAP {stats[backend][0]:.4f}  AP50 {stats[backend][1]:.4f}"
            )
        if len(backends) == 2:
            a, b = stats["pycocotools"], stats["faster-coco-eval"]
            diff = float(np.abs(a - b).max())
            print(
                f"{iou_type:4s} all 12 stats identical: {bool(np.array_equal(a, b))}"
                + ("" if diff == 0 else f"  (max diff {diff:.1e}: {'rounding' if diff < 1e-12 else 'DIFFERENT'})")
            )
            if diff >= 1e-12:
                for name, x, y in zip(STAT_NAMES, a, b):
                    print(f"  {name:11s} {x:.6f} {y:.6f}")
            speed = times["pycocotools"] / times["faster-coco-eval"]
            print(f"{iou_type:4s} speed-up faster-coco-eval vs pycocotools: {speed:.2f}x")


if __name__ == "__main__":
    main()
