"""Mask R-CNN end to end: mask metrics in results.csv and ``segdet eval``, instance masks out of ``segdet predict``."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from segdet.config import validate_config
from segdet.data import SyntheticShapes
from segdet.detection import MASK_STAT_NAMES, draw_detections, instance_ids, predict_images
from segdet.detection.masks_rle import decode_rle
from segdet.engine import evaluate, predict, train
from segdet.palette import box_colour
from segdet.task import build_task

MASK_MODEL = {
    "arch": "maskrcnn_mobilenet_v3_large_p3_fpn",
    "min_size": 64,
    "max_size": 64,
    "score_thresh": 0.0,  # random init: keep some detections to score
    "detections_per_img": 10,
    "detector_args": {  # few proposals and sampled regions: a fast test
        "rpn_pre_nms_top_n_train": 100,
        "rpn_post_nms_top_n_train": 50,
        "rpn_pre_nms_top_n_test": 100,
        "rpn_post_nms_top_n_test": 50,
        "box_batch_size_per_image": 32,
    },
}


def _cfg(tmp_path, **sections):
    raw = {
        "task": "detection",
        "output_dir": str(tmp_path / "run"),
        "data": {
            "kind": "synthetic",
            "batch_size": 2,
            "num_workers": 0,
            "synthetic": {"train_size": 2, "val_size": 2, "height": 40, "width": 48},
        },
        "model": MASK_MODEL,
        "train": {"epochs": 1, "metric": "mask_map50", "progress": False},
    }
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return validate_config(raw)


def _naive_ids(masks, scores):
    """Per pixel, by hand: 1 + the score rank of the best-scoring instance covering it, else 0."""
    rank = {int(i): r + 1 for r, i in enumerate(sorted(range(len(scores)), key=lambda i: (-scores[i], i)))}
    out = np.zeros(masks.shape[1:], np.int64)
    for y in range(masks.shape[1]):
        for x in range(masks.shape[2]):
            covering = [i for i in range(len(masks)) if masks[i, y, x]]
            if covering:
                out[y, x] = min(rank[i] for i in covering)
    return out


def test_a_mask_metric_needs_a_mask_head(tmp_path):
    task = build_task(_cfg(tmp_path))
    task.check()
    assert set(MASK_STAT_NAMES) <= set(task.metrics)
    boxes_only = {"arch": "fasterrcnn_mobilenet_v3_large_fpn"}
    with pytest.raises(ValueError, match="train.metric 'mask_map50' is a mask metric, but model.arch fasterrcnn_"):
        build_task(_cfg(tmp_path, model=boxes_only)).check()
    assert "mask_map" not in build_task(_cfg(tmp_path, model=boxes_only, train={"metric": "map"})).metrics


def test_instance_ids_give_overlaps_to_the_higher_score():
    rng = np.random.default_rng(0)
    masks = (rng.random((6, 9, 11)) < 0.35).astype(np.uint8)
    scores = np.array([0.3, 0.9, 0.5, 0.9, 0.1, 0.7], np.float32)  # a tie: the earlier detection first
    ids = instance_ids(masks, scores)
    assert ids.dtype == np.uint16
    np.testing.assert_array_equal(ids, _naive_ids(masks, scores))
    assert instance_ids(np.zeros((0, 4, 5), np.uint8), np.zeros(0)).shape == (4, 5)
    with pytest.raises(ValueError, match="needs \\(N, H, W\\) masks and N scores"):
        instance_ids(masks, scores[:3])


def test_drawn_masks_are_translucent_class_colours():
    image = np.full((120, 160, 3), 100, np.uint8)
    masks = np.zeros((2, 120, 160), np.uint8)
    masks[0, 20:90, 10:80] = 1
    masks[1, 40:110, 60:150] = 1  # overlaps the first; higher score
    boxes = np.array([[10, 20, 80, 90], [60, 40, 150, 110]], np.float32)
    out = draw_detections(image, boxes, np.array([0, 1]), np.array([0.4, 0.8]), ["a", "b"], masks=masks, min_width=1)
    for (y, x), label in (((80, 30), 0), ((75, 70), 1), ((100, 120), 1)):  # away from frames and captions
        expected = np.round(0.55 * 100 + 0.45 * np.array(box_colour(label, 2)))
        np.testing.assert_array_equal(out[y, x], expected)
    edge = out[60:89, 59]  # the first instance's last column before the second one: its outline
    assert (edge == box_colour(0, 2)).all()
    np.testing.assert_array_equal(out[5, 155], image[5, 155])  # outside every instance


class _FixedMasks(torch.nn.Module):
    """Three overlapping detections with masks, scores out of order; one below the drawing threshold."""

    def forward(self, images):
        outs = []
        for img in images:
            h, w = img.shape[-2:]
            probs = torch.full((3, 1, h, w), 0.1)
            probs[0, 0, 4:20, 4:20] = 0.9
            probs[1, 0, 10:30, 10:34] = 0.8
            probs[2, 0, 0:8, 30:40] = 0.95
            boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0], [10.0, 10.0, 34.0, 30.0], [30.0, 0.0, 40.0, 8.0]])
            outs.append(
                {
                    "boxes": boxes,
                    "scores": torch.tensor([0.6, 0.9, 0.2]),
                    "labels": torch.tensor([0, 1, 0]),
                    "masks": probs,
                }
            )
        return outs


def test_predict_writes_instance_ids_overlay_and_rle(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (36, 44, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "cells.png")
    result = predict_images(
        _FixedMasks(), [tmp_path / "cells.png"], tmp_path / "out", torch.device("cpu"), ["a", "b"], cat_ids=[3, 8]
    )
    out = json.loads(result.read_text())
    anns = out["annotations"]
    assert [a["instance_id"] for a in anns] == [2, 1, 0]  # score order; 0.2 is under draw_thresh 0.3
    masks = decode_rle([a["segmentation"] for a in anns])
    expected = np.zeros((3, 36, 44), np.uint8)
    expected[0, 4:20, 4:20], expected[1, 10:30, 10:34], expected[2, 0:8, 30:40] = 1, 1, 1
    np.testing.assert_array_equal(masks, expected)
    assert [a["area"] for a in anns] == [256.0, 480.0, 80.0] and [a["category_id"] for a in anns] == [3, 8, 3]
    ids = cv2.imread(str(tmp_path / "out" / "cells_instances.png"), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == (36, 44)
    np.testing.assert_array_equal(ids, _naive_ids(expected[:2], [0.6, 0.9]))
    assert ids[15, 15] == 1 and ids[5, 5] == 2 and ids[2, 35] == 0  # overlap to the 0.9; 0.2 not numbered
    drawn = cv2.imread(str(tmp_path / "out" / "cells.png"))
    assert drawn.shape[0] > 36  # the drawing is enlarged as for boxes


def test_mask_rcnn_through_the_loop_eval_and_predict(tmp_path):
    cfg = _cfg(tmp_path)
    run = train(cfg)
    row = next(csv.DictReader(open(run / "results.csv")))
    assert all(k in row for k in ("map50", "mask_map", "mask_map50", "mask_mar_large"))
    metrics, table = evaluate(cfg, run / "weights" / "last.pt")
    for key in ("map50", "mask_map", "mask_map50", "mask_mar_100"):
        assert metrics[key] == pytest.approx(float(row[key]), abs=1e-5)
    assert "COCO mask mAP" in table and "mask AP50" in table
    dets = json.loads((run / "eval" / "detections.json").read_text())
    assert dets and all(d["segmentation"]["size"] == [40, 48] for d in dets)

    Image.fromarray(SyntheticShapes(1, 40, 48, split="test")[0]["image"]).save(tmp_path / "x.png")
    predict(cfg, run / "weights" / "last.pt", tmp_path / "x.png", tmp_path / "pred")
    anns = json.loads((tmp_path / "pred" / "predictions.json").read_text())["annotations"]
    assert all("segmentation" in a and "instance_id" in a for a in anns)
    ids = cv2.imread(str(tmp_path / "pred" / "x_instances.png"), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == (40, 48) and ids.max() <= sum(a["instance_id"] > 0 for a in anns)
