"""Anchor coverage (best possible recall) against naive references, and fitted anchors that survive a checkpoint."""

import math

import numpy as np
import pytest
import torch

from segdet.config import load_config
from segdet.detection.anchors import (
    anchor_generator,
    anchor_report,
    anchor_shapes,
    best_possible_recall,
    boxes_at_model_scale,
    fit_anchors,
    shape_iou,
)
from segdet.detection.model import build_detector
from segdet.task import build_task

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def _naive_bpr(wh, anchors, thr=0.5):
    """Float64 loops: IoU of two boxes centred at the origin, from their corner coordinates."""
    best, hits = [], 0
    for w, h in wh:
        ious = []
        for aw, ah in anchors:
            x1, y1, x2, y2 = max(-w / 2, -aw / 2), max(-h / 2, -ah / 2), min(w / 2, aw / 2), min(h / 2, ah / 2)
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            ious.append(inter / (w * h + aw * ah - inter))
        best.append(max(ious))
        hits += sum(i >= thr for i in ious)
    return float(np.mean(np.array(best) >= thr)), float(np.mean(best)), hits / len(wh)


def test_best_possible_recall_equals_the_naive_reference():
    rng = np.random.default_rng(0)
    wh = np.exp(rng.uniform(np.log(4), np.log(300), size=(200, 2)))
    anchors = np.array([[s / math.sqrt(r), s * math.sqrt(r)] for s in (32, 64, 128) for r in (0.5, 1, 2)])
    np.testing.assert_allclose(best_possible_recall(wh, anchors), _naive_bpr(wh, anchors), rtol=1e-12)
    assert shape_iou([[10, 20]], [[10, 20]])[0, 0] == 1.0
    assert shape_iou([[10, 10]], [[20, 20]])[0, 0] == pytest.approx(0.25)
    assert best_possible_recall(np.zeros((0, 2)), anchors) == (0.0, 0.0, 0.0)


def test_anchor_shapes_are_torchvisions_formula():
    det = build_detector("fasterrcnn_resnet50_fpn", 2, min_size=64, max_size=64)
    shapes = anchor_shapes(anchor_generator(det))
    expect = {
        (2 * round(s / math.sqrt(r) / 2), 2 * round(s * math.sqrt(r) / 2))
        for s in (32, 64, 128, 256, 512)
        for r in (0.5, 1.0, 2.0)
    }
    assert {tuple(map(float, row)) for row in shapes} == {tuple(map(float, e)) for e in expect}
    tall = shapes[np.argmax(shapes[:, 1] / shapes[:, 0])]
    assert tall[1] > tall[0]  # ratio 2 is h / w
    assert anchor_generator(build_detector("fcos_resnet50_fpn", 2, min_size=64, max_size=64)) is None


def test_boxes_are_scaled_as_the_model_transform_resizes():
    det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 1, min_size=96, max_size=128)
    boxes = np.array([[3, 4, 30, 20], [50, 60, 90, 110]], np.float32)
    table = [((150, 300), boxes), ((120, 100), boxes[:1])]
    wh = boxes_at_model_scale(table, None, 96, 128)
    transform = det.model.transform.eval()
    ref = []
    for (h, w), b in table:
        _, targets = transform([torch.zeros(3, h, w)], [{"boxes": torch.tensor(b), "labels": torch.ones(len(b))}])
        t = targets[0]["boxes"].double().numpy()
        ref.append(t[:, 2:] - t[:, :2])
    np.testing.assert_allclose(wh, np.concatenate(ref), rtol=1e-5)


def test_fit_scales_anchors_to_small_boxes_and_never_loses_recall():
    det = build_detector("fasterrcnn_resnet50_fpn", 1, min_size=64, max_size=64)
    rng = np.random.default_rng(1)
    wh = rng.uniform(6, 16, size=(300, 2))
    result = fit_anchors(wh, anchor_generator(det))
    assert result.factor < 1 and result.after[0] >= result.before[0] and result.after[0] > 0.9
    assert result.before[0] < 0.5  # 32-pixel anchors reach few boxes of 6-16 pixels
    assert result.after == pytest.approx(best_possible_recall(wh, _shapes(result.sizes)))
    det.set_anchor_sizes(result.sizes)
    np.testing.assert_allclose(best_possible_recall(wh, anchor_shapes(anchor_generator(det))), result.after, atol=1e-6)
    with pytest.raises(ValueError, match="layout"):
        det.set_anchor_sizes(((8.0, 16.0),))


def _shapes(sizes, ratios=(0.5, 1.0, 2.0)):
    return np.unique(
        [
            (2 * np.round(s / math.sqrt(r) / 2), 2 * np.round(s * math.sqrt(r) / 2))
            for level in sizes
            for s in level
            for r in ratios
        ],
        axis=0,
    )


def test_fitted_anchors_travel_in_the_weights_and_train():
    det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 1, min_size=64, max_size=64)
    sizes = ((12.5, 25.0, 50.0, 100.0, 200.0),) * 3
    det.set_anchor_sizes(sizes)
    state = det.state_dict()
    fresh = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 1, min_size=64, max_size=64)
    fresh.load_state_dict(state)  # strict: the anchor sizes are part of the weights
    for a, b in zip(anchor_generator(fresh).cell_anchors, anchor_generator(det).cell_anchors):
        torch.testing.assert_close(a, b)
    assert anchor_generator(fresh).sizes == sizes
    plain = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 1, min_size=64, max_size=64).state_dict()
    fresh.load_state_dict(plain)  # weights of default anchors bring the default sizes back
    assert anchor_generator(fresh).sizes[0][0] == 32 and "anchor_sizes" not in fresh.state_dict()
    det.train()
    target = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 34.0]]), "labels": torch.tensor([0])}]
    losses = det([torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))], target)
    assert all(torch.isfinite(v) for v in losses.values())


def test_report_line_and_fit_on_an_anchor_free_detector():
    fcos = build_detector("fcos_resnet50_fpn", 1, min_size=64, max_size=64)
    samples = [{"image": np.zeros((64, 64, 3), np.uint8), "bboxes": np.array([[0, 0, 9, 9]], np.float32)}]
    line, result = anchor_report(fcos, samples, None, fit=False)
    assert "no anchor generator" in line and result is None
    with pytest.raises(ValueError, match="model.anchors: fit works on anchor detectors.*set model.anchors: keep"):
        anchor_report(fcos, samples, None, fit=True)


def test_a_fitted_run_rebuilds_its_anchors_without_the_data(capsys):
    overrides = ["data.synthetic.train_size=16", "data.synthetic.val_size=4", "model.anchors=fit"]
    cfg = load_config(ROOT / "configs" / "fasterrcnn_mosaic.yaml", overrides)
    task = build_task(cfg)
    _, _, spec = task.build_datasets()
    model = task.build_model(spec)
    out = capsys.readouterr().out
    assert "best possible recall" in out and "model.anchors: fit" in out
    trained = anchor_generator(model).sizes
    predictor = build_task(cfg).build_model(spec)  # segdet predict: no dataset read, then the checkpoint
    predictor.load_state_dict(model.state_dict())
    assert anchor_generator(predictor).sizes == trained
    assert capsys.readouterr().out == ""  # no data, no report
