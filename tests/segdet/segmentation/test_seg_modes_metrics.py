"""Binary and multilabel scores of SegmentationEvaluator against naive float64 numpy, and binary == multiclass-2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from segdet.segmentation import SegmentationEvaluator
from segdet.segmentation._confusion import labels_from_logits, logit_threshold
from segdet.segmentation._multilabel import multilabel_counts, present_from_logits, scores_from_multilabel
from segdet.segmentation.inference import Inference

IGNORE = 255


class Identity(nn.Module):
    """The batch image already holds the logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def naive_binary_scores(logits: np.ndarray, target: np.ndarray, threshold: float) -> dict:
    """Per-class IoU / Dice of background and foreground, float64, ignore_index left out."""
    pred = sigmoid64(logits) > threshold
    valid = target != IGNORE
    out = {"iou": [], "dice": []}
    for cls in (0, 1):
        p, t = (pred == bool(cls)) & valid, (target == cls) & valid
        tp, fp, fn = float((p & t).sum()), float((p & ~t).sum()), float((~p & t).sum())
        out["iou"].append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
        out["dice"].append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan)
    correct = float(((pred == (target == 1)) & valid).sum())
    out["pixel_acc"] = correct / float(valid.sum())
    return out


def naive_multilabel_scores(logits: np.ndarray, target: np.ndarray, threshold: float) -> dict:
    """Per-class IoU / Dice of (N, K, H, W) sigmoid channels, float64, ignore_index left out per class."""
    pred = sigmoid64(logits) > threshold
    out = {"iou": [], "dice": []}
    correct = total = 0.0
    for k in range(logits.shape[1]):
        valid = target[:, k] != IGNORE
        p, t = pred[:, k] & valid, (target[:, k] == 1) & valid
        tp, fp, fn = float((p & t).sum()), float((p & ~t).sum()), float((~p & t).sum())
        out["iou"].append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
        out["dice"].append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan)
        correct += float(((pred[:, k] == (target[:, k] == 1)) & valid).sum())
        total += float(valid.sum())
    out["pixel_acc"] = correct / total
    return out


def _nanmean(values):
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _run(ev: SegmentationEvaluator, batches) -> dict:
    ev.reset()
    for logits, target in batches:
        ev.update(Identity(), {"image": logits, "mask": target})
    ev.sync()
    return ev.compute()


@pytest.mark.parametrize(
    "size, threshold", [((2, 7, 9), 0.5), ((2, 7, 9), 0.3), ((4, 512, 512), 0.5), ((4, 512, 512), 0.8)]
)
def test_binary_matches_naive_numpy(size, threshold):
    gen = torch.Generator().manual_seed(0)
    n, h, w = size
    logits = torch.randn(n, 1, h, w, generator=gen) * 2
    target = torch.randint(0, 2, (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < 0.1] = IGNORE
    half = n // 2
    batches = [(logits[:half], target[:half]), (logits[half:], target[half:])]
    ev = SegmentationEvaluator(2, IGNORE, ["background", "fg"], "cpu", mode="binary", threshold=threshold)
    got = _run(ev, batches)
    ref = naive_binary_scores(logits.numpy()[:, 0], target.numpy(), threshold)
    assert got["threshold"] == threshold
    assert [got["iou/background"], got["iou/fg"]] == pytest.approx(ref["iou"], rel=1e-12)
    assert [got["dice/background"], got["dice/fg"]] == pytest.approx(ref["dice"], rel=1e-12)
    assert got["miou"] == pytest.approx(_nanmean(ref["iou"]), rel=1e-12)
    assert got["mdice"] == pytest.approx(_nanmean(ref["dice"]), rel=1e-12)
    assert got["pixel_acc"] == pytest.approx(ref["pixel_acc"], rel=1e-12)


@pytest.mark.parametrize(
    "size, threshold", [((2, 3, 6, 5), 0.5), ((2, 3, 6, 5), 0.65), ((4, 5, 512, 512), 0.5), ((4, 3, 512, 512), 0.2)]
)
def test_multilabel_matches_naive_numpy(size, threshold):
    gen = torch.Generator().manual_seed(1)
    n, k, h, w = size
    logits = torch.randn(n, k, h, w, generator=gen) * 2
    target = torch.randint(0, 2, (n, k, h, w), generator=gen).to(torch.uint8)
    target[torch.rand(n, k, h, w, generator=gen) < 0.1] = IGNORE
    if k > 3:
        target[:, -1] = IGNORE  # a class with nothing scored: NaN, left out of the means
    batches = [(logits[i : i + 1], target[i : i + 1]) for i in range(n)]
    names = [f"c{i}" for i in range(k)]
    ev = SegmentationEvaluator(k, IGNORE, names, "cpu", mode="multilabel", threshold=threshold)
    got = _run(ev, batches)
    ref = naive_multilabel_scores(logits.numpy(), target.numpy(), threshold)
    for i, name in enumerate(names):
        for metric in ("iou", "dice"):
            value, expected = got[f"{metric}/{name}"], ref[metric][i]
            assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, rel=1e-12)
    assert got["miou"] == pytest.approx(_nanmean(ref["iou"]), rel=1e-12)
    assert got["mdice"] == pytest.approx(_nanmean(ref["dice"]), rel=1e-12)
    assert got["pixel_acc"] == pytest.approx(ref["pixel_acc"], rel=1e-12)
    assert got["threshold"] == threshold


