"""Mask mAP: RLE against a naive encoder, the evaluator against pycocotools' COCOeval(segm) run directly."""

import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segdet.detection import MASK_STAT_NAMES, STAT_NAMES, DetectionEvaluator
from segdet.detection.masks_rle import binary_masks, decode_rle, encode_rle, rle_area

CLASSES = ["cell", "debris"]
CAT_IDS = [4, 9]


def _naive_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE by hand: run lengths over the column-major pixels, starting with a 0-run."""
    flat = [int(v) for v in np.asarray(mask, bool).flatten(order="F")]
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return counts


def _naive_bilinear(p: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (``align_corners=False``) in float64, loop by loop."""
    ih, iw = p.shape
    out = np.zeros((h, w))
    for y in range(h):
        sy = max((y + 0.5) * ih / h - 0.5, 0.0)
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, ih - 1), sy - y0
        for x in range(w):
            sx = max((x + 0.5) * iw / w - 0.5, 0.0)
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, iw - 1), sx - x0
            top = p[y0, x0] * (1 - fx) + p[y0, x1] * fx
            bottom = p[y1, x0] * (1 - fx) + p[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bottom * fy
    return out


def _blob(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)


def _scenes(rng, n_images=10):
    """Images with elliptic instances of three sizes, jittered detections (some wrong class), false positives."""
    scenes = []
    for i in range(n_images):
        h, w = int(rng.integers(150, 220)), int(rng.integers(150, 220))
        n = 0 if i % 4 == 3 else int(rng.integers(1, 5))
        gt, gl, det, dl = [], [], [], []
        for _ in range(n):
            r = float(rng.choice([4.0, 22.0, 70.0])) * rng.uniform(0.9, 1.1)
            cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
            gt.append(_blob(h, w, cy, cx, r, r * rng.uniform(0.6, 1.0)))
            gl.append(int(rng.integers(0, 2)))
            if rng.random() < 0.8:
                det.append(_blob(h, w, cy + rng.normal(0, r / 5), cx + rng.normal(0, r / 5), r, r))
                dl.append(gl[-1] if rng.random() < 0.85 else 1 - gl[-1])
        for _ in range(int(rng.integers(0, 3))):
            r = float(rng.uniform(3, 15))
            det.append(_blob(h, w, rng.uniform(r, h - r), rng.uniform(r, w - r), r, r))
            dl.append(int(rng.integers(0, 2)))
        gt_m = np.stack(gt) if gt else np.zeros((0, h, w), np.uint8)
        det_m = np.stack(det) if det else np.zeros((0, h, w), np.uint8)
        scores = rng.uniform(0.05, 1.0, len(det_m)).astype(np.float32)
        scenes.append((h, w, gt_m, np.array(gl, np.int64), det_m, np.array(dl, np.int64), scores))
    return scenes


def _box(m):
    ys, xs = np.nonzero(m)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)] if len(xs) else [0.0] * 4


def _boxes(masks):
    return torch.tensor([_box(m) for m in masks], dtype=torch.float32).reshape(-1, 4)


def _probabilities(masks):
    """Mask R-CNN style (M, 1, H, W) probabilities: 0.9 inside, 0.1 outside."""
    return torch.from_numpy(masks.astype(np.float32) * 0.8 + 0.1)[:, None]


def _ours(scenes, backend="pycocotools"):
    ev = DetectionEvaluator(CLASSES, CAT_IDS, backend=backend, masks=True)
    for i, (h, w, gt, gl, det, dl, sc) in enumerate(scenes):
        ev.add(
            i,
            (h, w),
            _boxes(gt),
            torch.from_numpy(gl),
            _boxes(det),
            torch.from_numpy(sc),
            torch.from_numpy(dl),
            gt_masks=torch.from_numpy(gt),
            masks=_probabilities(det),
        )
    return ev


def _cocoeval(gt: dict, dets: list[dict], iou_type: str = "segm", cat_ids=None) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = json.loads(json.dumps(gt))
        api.createIndex()
        ev = COCOeval(api, api.loadRes(json.loads(json.dumps(dets))), iou_type)
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats)


