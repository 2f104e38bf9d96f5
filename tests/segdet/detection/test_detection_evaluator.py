"""DetectionEvaluator against pycocotools' COCOeval run directly on the same data."""

import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segdet.detection import STAT_NAMES, DetectionEvaluator

CLASSES = ["cat", "dog", "bird"]
CAT_IDS = [3, 7, 11]  # non-contiguous, as in real COCO files


def _random_scene(rng, n_images=12):
    """Ground truth and noisy detections with small, medium and large boxes, some empty images."""
    scenes = []
    for i in range(n_images):
        h, w = int(rng.integers(120, 300)), int(rng.integers(120, 300))
        n = 0 if i % 5 == 4 else int(rng.integers(1, 6))
        sizes = rng.choice([12.0, 50.0, 110.0], size=n)
        x0 = rng.uniform(0, w - sizes)
        y0 = rng.uniform(0, h - sizes)
        gt = np.stack([x0, y0, x0 + sizes, y0 + sizes * rng.uniform(0.6, 1.0, n)], 1) if n else np.zeros((0, 4))
        gl = rng.integers(0, 3, n)
        # detections: jittered copies (some wrong class), plus false positives
        keep = rng.random(n) < 0.8
        det = gt[keep] + rng.normal(0, 3, (int(keep.sum()), 4))
        dl = np.where(rng.random(int(keep.sum())) < 0.85, gl[keep], rng.integers(0, 3, int(keep.sum())))
        fp = int(rng.integers(0, 4))
        fx, fy = rng.uniform(0, w - 30, fp), rng.uniform(0, h - 30, fp)
        det = np.concatenate([det, np.stack([fx, fy, fx + 30, fy + 30], 1)]) if fp else det
        dl = np.concatenate([dl, rng.integers(0, 3, fp)])
        scores = rng.uniform(0.05, 1.0, len(det))
        scenes.append((h, w, gt.astype(np.float32), gl, det.astype(np.float32), dl, scores.astype(np.float32)))
    return scenes