@pytest.mark.parametrize("size", [(3, 5, 7), (4, 512, 512)])
def test_binary_at_half_equals_a_two_class_multiclass_model_with_logits_zero_and_l(size):
    gen = torch.Generator().manual_seed(2)
    n, h, w = size
    logit = torch.randn(n, 1, h, w, generator=gen)
    logit[0, 0, 0, :3] = torch.tensor([0.0, 1e-10, -1e-10])  # at and right beside the boundary
    target = torch.randint(0, 2, (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < 0.05] = IGNORE
    binary = SegmentationEvaluator(2, IGNORE, ["bg", "fg"], "cpu", mode="binary", threshold=0.5)
    multi = SegmentationEvaluator(2, IGNORE, ["bg", "fg"], "cpu")
    got_b = _run(binary, [(logit, target)])
    got_m = _run(multi, [(torch.cat([torch.zeros_like(logit), logit], 1), target)])
    assert torch.equal(binary.confusion(), multi.confusion())
    for key in ("miou", "mdice", "pixel_acc", "iou/bg", "iou/fg", "dice/bg", "dice/fg"):
        assert got_b[key] == got_m[key], key
    assert "threshold" not in got_m


def test_a_class_never_present_and_never_predicted_is_nan_and_left_out():
    logits = torch.full((1, 2, 4, 4), -5.0)
    logits[0, 0, :2] = 5.0
    target = torch.zeros((1, 2, 4, 4), dtype=torch.uint8)
    target[0, 0, :1] = 1
    ev = SegmentationEvaluator(2, IGNORE, ["a", "b"], "cpu", mode="multilabel")
    got = _run(ev, [(logits, target)])
    assert got["iou/a"] == 0.5 and math.isnan(got["iou/b"]) and got["miou"] == 0.5
    assert got["dice/a"] == pytest.approx(2 / 3) and math.isnan(got["dice/b"])


def test_multilabel_counts_are_int64_and_stay_on_the_device():
    present = torch.tensor([[[[True, False, True]], [[False, False, True]]]])
    target = torch.tensor([[[[1, 0, IGNORE]], [[1, 0, 0]]]], dtype=torch.uint8)
    counts, invalid = multilabel_counts(present, target, IGNORE)
    assert counts.dtype == torch.int64 and counts.device == present.device and int(invalid) == 0
    # class 0: TP 1, TN 1 (ignored pixel left out); class 1: FN 1, TN 1, FP 1
    assert counts.tolist() == [[[1, 0], [0, 1]], [[1, 1], [1, 0]]]


def test_multilabel_values_outside_0_1_are_reported():
    ev = SegmentationEvaluator(1, IGNORE, ["a"], "cpu", mode="multilabel")
    ev.update_from_logits(torch.zeros(1, 1, 2, 2), torch.tensor([[[[0, 2], [1, IGNORE]]]], dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"1 target pixels hold a value that is neither 0 or 1 nor ignore_index=255"):
        ev.compute()


def test_threshold_is_compared_on_logits_exactly():
    assert logit_threshold(0.5) == 0.0
    cut = logit_threshold(0.8)
    assert cut == float(np.float32(cut)) and cut <= math.log(4.0) < float(np.nextafter(np.float32(cut), np.inf))
    logits = torch.tensor([[[[1e-10, 0.0, math.log(4.0) + 1e-6]]]])
    assert labels_from_logits(logits, 2).tolist() == [[[1, 0, 1]]]
    assert labels_from_logits(logits, 2, threshold=0.8).tolist() == [[[0, 0, 1]]]
    assert present_from_logits(logits, 1, 0.8).tolist() == [[[[False, False, True]]]]
    for bad in (0.0, 1.0, 1.5, True):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            logit_threshold(bad)


def test_bf16_logits_give_the_float32_answer():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 16, 16, generator=gen).to(torch.bfloat16)
    for t in (0.5, 0.3):
        assert torch.equal(present_from_logits(logits, 3, t), present_from_logits(logits.float(), 3, t))


def test_sliding_window_and_flips_average_logits_before_the_threshold():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 2, 40, 48, generator=gen)
    target = torch.randint(0, 2, (1, 2, 40, 48), generator=gen).to(torch.uint8)
    plain = SegmentationEvaluator(2, IGNORE, ["a", "b"], "cpu", mode="multilabel")
    slide = SegmentationEvaluator(
        2, IGNORE, ["a", "b"], "cpu", mode="multilabel", inference=Inference(mode="slide", tile=(16, 16), flip=("h",))
    )
    batch = {"image": logits, "mask": target, "sizes": torch.tensor([[40, 48]])}
    # a pixel-wise model: every tile, flip and blend gives back the same logits
    for ev in (plain, slide):
        ev.reset()
        ev.update(Identity(), batch)
    assert torch.equal(plain.confusion(), slide.confusion())


