"""SegmentationEvaluator against a naive per-pixel loop and against smp's metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from segdet.segmentation import SegmentationEvaluator, confusion_matrix, scores_from_confusion
from segdet.task import Evaluator


class LogitsAreTheImage(nn.Module):
    """Fake model: the batch "image" already holds the logits, so tests choose predictions freely."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


MODEL = LogitsAreTheImage()


def naive_confusion(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Reference: one Python iteration per pixel."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for p, t in zip(pred.ravel().tolist(), target.ravel().tolist()):
        if t == ignore_index or not 0 <= t < num_classes:
            continue
        cm[t, p] += 1
    return cm


def naive_scores(cm: np.ndarray) -> tuple[list[float], list[float]]:
    """Reference IoU and Dice per class, written out class by class."""
    ious, dices = [], []
    for c in range(len(cm)):
        tp = cm[c, c]
        fp = sum(cm[t, c] for t in range(len(cm)) if t != c)
        fn = sum(cm[c, p] for p in range(len(cm)) if p != c)
        if tp + fp + fn == 0:
            ious.append(math.nan)
            dices.append(math.nan)
        else:
            ious.append(tp / (tp + fp + fn))
            dices.append(2 * tp / (2 * tp + fp + fn))
    return ious, dices


def random_batch(gen: torch.Generator, b: int, c: int, h: int, w: int, ignore_index: int, p_ignore: float = 0.2):
    logits = torch.randn(b, c, h, w, generator=gen)
    mask = torch.randint(0, c, (b, h, w), generator=gen)
    drop = torch.rand(b, h, w, generator=gen) < p_ignore
    mask[drop] = ignore_index
    return {"image": logits, "mask": mask}


def run(ev: SegmentationEvaluator, batches) -> dict[str, float]:
    ev.reset()
    for batch in batches:
        ev.update(MODEL, batch)
    ev.sync()
    return ev.compute()


def test_is_an_evaluator():
    assert isinstance(SegmentationEvaluator(2, 255, ["a", "b"], "cpu"), Evaluator)


@pytest.mark.parametrize("ignore_index", [255, -1, 0])
def test_matches_naive_loop(ignore_index):
    gen = torch.Generator().manual_seed(0)
    c = 4
    batches = [random_batch(gen, 2, c, 9, 11, ignore_index) for _ in range(3)]
    ev = SegmentationEvaluator(c, ignore_index, ["a", "b", "c", "d"], "cpu")
    metrics = run(ev, batches)

    pred = np.concatenate([b["image"].argmax(1).numpy().ravel() for b in batches])
    target = np.concatenate([b["mask"].numpy().ravel() for b in batches])
    cm = naive_confusion(pred, target, c, ignore_index)
    np.testing.assert_array_equal(ev.confusion().numpy(), cm)

    ious, dices = naive_scores(cm)
    for name, iou, dice in zip("abcd", ious, dices):
        if math.isnan(iou):  # ignore_index=0 removes class "a" from the ground truth only
            assert math.isnan(metrics[f"iou/{name}"])
        else:
            assert metrics[f"iou/{name}"] == pytest.approx(iou)
            assert metrics[f"dice/{name}"] == pytest.approx(dice)
    defined = [v for v in ious if not math.isnan(v)]
    assert metrics["miou"] == pytest.approx(sum(defined) / len(defined))
    assert metrics["mdice"] == pytest.approx(np.nanmean(dices))
    valid = (target != ignore_index) & (target >= 0) & (target < c)
    assert metrics["pixel_acc"] == pytest.approx((pred[valid] == target[valid]).mean())


def smp_stats(batches, num_classes, ignore_index):
    pred = torch.cat([b["image"].argmax(1) for b in batches])
    target = torch.cat([b["mask"] for b in batches])
    return smp.metrics.get_stats(pred, target, mode="multiclass", num_classes=num_classes, ignore_index=ignore_index)


def test_matches_smp_macro_reduction():
    # smp's get_stats gives (images, classes) counts. reduction="macro" sums them over images,
    # scores each class and averages the classes: the same dataset-level per-class IoU as ours.
    # ("micro" pools all classes into one score; the "*-imagewise" reductions average per-image
    # scores, which is a different number.) Per class: sum over images, then reduction="none".
    gen = torch.Generator().manual_seed(1)
    c = 5
    batches = [random_batch(gen, 3, c, 16, 16, 255) for _ in range(2)]
    metrics = run(SegmentationEvaluator(c, 255, None, "cpu"), batches)
    tp, fp, fn, tn = smp_stats(batches, c, 255)

    assert metrics["miou"] == pytest.approx(smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro").item())
    assert metrics["mdice"] == pytest.approx(smp.metrics.f1_score(tp, fp, fn, tn, reduction="macro").item())
    summed = [s.sum(0, keepdim=True) for s in (tp, fp, fn, tn)]
    per_class_iou = smp.metrics.iou_score(*summed, reduction="none")[0]
    per_class_dice = smp.metrics.f1_score(*summed, reduction="none")[0]
    for k in range(c):
        assert metrics[f"iou/class_{k}"] == pytest.approx(per_class_iou[k].item())
        assert metrics[f"dice/class_{k}"] == pytest.approx(per_class_dice[k].item())
    # the image-wise reduction is a different quantity: we do not compute it
    imagewise = smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro-imagewise").item()
    assert metrics["miou"] != pytest.approx(imagewise)


def test_absent_class_is_nan_not_one_like_smp():
    # Deliberate difference: class 2 is in neither ground truth nor prediction. smp scores it
    # 1.0 (zero_division=1) and torchmetrics 0.0, so both move mIoU for a class that was never
    # seen; we report n/a (NaN) and average over the classes that have a score.
    logits = torch.full((1, 3, 4, 4), -5.0)
    logits[:, 0, :, :2] = 5.0
    logits[:, 1, :, 2:] = 5.0
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[:, :, 3:] = 1
    batch = {"image": logits, "mask": mask}
    metrics = run(SegmentationEvaluator(3, 255, ["bg", "fg", "never"], "cpu"), [batch])
    assert math.isnan(metrics["iou/never"]) and math.isnan(metrics["dice/never"])
    assert metrics["iou/bg"] == pytest.approx(8 / 12)
    assert metrics["iou/fg"] == pytest.approx(4 / 8)
    assert metrics["miou"] == pytest.approx((8 / 12 + 4 / 8) / 2)

    tp, fp, fn, tn = smp_stats([batch], 3, 255)
    smp_per_class = smp.metrics.iou_score(
        tp.sum(0, keepdim=True),
        fp.sum(0, keepdim=True),
        fn.sum(0, keepdim=True),
        tn.sum(0, keepdim=True),
        reduction="none",
    )[0]
    assert smp_per_class[2].item() == 1.0
    assert smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro").item() == pytest.approx((8 / 12 + 4 / 8 + 1) / 3)


def test_predicted_but_absent_from_ground_truth_scores_zero():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, 0] = 1.0  # one pixel predicted as class 1, which the target never has
    metrics = run(
        SegmentationEvaluator(2, 255, None, "cpu"), [{"image": logits, "mask": torch.zeros(1, 2, 2, dtype=torch.long)}]
    )
    assert metrics["iou/class_1"] == 0.0
    assert metrics["iou/class_0"] == pytest.approx(3 / 4)
    assert metrics["miou"] == pytest.approx(3 / 8)


def test_all_pixels_ignored(tmp_path):
    gen = torch.Generator().manual_seed(2)
    batch = random_batch(gen, 2, 3, 5, 5, 255, p_ignore=1.0)
    ev = SegmentationEvaluator(3, 255, None, "cpu")
    metrics = run(ev, [batch])
    assert ev.confusion().sum().item() == 0
    assert all(math.isnan(v) for v in metrics.values())
    table = ev.report(tmp_path)
    assert "n/a" in table
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["miou"] is None and doc["classes"][0]["iou"] is None


def test_ignore_255_with_four_classes_and_padding():
    # collate pads masks with ignore_index: padded pixels must not count whatever is predicted
    gen = torch.Generator().manual_seed(3)
    batch = random_batch(gen, 2, 4, 8, 8, 255)
    padded = {
        "image": torch.nn.functional.pad(batch["image"], (0, 24, 0, 24), value=7.0),
        "mask": torch.nn.functional.pad(batch["mask"], (0, 24, 0, 24), value=255),
    }
    a = SegmentationEvaluator(4, 255, None, "cpu")
    b = SegmentationEvaluator(4, 255, None, "cpu")
    run(a, [batch])
    run(b, [padded])
    torch.testing.assert_close(a.confusion(), b.confusion(), rtol=0, atol=0)


def test_many_batches_equal_one_big_batch():
    gen = torch.Generator().manual_seed(4)
    batches = [random_batch(gen, 2, 3, 6, 7, 255) for _ in range(4)]
    big = {k: torch.cat([b[k] for b in batches]) for k in ("image", "mask")}
    split = run(SegmentationEvaluator(3, 255, None, "cpu"), batches)
    whole = run(SegmentationEvaluator(3, 255, None, "cpu"), [big])
    assert split == pytest.approx(whole, nan_ok=True)


def test_reset_clears_counts():
    gen = torch.Generator().manual_seed(5)
    ev = SegmentationEvaluator(3, 255, None, "cpu")
    run(ev, [random_batch(gen, 1, 3, 4, 4, 255)])
    second = random_batch(gen, 1, 3, 4, 4, 255)
    again = run(ev, [second])
    assert again == pytest.approx(run(SegmentationEvaluator(3, 255, None, "cpu"), [second]), nan_ok=True)


def test_soft_targets_use_argmax_and_zero_vectors_are_ignored():
    gen = torch.Generator().manual_seed(6)
    c = 3
    hard = random_batch(gen, 2, c, 6, 6, 255)
    mask = hard["mask"]
    one_hot = torch.nn.functional.one_hot(mask.clamp(0, c - 1), c).permute(0, 3, 1, 2).float()
    soft = 0.7 * one_hot + 0.1  # MixUp-like probabilities whose argmax is the hard class
    soft = soft * (mask != 255).unsqueeze(1)  # ignored pixels are zero vectors
    a = SegmentationEvaluator(c, 255, None, "cpu")
    b = SegmentationEvaluator(c, 255, None, "cpu")
    run(a, [hard])
    run(b, [{"image": hard["image"], "mask": soft}])
    torch.testing.assert_close(a.confusion(), b.confusion(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits(dtype):
    gen = torch.Generator().manual_seed(7)
    batch = random_batch(gen, 1, 3, 5, 5, 255)
    batch_low = {"image": batch["image"].to(dtype), "mask": batch["mask"]}
    pred = batch_low["image"].float().argmax(1).numpy()
    ev = SegmentationEvaluator(3, 255, None, "cpu")
    run(ev, [batch_low])
    np.testing.assert_array_equal(ev.confusion().numpy(), naive_confusion(pred, batch["mask"].numpy(), 3, 255))


def test_binary_one_channel_model():
    logits = torch.tensor([[[[-1.0, 2.0], [0.5, -3.0]]]])
    mask = torch.tensor([[[0, 1], [0, 0]]])
    ev = SegmentationEvaluator(2, 255, ["bg", "fg"], "cpu")
    run(ev, [{"image": logits, "mask": mask}])
    np.testing.assert_array_equal(ev.confusion().numpy(), [[2, 1], [0, 1]])


def test_values_outside_classes_are_reported():
    mask = torch.tensor([[[0, 1], [7, 255]]])
    ev = SegmentationEvaluator(2, 255, None, "cpu")
    ev.update(MODEL, {"image": torch.zeros(1, 2, 2, 2), "mask": mask})
    with pytest.raises(ValueError, match="1 target pixels.*ignore_index=255"):
        ev.compute()


def test_bad_shapes_and_names():
    ev = SegmentationEvaluator(3, 255, None, "cpu")
    with pytest.raises(ValueError, match="4 channels but num_classes=3"):
        ev.update(MODEL, {"image": torch.zeros(1, 4, 2, 2), "mask": torch.zeros(1, 2, 2, dtype=torch.long)})
    with pytest.raises(ValueError, match="must match"):
        ev.update(MODEL, {"image": torch.zeros(1, 3, 2, 2), "mask": torch.zeros(1, 3, 2, dtype=torch.long)})
    with pytest.raises(TypeError, match="integer class indices"):
        ev.update(MODEL, {"image": torch.zeros(1, 3, 2, 2), "mask": torch.zeros(1, 2, 2)})
    with pytest.raises(KeyError, match="mask"):
        ev.update(MODEL, {"image": torch.zeros(1, 3, 2, 2)})
    with pytest.raises(ValueError, match="2 class names"):
        SegmentationEvaluator(3, 255, ["a", "b"], "cpu")


def test_report_files_and_table(tmp_path):
    gen = torch.Generator().manual_seed(8)
    ev = SegmentationEvaluator(3, 255, ["background", "disc", "square"], "cpu")
    metrics = run(ev, [random_batch(gen, 2, 3, 8, 8, 255)])
    table = ev.report(tmp_path / "eval")
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    cm = ev.confusion().numpy()
    assert doc["miou"] == pytest.approx(metrics["miou"])
    assert [row["name"] for row in doc["classes"]] == ["background", "disc", "square"]
    assert [row["gt_pixels"] for row in doc["classes"]] == cm.sum(1).tolist()
    assert [row["pred_pixels"] for row in doc["classes"]] == cm.sum(0).tolist()
    assert doc["confusion_matrix"]["counts"] == cm.tolist()
    assert "n/a" in doc["averaging"] and "ignore_index" in doc["averaging"]
    png = (tmp_path / "eval" / "confusion_matrix.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["confusion_matrix.png", "metrics.json"]
    lines = table.splitlines()
    disc = next(line for line in lines if line.startswith("disc"))
    assert f"{metrics['iou/disc']:.4f}" in disc and str(int(cm[1].sum())) in disc
    assert any(line.startswith("mean") and f"{metrics['miou']:.4f}" in line for line in lines)


def test_scores_from_confusion_example():
    scores = scores_from_confusion(np.array([[3, 1], [0, 4]]))
    np.testing.assert_allclose(scores["iou"], [3 / 4, 4 / 5])
    np.testing.assert_allclose(scores["dice"], [6 / 7, 8 / 9])
    assert scores["pixel_acc"] == pytest.approx(7 / 8)


def test_confusion_matrix_function_docstring_example():
    cm, invalid = confusion_matrix(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [255, 0]]]), 2)
    assert cm.tolist() == [[1, 1], [0, 1]] and invalid.item() == 0


def test_sync_is_a_noop_without_distributed():
    gen = torch.Generator().manual_seed(9)
    ev = SegmentationEvaluator(3, 255, None, "cpu")
    ev.update(MODEL, random_batch(gen, 1, 3, 4, 4, 255))
    before = ev.confusion().clone()
    ev.sync()
    ev.sync()
    torch.testing.assert_close(ev.confusion(), before, rtol=0, atol=0)


def test_sync_sums_over_ranks(tmp_path, monkeypatch):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the spawned ranks import the worker by name
    from _segdet_eval_dist_worker import run_rank

    torch.multiprocessing.spawn(run_rank, args=(str(tmp_path / "init"), str(tmp_path / "out")), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"out.{r}") for r in (0, 1))
    expected = r0["local"] + r1["local"]
    torch.testing.assert_close(r0["synced"], expected, rtol=0, atol=0)
    torch.testing.assert_close(r1["synced"], expected, rtol=0, atol=0)
    assert r0["miou"] == r1["miou"]
    # per-image scores are gathered: every rank lists both images, each scored from its own rank's counts
    for r in (r0, r1):
        assert [e["index"] for e in r["per_image"]] == [0, 1]
        for e, own in zip(r["per_image"], (r0["local"], r1["local"])):
            assert e["miou"] == pytest.approx(scores_from_confusion(own.numpy())["miou"], abs=1e-12)


@pytest.mark.parametrize("sync_free", [False, True])
def test_both_histogram_paths_count_exactly(sync_free):
    # CUDA uses the scatter_add_ path (no host sync), CPU bincount; both must give the same counts
    from segdet.segmentation._confusion import _histogram

    gen = torch.Generator().manual_seed(10)
    index = torch.randint(0, 17, (5000,), generator=gen)
    expected = np.zeros(17, dtype=np.int64)
    for v in index.tolist():
        expected[v] += 1
    np.testing.assert_array_equal(_histogram(index, 17, sync_free=sync_free).numpy(), expected)