def _independent_coco(scenes):
    """The scenes as a COCO dict and segm results written by hand (uncompressed RLE by the naive encoder)."""
    images, anns, dets = [], [], []
    for i, (h, w, gt, gl, det, dl, sc) in enumerate(scenes):
        images.append({"id": i, "height": h, "width": w})
        for m, c in zip(gt, gl):
            x0, y0, x1, y1 = _box(m)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": CAT_IDS[c],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(m.sum()),
                    "iscrowd": 0,
                    "segmentation": {"size": [h, w], "counts": _naive_counts(m)},
                }
            )
        for m, c, s in zip(det, dl, sc):
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": _naive_counts(m)}, h, w)
            rle["counts"] = rle["counts"].decode("ascii")
            dets.append({"image_id": i, "category_id": CAT_IDS[c], "segmentation": rle, "score": float(s)})
    cats = [{"id": c, "name": n} for c, n in zip(CAT_IDS, CLASSES)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def test_rle_round_trip_equals_a_naive_column_major_encoding():
    rng = np.random.default_rng(0)
    for shape in [(3, 7, 5), (2, 1, 9), (4, 16, 16), (1, 33, 20)]:
        masks = (rng.random(shape) < 0.4).astype(np.uint8)
        masks[0] = 0  # an empty mask
        if len(masks) > 1:
            masks[1] = 1  # a full one
        rles = encode_rle(masks)
        h, w = shape[1:]
        for m, rle in zip(masks, rles):
            reference = mask_utils.frPyObjects({"size": [h, w], "counts": _naive_counts(m)}, h, w)
            assert rle == {"size": [h, w], "counts": reference["counts"].decode("ascii")}
        np.testing.assert_array_equal(decode_rle(rles), masks)
        assert rle_area(rles) == [float(m.sum()) for m in masks]
        json.dumps(rles)  # json-ready
    assert encode_rle(np.zeros((0, 4, 5), np.uint8)) == [] and decode_rle([], (4, 5)).shape == (0, 4, 5)
    with pytest.raises(ValueError, match=r"instance masks must be \(N, H, W\), got shape \(4, 5\)"):
        encode_rle(np.zeros((4, 5)))


def test_binary_masks_resize_like_a_naive_bilinear_then_threshold():
    rng = np.random.default_rng(1)
    probs = rng.random((3, 1, 9, 13)).astype(np.float32)
    np.testing.assert_array_equal(binary_masks(torch.from_numpy(probs)), probs[:, 0] > 0.5)
    for h, w in [(18, 26), (31, 7), (9, 13), (4, 5)]:
        ours = binary_masks(torch.from_numpy(probs), (h, w))
        assert ours.shape == (3, h, w) and ours.dtype == np.uint8
        for k in range(3):
            ref = _naive_bilinear(probs[k, 0].astype(np.float64), h, w)
            clear = np.abs(ref - 0.5) > 1e-5  # float32 against float64 only at the threshold itself
            np.testing.assert_array_equal(ours[k][clear], (ref > 0.5)[clear])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) or \(N, H, W\), got \(2, 3\)"):
        binary_masks(torch.zeros(2, 3))


def test_in_memory_masks_score_as_pycocotools_on_an_independent_coco_dict():
    scenes = _scenes(np.random.default_rng(2))
    ev = _ours(scenes)
    out = ev.compute()
    assert list(out) == list(STAT_NAMES) + list(MASK_STAT_NAMES)
    gt, dets = _independent_coco(scenes)
    direct = _cocoeval(gt, dets)
    np.testing.assert_allclose([out[k] for k in MASK_STAT_NAMES], direct, rtol=0, atol=1e-12)
    assert 0.2 < out["mask_map50"] < 1.0 and min(out[f"mask_map_{s}"] for s in ("small", "medium", "large")) > -1
    # the box numbers are those of the evaluator without masks
    plain = DetectionEvaluator(CLASSES, CAT_IDS)
    for i, (h, w, g, gl, det, dl, sc) in enumerate(scenes):
        plain.add(i, (h, w), _boxes(g), torch.from_numpy(gl), _boxes(det), torch.from_numpy(sc), torch.from_numpy(dl))
    assert {k: out[k] for k in STAT_NAMES} == plain.compute()
    # per-class mask AP: COCOeval restricted to the category
    per_class = ev._evaluate()["per_class"]
    for name, cat in zip(CLASSES, CAT_IDS):
        one = _cocoeval(gt, dets, cat_ids=[cat])
        assert per_class[name]["mask_ap"] == pytest.approx(one[0], abs=1e-12)
        assert per_class[name]["mask_ap50"] == pytest.approx(one[1], abs=1e-12)