def test_report_names_mode_and_threshold(tmp_path):
    gen = torch.Generator().manual_seed(5)
    ev = SegmentationEvaluator(3, IGNORE, ["a", "b", "c"], "cpu", mode="multilabel", threshold=0.4)
    ev.update_from_logits(torch.randn(2, 3, 8, 8, generator=gen), torch.randint(0, 2, (2, 3, 8, 8), generator=gen))
    table = ev.report(tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert "threshold = 0.4" in table and "Multilabel: each class is scored on its own" in table
    assert doc["mode"] == "multilabel" and doc["threshold"] == 0.4
    counts = np.array([doc["confusion_matrix"]["per_class"][n] for n in "abc"])
    assert counts.sum() == 2 * 3 * 8 * 8  # every (pixel, class) element once
    assert scores_from_multilabel(counts)["miou"] == pytest.approx(doc["miou"])
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0

    ev = SegmentationEvaluator(2, IGNORE, ["bg", "fg"], "cpu", mode="binary", threshold=0.7)
    ev.update_from_logits(torch.randn(1, 1, 8, 8, generator=gen), torch.randint(0, 2, (1, 8, 8), generator=gen))
    table = ev.report(tmp_path / "b")
    doc = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert doc["mode"] == "binary" and doc["threshold"] == 0.7 and "threshold = 0.7" in table
    assert np.array(doc["confusion_matrix"]["counts"]).shape == (2, 2)


def test_multiclass_report_has_no_mode_keys(tmp_path):
    ev = SegmentationEvaluator(2, IGNORE, ["bg", "fg"], "cpu")
    ev.update_from_logits(torch.randn(1, 2, 4, 4), torch.randint(0, 2, (1, 4, 4)))
    table = ev.report(tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert "mode" not in doc and "threshold" not in doc and "threshold" not in table


def test_bad_mode_and_threshold_are_named():
    with pytest.raises(ValueError, match="mode must be one of multiclass, binary, multilabel"):
        SegmentationEvaluator(2, IGNORE, None, "cpu", mode="binay")
    with pytest.raises(ValueError, match="binary mode scores two classes"):
        SegmentationEvaluator(3, IGNORE, None, "cpu", mode="binary")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        SegmentationEvaluator(2, IGNORE, None, "cpu", mode="binary", threshold=1.0)
    ev = SegmentationEvaluator(2, IGNORE, None, "cpu", mode="multilabel")
    with pytest.raises(ValueError, match=r"a multilabel model returns \(B, 2, H, W\)"):
        ev.update_from_logits(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2, dtype=torch.uint8))