def _direct(scenes, cat_ids=None):
    """The same scenes written as COCO dicts by hand and scored with pycocotools directly."""
    images, anns, dets = [], [], []
    for i, (h, w, gt, gl, det, dl, sc) in enumerate(scenes):
        images.append({"id": i, "height": h, "width": w})
        for b, c in zip(gt, gl):
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": CAT_IDS[c],
                    "bbox": [float(b[0]), float(b[1]), bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        for b, c, s in zip(det, dl, sc):
            dets.append(
                {
                    "image_id": i,
                    "category_id": CAT_IDS[c],
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "score": float(s),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api = COCO()
        gt_api.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": c, "name": n} for c, n in zip(CAT_IDS, CLASSES)],
        }
        gt_api.createIndex()
        dt_api = gt_api.loadRes(dets)
        ev = COCOeval(gt_api, dt_api, "bbox")
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _ours(scenes, backend="pycocotools"):
    ev = DetectionEvaluator(CLASSES, CAT_IDS, backend=backend)
    for i, (h, w, gt, gl, det, dl, sc) in enumerate(scenes):
        ev.add(
            i,
            (h, w),
            torch.from_numpy(gt),
            torch.from_numpy(gl),
            torch.from_numpy(det),
            torch.from_numpy(sc),
            torch.from_numpy(dl),
        )
    return ev


def test_stats_equal_pycocotools_direct():
    scenes = _random_scene(np.random.default_rng(0))
    ours = _ours(scenes).compute()
    direct = _direct(scenes)
    assert list(ours) == list(STAT_NAMES)
    np.testing.assert_allclose([ours[k] for k in STAT_NAMES], direct, rtol=0, atol=1e-12)
    assert 0.2 < ours["map50"] < 1.0  # a non-trivial case: neither perfect nor empty
    assert all(ours[k] > -1 for k in ("map_small", "map_medium", "map_large"))


def test_per_class_ap_equals_single_category_cocoeval(tmp_path):
    scenes = _random_scene(np.random.default_rng(1))
    ev = _ours(scenes)
    ev.report(tmp_path)
    per_class = json.loads((tmp_path / "coco_eval.json").read_text())["per_class"]
    for name, cat in zip(CLASSES, CAT_IDS):
        direct = _direct(scenes, cat_ids=[cat])
        assert per_class[name]["ap"] == pytest.approx(direct[0], abs=1e-12)
        assert per_class[name]["ap50"] == pytest.approx(direct[1], abs=1e-12)


def test_update_runs_the_model_and_maps_category_ids(tmp_path):
    class Fixed(torch.nn.Module):  # predicts every ground-truth box exactly, label 2 -> category 11
        def forward(self, images):
            return [
                {
                    "boxes": torch.tensor([[4.0, 4.0, 20.0, 24.0]]),
                    "scores": torch.tensor([0.9]),
                    "labels": torch.tensor([2]),
                }
                for _ in images
            ]

    batch = {
        "image": [torch.zeros(3, 32, 40), torch.zeros(3, 30, 30)],
        "targets": [{"boxes": torch.tensor([[4.0, 4.0, 20.0, 24.0]]), "labels": torch.tensor([2])}] * 2,
        "image_id": [101, 202],
    }
    ev = DetectionEvaluator(CLASSES, CAT_IDS)
    ev.update(Fixed(), batch)
    assert ev.compute()["map"] == pytest.approx(1.0)
    table = ev.report(tmp_path)
    dets = json.loads((tmp_path / "detections.json").read_text())
    assert {d["image_id"] for d in dets} == {101, 202}
    assert {d["category_id"] for d in dets} == {11}
    assert dets[0]["bbox"] == pytest.approx([4.0, 4.0, 16.0, 20.0])
    assert "bird" in table and "cat" in table


def test_no_detections_scores_zero_and_empty_ranges_minus_one():
    ev = DetectionEvaluator(["a"])
    ev.add(
        None,
        (64, 64),
        torch.tensor([[0.0, 0.0, 10.0, 10.0]]),
        torch.tensor([0]),
        torch.zeros(0, 4),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
    )
    out = ev.compute()
    assert out["map"] == 0.0 and out["map50"] == 0.0 and out["map_small"] == 0.0
    assert out["map_medium"] == -1.0 and out["map_large"] == -1.0  # no ground truth of that size


def test_images_without_boxes_count_as_false_positives():
    # the same detection on an image with no ground truth halves the precision
    ev = DetectionEvaluator(["a"])
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    ev.add(0, (64, 64), box, torch.tensor([0]), box, torch.tensor([0.5]), torch.tensor([0]))
    ev.add(
        1, (64, 64), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), box, torch.tensor([0.9]), torch.tensor([0])
    )
    assert ev.compute()["map50"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.skipif(importlib.util.find_spec("faster_coco_eval") is None, reason="faster-coco-eval not installed")
def test_faster_coco_eval_gives_the_same_twelve_numbers():
    scenes = _random_scene(np.random.default_rng(2), n_images=20)
    a = _ours(scenes, "pycocotools").compute()
    b = _ours(scenes, "faster-coco-eval").compute()
    np.testing.assert_allclose([b[k] for k in STAT_NAMES], [a[k] for k in STAT_NAMES], rtol=0, atol=1e-12)


def test_sync_merges_ranks_and_counts_repeated_images_once(monkeypatch):
    import torch.distributed as dist

    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    mine, other = DetectionEvaluator(["a"]), DetectionEvaluator(["a"])
    mine.add(0, (32, 32), box, torch.tensor([0]), box, torch.tensor([0.9]), torch.tensor([0]))
    other.add(1, (32, 32), box, torch.tensor([0]), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    # rank 1 saw image 0 again (sampler padding) with a different prediction: rank 0's must win
    other.add(0, (32, 32), box, torch.tensor([0]), torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))

    def gather(parts, obj):
        parts[0], parts[1] = obj, (other._images, other._gt, other._dets)

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", gather)
    mine.sync()
    assert sorted(mine.ground_truth()["images"][i]["id"] for i in range(2)) == [0, 1]
    assert len(mine.ground_truth()["annotations"]) == 2 and len(mine.detections()) == 1
    assert mine.compute()["map50"] == pytest.approx(0.5, abs=0.01)  # one of two boxes found


def test_bad_input_messages():
    with pytest.raises(ValueError, match="backend 'cocoapi'"):
        DetectionEvaluator(["a"], backend="cocoapi")
    with pytest.raises(ValueError, match="2 category ids for 1 class"):
        DetectionEvaluator(["a"], cat_ids=[1, 2])
    with pytest.raises(ValueError, match="validation set is empty"):
        DetectionEvaluator(["a"]).compute()
    with pytest.raises(ValueError, match="label 3 is outside the 1 classes"):
        DetectionEvaluator(["a"]).add(
            0,
            (8, 8),
            torch.zeros(1, 4),
            torch.tensor([3]),
            torch.zeros(0, 4),
            torch.zeros(0),
            torch.zeros(0, dtype=torch.long),
        )


def test_file_ground_truth_keeps_crowd_and_areas_and_undoes_a_resize():
    # the official evaluation: crowd regions ignore the detections inside them, ``area`` comes
    # from the file (a mask area here, which moves the box between size ranges)
    gt = {
        "images": [{"id": 40, "height": 200, "width": 300}, {"id": 41, "height": 100, "width": 100}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 40, "category_id": 7, "bbox": [10, 10, 60, 60], "area": 900.0, "iscrowd": 0},
            {"id": 2, "image_id": 40, "category_id": 3, "bbox": [150, 20, 100, 100], "area": 10000.0, "iscrowd": 0},
            {"id": 3, "image_id": 40, "category_id": 7, "bbox": [100, 120, 80, 60], "area": 4800.0, "iscrowd": 1},
            {"id": 4, "image_id": 41, "category_id": 3, "bbox": [5, 5, 40, 40], "area": 1600.0, "iscrowd": 0},
        ],
    }
    # detections in file pixels: a hit, a near hit, one inside the crowd region, a false positive
    file_dets = [
        {"image_id": 40, "category_id": 7, "bbox": [12.0, 10.0, 58.0, 62.0], "score": 0.9},
        {"image_id": 40, "category_id": 3, "bbox": [160.0, 30.0, 90.0, 80.0], "score": 0.8},
        {"image_id": 40, "category_id": 7, "bbox": [110.0, 130.0, 40.0, 40.0], "score": 0.95},
        {"image_id": 41, "category_id": 3, "bbox": [60.0, 60.0, 30.0, 30.0], "score": 0.7},
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        api = COCO()
        api.dataset = json.loads(json.dumps(gt))
        api.createIndex()
        ev = COCOeval(api, api.loadRes(json.loads(json.dumps(file_dets))), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()

    ours = DetectionEvaluator(["cat", "dog"], cat_ids=[3, 7], gt=gt)
    label = {3: 0, 7: 1}
    for image_id, (h, w), scale in ((40, (100, 150), 0.5), (41, (100, 100), 1.0)):  # image 40 was resized
        dets = [d for d in file_dets if d["image_id"] == image_id]
        boxes = torch.tensor([[x, y, x + bw, y + bh] for x, y, bw, bh in (d["bbox"] for d in dets)]) * scale
        ours.add(
            image_id,
            (h, w),
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.long),
            boxes,
            torch.tensor([d["score"] for d in dets]),
            torch.tensor([label[d["category_id"]] for d in dets]),
        )
    out = ours.compute()
    np.testing.assert_allclose([out[k] for k in STAT_NAMES], ev.stats, rtol=0, atol=1e-6)
    assert out["map_small"] > -1 and out["map_medium"] > -1  # the file's areas, not the box areas
    with pytest.raises(ValueError, match="image_id 99 is not in the COCO annotation file"):
        ours.add(
            99,
            (8, 8),
            torch.zeros(0, 4),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, 4),
            torch.zeros(0),
            torch.zeros(0, dtype=torch.long),
        )