def _file_gt():
    """A COCO file with a polygon, a compressed RLE and a crowd region (uncompressed RLE)."""
    crowd = _blob(100, 120, 70, 90, 18, 22)
    rle = mask_utils.encode(np.asfortranarray(_blob(100, 120, 30, 35, 12, 16)))
    return {
        "images": [{"id": 5, "height": 100, "width": 120}, {"id": 6, "height": 64, "width": 64}],
        "categories": [{"id": 4, "name": "cell"}, {"id": 9, "name": "debris"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 5,
                "category_id": 4,
                "bbox": [19, 18, 32, 24],
                "area": float(mask_utils.area(rle)),
                "iscrowd": 0,
                "segmentation": {"size": [100, 120], "counts": rle["counts"].decode("ascii")},
            },
            {
                "id": 12,
                "image_id": 5,
                "category_id": 9,
                "bbox": [70, 10, 30, 20],
                "area": 450.0,
                "iscrowd": 0,
                "segmentation": [[70, 10, 100, 10, 100, 30, 85, 30, 70, 25]],
            },
            {
                "id": 13,
                "image_id": 5,
                "category_id": 4,
                "bbox": [68, 52, 45, 37],
                "area": float(crowd.sum()),
                "iscrowd": 1,
                "segmentation": {"size": [100, 120], "counts": _naive_counts(crowd)},
            },
            {
                "id": 14,
                "image_id": 6,
                "category_id": 4,
                "bbox": [10, 10, 40, 40],
                "area": 1600.0,
                "iscrowd": 0,
                "segmentation": [[10, 10, 50, 10, 50, 50, 10, 50]],
            },
        ],
    }


def test_written_detections_reproduce_the_mask_numbers_in_pycocotools(tmp_path):
    gt = _file_gt()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    ev = DetectionEvaluator(CLASSES, CAT_IDS, gt=gt, masks=True)
    # image 5 went through a pipeline that halved it: detections come at 50 x 60
    small = np.stack(
        [
            _blob(50, 60, 15, 17.5, 6, 8),  # the RLE cell
            _blob(50, 60, 10, 42, 5, 7),  # the polygon debris, roughly
            _blob(50, 60, 35, 45, 6, 6),  # inside the crowd region: ignored, not a false positive
            _blob(50, 60, 40, 10, 4, 4),  # a false positive
        ]
    )
    ev.add(
        5,
        (50, 60),
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.long),
        _boxes(small),
        torch.tensor([0.9, 0.8, 0.95, 0.85]),
        torch.tensor([0, 1, 0, 1]),
        masks=_probabilities(small),
    )
    full = _blob(64, 64, 30, 30, 19, 20)[None]
    ev.add(
        6,
        (64, 64),
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.long),
        _boxes(full),
        torch.tensor([0.7]),
        torch.tensor([0]),
        masks=_probabilities(full),
    )
    out = ev.compute()
    ev.report(tmp_path)
    dets = json.loads((tmp_path / "detections.json").read_text())
    assert all(d["segmentation"]["size"] == ([100, 120] if d["image_id"] == 5 else [64, 64]) for d in dets)
    file_gt = json.loads((tmp_path / "gt.json").read_text())
    # the documented way: pycocotools on the file, the results' bbox left out (sizes by mask area)
    direct = _cocoeval(file_gt, [{k: v for k, v in d.items() if k != "bbox"} for d in dets])
    np.testing.assert_allclose([out[k] for k in MASK_STAT_NAMES], direct, rtol=0, atol=1e-12)
    assert 0 < out["mask_map50"] < 1 and out["mask_map_small"] > -1 and out["mask_map_medium"] > -1
    # kept bbox: pycocotools sorts detections by box area; the all-sizes numbers do not change
    with_box = _cocoeval(file_gt, dets)
    for k in (0, 1, 2, 6, 7, 8):
        assert with_box[k] == pytest.approx(out[MASK_STAT_NAMES[k]], abs=1e-12)
    # and the box numbers are pycocotools' bbox evaluation on the same file
    np.testing.assert_allclose([out[k] for k in STAT_NAMES], _cocoeval(file_gt, dets, "bbox"), rtol=0, atol=1e-6)
    report = json.loads((tmp_path / "coco_eval.json").read_text())
    assert report["stats"]["mask_map"] == out["mask_map"] and "mask_ap50" in report["per_class"]["cell"]


@pytest.mark.skipif(importlib.util.find_spec("faster_coco_eval") is None, reason="faster-coco-eval not installed")
def test_faster_coco_eval_gives_the_same_twelve_mask_numbers():
    scenes = _scenes(np.random.default_rng(3), n_images=16)
    a = _ours(scenes, "pycocotools").compute()
    b = _ours(scenes, "faster-coco-eval").compute()
    # equal up to the summation order of the mean (one unit in the last place at most)
    np.testing.assert_allclose([b[k] for k in MASK_STAT_NAMES], [a[k] for k in MASK_STAT_NAMES], rtol=0, atol=1e-12)
    file_numbers = []
    for backend in ("pycocotools", "faster-coco-eval"):  # polygons, RLE and a crowd region from a file
        ev = DetectionEvaluator(CLASSES, CAT_IDS, gt=_file_gt(), masks=True, backend=backend)
        m = np.stack([_blob(100, 120, 30, 35, 12, 15), _blob(100, 120, 70, 88, 10, 10), _blob(100, 120, 15, 85, 8, 12)])
        ev.add(
            5,
            (100, 120),
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.long),
            _boxes(m),
            torch.tensor([0.8, 0.6, 0.7]),
            torch.tensor([0, 0, 1]),
            masks=_probabilities(m),
        )
        file_numbers.append([ev.compute()[k] for k in MASK_STAT_NAMES])
    np.testing.assert_allclose(file_numbers[1], file_numbers[0], rtol=0, atol=1e-12)
    assert file_numbers[0][1] > 0


def test_the_table_shows_box_and_mask_ap(tmp_path):
    table = _ours(_scenes(np.random.default_rng(4), n_images=4)).report(tmp_path)
    assert "COCO mask mAP" in table and "mask AP" in table and "mask AP50" in table
    header = next(line for line in table.splitlines() if line.startswith("class"))
    assert header.split() == ["class", "AP", "AP50", "mask", "AP", "mask", "AP50", "boxes"]


def test_mask_input_errors_name_the_image_and_the_fix():
    ev = DetectionEvaluator(["a"], masks=True)
    box = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    args = (3, (8, 8), box, torch.tensor([0]), box, torch.tensor([0.9]), torch.tensor([0]))
    with pytest.raises(ValueError, match="image 3: .* detection boxes come without masks"):
        ev.add(*args, gt_masks=torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match="image 3: .* ground-truth boxes come without masks; a mask head needs data"):
        ev.add(*args, masks=torch.ones(1, 1, 8, 8))
    with pytest.raises(
        ValueError, match=r"ground-truth masks of shape \(2, 8, 8\) for 1 boxes .* expected \(1, 8, 8\)"
    ):
        ev.add(*args, gt_masks=torch.ones(2, 8, 8), masks=torch.ones(1, 1, 8, 8))
    gt = _file_gt()
    del gt["annotations"][1]["segmentation"]
    with pytest.raises(ValueError, match="annotation id 12 of image 5 .* has no 'segmentation'"):
        DetectionEvaluator(CLASSES, CAT_IDS, gt=gt, masks=True)
    DetectionEvaluator(CLASSES, CAT_IDS, gt=gt)  # box scoring needs none
