"""The DSB2018 benchmark's scorer against a naive float64 loop and segdet's evaluator; its config edits."""

import importlib.util
import math
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from segdet.config import validate_config
from segdet.segmentation.evaluator import SegmentationEvaluator

ROOT = Path(__file__).resolve().parents[2]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_dsb2018", ROOT / "benchmarks" / "bench_dsb2018.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def naive_scores(preds, truths):
    """Per-class TP/FP/FN counted pixel by pixel in Python, scores in float64."""
    tp, fp, fn = [0, 0], [0, 0], [0, 0]
    for pred, truth in zip(preds, truths):
        for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist()):
            for c in (0, 1):
                tp[c] += p == c and t == c
                fp[c] += p == c and t != c
                fn[c] += p != c and t == c
    iou = [tp[c] / (tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan for c in (0, 1)]
    dice = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else math.nan for c in (0, 1)]
    present = [v for v in iou if not math.isnan(v)]
    return {"iou": iou, "dice": dice, "miou": sum(present) / len(present)}


def naive_scores_fast(preds, truths):
    """The same counts with numpy boolean sums (for realistic sizes, where the Python loop is too slow)."""
    tp, fp, fn = np.zeros(2), np.zeros(2), np.zeros(2)
    for pred, truth in zip(preds, truths):
        for c in (0, 1):
            tp[c] += np.sum((pred == c) & (truth == c), dtype=np.float64)
            fp[c] += np.sum((pred == c) & (truth != c), dtype=np.float64)
            fn[c] += np.sum((pred != c) & (truth == c), dtype=np.float64)
    iou = tp / (tp + fp + fn)
    return {"iou": list(iou), "dice": list(2 * tp / (2 * tp + fp + fn)), "miou": float(iou.mean())}


def segdet_scores(preds, truths):
    """segdet's SegmentationEvaluator on one-hot logits of the same predictions."""
    ev = SegmentationEvaluator(2, 255, ["background", "nucleus"], "cpu")
    for pred, truth in zip(preds, truths):
        p = torch.from_numpy(pred.astype(np.int64))
        logits = torch.nn.functional.one_hot(p, 2).permute(2, 0, 1)[None].float()
        ev.update_from_logits(logits, torch.from_numpy(truth.astype(np.int64))[None])
    return ev.compute()


def bench_scores(preds, truths):
    cm = sum(bench.confusion(p.astype(bool), t.astype(bool)) for p, t in zip(preds, truths))
    return bench.scores(cm)


def random_pair(rng, height, width, fg=0.15, flip=0.05):
    truth = rng.random((height, width)) < fg
    pred = truth ^ (rng.random((height, width)) < flip)
    return pred.astype(np.uint8), truth.astype(np.uint8)


def assert_agree(got, ref, ev=None):
    assert got["iou"]["background"] == pytest.approx(ref["iou"][0], abs=1e-12, nan_ok=True)
    assert got["iou"]["nucleus"] == pytest.approx(ref["iou"][1], abs=1e-12, nan_ok=True)
    assert got["dice"]["background"] == pytest.approx(ref["dice"][0], abs=1e-12, nan_ok=True)
    assert got["fg_dice"] == pytest.approx(ref["dice"][1], abs=1e-12, nan_ok=True)
    assert got["miou"] == pytest.approx(ref["miou"], abs=1e-12)
    if ev is not None:
        assert got["miou"] == pytest.approx(ev["miou"], abs=1e-12)
        assert got["iou"]["nucleus"] == pytest.approx(ev["iou/nucleus"], abs=1e-12, nan_ok=True)
        assert got["iou"]["background"] == pytest.approx(ev["iou/background"], abs=1e-12, nan_ok=True)
        assert got["fg_dice"] == pytest.approx(ev["dice/nucleus"], abs=1e-12, nan_ok=True)


def test_tiny_images_match_the_naive_loop_and_segdet():
    rng = np.random.default_rng(0)
    pairs = [random_pair(rng, 3, 4, fg=0.4, flip=0.3), random_pair(rng, 5, 2, fg=0.5, flip=0.3)]
    preds, truths = zip(*pairs)
    assert_agree(bench_scores(preds, truths), naive_scores(preds, truths), segdet_scores(preds, truths))


def test_realistic_sizes_match_the_naive_reference_and_segdet():
    rng = np.random.default_rng(1)
    sizes = [(1040, 1388), (520, 696), (603, 1272), (256, 256), (256, 320)]
    pairs = [random_pair(rng, h, w, fg=rng.uniform(0.02, 0.3), flip=rng.uniform(0.01, 0.1)) for h, w in sizes]
    preds, truths = zip(*pairs)
    got = bench_scores(preds, truths)
    assert_agree(got, naive_scores_fast(preds, truths), segdet_scores(preds, truths))
    assert sum(map(sum, got["confusion"])) == sum(h * w for h, w in sizes)


def test_naive_references_agree_with_each_other():
    rng = np.random.default_rng(2)
    pairs = [random_pair(rng, 30, 41), random_pair(rng, 17, 9)]
    preds, truths = zip(*pairs)
    slow, fast = naive_scores(preds, truths), naive_scores_fast(preds, truths)
    assert slow["iou"] == pytest.approx(fast["iou"], abs=1e-12)
    assert slow["dice"] == pytest.approx(fast["dice"], abs=1e-12)


@pytest.mark.parametrize(
    "pred_value, truth_value", [(0, 0), (1, 1), (1, 0), (0, 1)], ids=["all-bg", "all-fg", "fp-only", "fn-only"]
)
def test_degenerate_images_follow_segdets_nan_rule(pred_value, truth_value):
    preds, truths = [np.full((8, 8), pred_value, np.uint8)], [np.full((8, 8), truth_value, np.uint8)]
    got = bench_scores(preds, truths)
    assert_agree(got, naive_scores(preds, truths), segdet_scores(preds, truths))


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_score_folder_reads_pngs_like_the_arrays(tmp_path):
    rng = np.random.default_rng(3)
    preds, truths = [], []
    for i, (h, w) in enumerate([(520, 696), (256, 320), (360, 360)]):
        pred, truth = random_pair(rng, h, w)
        write_png(tmp_path / "masks" / f"id{i}.png", truth * 255)
        write_png(tmp_path / "pred" / f"id{i}.png", pred)
        write_png(tmp_path / "pred" / f"id{i}_overlay.png", rng.integers(0, 255, (h, w, 3)))  # ignored
        preds.append(pred)
        truths.append(truth)
    got = bench.score_folder(tmp_path / "pred", tmp_path / "masks")
    assert_agree(got, naive_scores_fast(preds, truths), segdet_scores(preds, truths))
    assert got["images"] == 3 and got["pixels"] == sum(t.size for t in truths)


def test_score_folder_at_256_resizes_the_masks_as_albumentations_does(tmp_path):
    rng = np.random.default_rng(4)
    preds, truths = [], []
    for i, (h, w) in enumerate([(520, 696), (1040, 1388)]):
        truth = (cv2.GaussianBlur(rng.random((h, w)), (0, 0), 4) > 0.52).astype(np.uint8)
        write_png(tmp_path / "masks" / f"id{i}.png", truth * 255)
        small = A.Resize(256, 256)(image=np.zeros((h, w, 3), np.uint8), mask=truth)["mask"]
        pred = small ^ (rng.random((256, 256)) < 0.05).astype(np.uint8)
        write_png(tmp_path / "pred" / f"id{i}.png", pred)
        preds.append(pred)
        truths.append(small)
    got = bench.score_folder(tmp_path / "pred", tmp_path / "masks", size=(256, 256))
    assert_agree(got, naive_scores_fast(preds, truths), segdet_scores(preds, truths))


def test_bad_files_get_one_error_naming_the_file(tmp_path):
    write_png(tmp_path / "masks" / "a.png", np.array([[0, 255], [255, 0]]))
    with pytest.raises(ValueError, match=r"pred[/\\]a\.png does not exist"):
        bench.score_folder(tmp_path / "pred", tmp_path / "masks")
    write_png(tmp_path / "pred" / "a.png", np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match=r"a\.png holds values \[2\]; expected class indices 0 and 1"):
        bench.score_folder(tmp_path / "pred", tmp_path / "masks")
    write_png(tmp_path / "pred" / "a.png", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"pred[/\\]a\.png is 3x2 but .*a\.png is scored at 2x2"):
        bench.score_folder(tmp_path / "pred", tmp_path / "masks")
    write_png(tmp_path / "masks" / "a.png", np.array([[0, 128], [255, 0]]))
    with pytest.raises(ValueError, match=r"masks[/\\]a\.png holds values \[128\]"):
        bench.score_folder(tmp_path / "pred", tmp_path / "masks")
    with pytest.raises(ValueError, match="no mask PNGs"):
        bench.score_folder(tmp_path / "pred", tmp_path / "nothing")


def test_missing_data_says_where_and_how(tmp_path):
    with pytest.raises(ValueError, match=r"no DSB2018 data at .*pass --data PATH"):
        bench.check_data(tmp_path)


def test_limited_data_links_the_first_sorted_ids(tmp_path):
    src = tmp_path / "src"
    for split in ("train", "val"):
        for name in ("c.png", "a.png", "b.png"):
            write_png(src / split / "images" / name, np.zeros((4, 4, 3)))
            write_png(src / split / "masks" / name, np.zeros((4, 4)))
    out = bench.limited_data(src, tmp_path / "out", {"train": 2, "val": None})
    assert sorted(p.name for p in (out / "train" / "images").iterdir()) == ["a.png", "b.png"]
    assert sorted(p.name for p in (out / "train" / "masks").iterdir()) == ["a.png", "b.png"]
    assert len(list((out / "val" / "masks").iterdir())) == 3
    assert (out / "train" / "masks" / "a.png").resolve() == (src / "train" / "masks" / "a.png").resolve()


# --- the ablation's config edits ------------------------------------------------------------------
def recipe(tmp_path, **changes):
    raw = {
        "data": {
            "kind": "folder",
            "classes": ["background", "nucleus"],
            "folder": {"train": str(tmp_path), "val": str(tmp_path), "mask_values": {0: 0, 255: 1}},
        },
        "augment": {
            "train": [
                {"PadIfNeeded": {"min_height": 192, "min_width": 256, "fill_mask": 255}},
                {"RandomCrop": {"height": 192, "width": 256}},
                {"HorizontalFlip": {"p": 0.5}},
                "VerticalFlip",
            ],
            "mix": [{"CutMix": {"p": 0.5}}],
        },
        "inference": {"mode": "slide", "tile": [256, 256], "flip": ["h", "v"]},
        "train": {"ema": 0.999},
        "loss": {"ce": 1.0, "dice": 1.0},
    }
    for section, value in changes.items():
        raw[section] = {**raw.get(section, {}), **value}
    return validate_config(raw)


def test_every_ingredient_of_a_full_recipe_is_found_and_removed(tmp_path):
    cfg = recipe(tmp_path)
    entries = {e["ingredient"]: e for e in bench.ablations(cfg)}
    assert all(e["present"] for e in entries.values())
    for entry in entries.values():
        if "config" in entry:
            validate_config(entry["config"])  # the edited config is one segdet trains
    res = entries["native-resolution crops"]
    assert res["resize"] == (192, 256)
    assert res["config"]["augment"]["train"] == [
        {"Resize": {"height": 192, "width": 256}},
        {"HorizontalFlip": {"p": 0.5}},
        "VerticalFlip",
    ]
    assert res["config"]["augment"]["val"] == [{"Resize": {"height": 192, "width": 256}}]
    assert entries["EMA"]["config"]["train"]["ema"] is None
    assert entries["Dice + CE loss"]["config"]["loss"] == {"ce": 1.0}
    assert entries["CutMix"]["config"]["augment"]["mix"] == []
    assert entries["tiled inference"]["overrides"] == ["inference.mode=whole"]
    assert entries["flip TTA"]["overrides"] == ["inference.flip=[]"]
    assert cfg == recipe(tmp_path)  # the recipe itself is left alone
    for name in ("EMA", "CutMix"):  # each edit changes only its own ingredient
        assert entries[name]["config"]["loss"] == cfg["loss"]
        assert entries[name]["config"]["inference"] == cfg["inference"]


def test_ingredients_the_plan_does_not_use_are_marked_absent(tmp_path):
    cfg = recipe(
        tmp_path,
        augment={"train": [{"Resize": {"height": 256, "width": 256}}], "mix": [], "batch_mix": []},
        inference={"mode": "whole", "tile": None, "flip": []},
        train={"ema": None},
        loss={"ce": 1.0, "dice": 1.0},
    )
    cfg["loss"] = {"ce": 1.0}
    present = {e["ingredient"]: e["present"] for e in bench.ablations(cfg)}
    assert not any(present.values()), present


def test_batch_cutmix_counts_as_cutmix(tmp_path):
    cfg = recipe(tmp_path, augment={"mix": [], "batch_mix": [{"CutMix": {"p": 0.5, "alpha": 1.0}}]})
    entry = next(e for e in bench.ablations(cfg) if e["ingredient"] == "CutMix")
    assert entry["present"] and entry["config"]["augment"]["batch_mix"] == []


def test_report_states_the_goal_honestly(tmp_path):
    def side(miou, dice=0.8, train=100.0, predict=10.0):
        return {
            "miou": miou,
            "fg_dice": dice,
            "iou": {"background": 0.9, "nucleus": 0.7},
            "train_s": train,
            "predict_s": predict,
        }

    results = [
        {"seed": s, "segdet": side(m), "baseline": side(b), "baseline_256": side(b)}
        for s, m, b in [(0, 0.86, 0.82), (1, 0.84, 0.83)]
    ]
    meta = {"smoke": False, "setup": "test"}
    text = bench.write_report(tmp_path, meta, results, None)
    assert "**met** (mean difference +0.0250 over 2 seed(s); 1/2 seeds at or above 0.02)" in text
    assert "| mean ± std | | | +0.0250 ± 0.0212 |" in text
    results[1]["segdet"]["miou"] = 0.82
    text = bench.write_report(tmp_path, meta, results, None)
    assert "**missed** (mean difference +0.0150" in text
    assert "nucleus IoU difference +0.0000 ± 0.0000." in text
    results[0]["segdet"]["iou"] = {"background": 0.99, "nucleus": 0.1}  # a gain bought with the background
    text = bench.write_report(tmp_path, meta, results, None)
    assert "nucleus IoU difference -0.3000 ± 0.4243 (lower: the mean IoU gain is background, not nuclei)." in text
    assert (tmp_path / "results.json").is_file() and (tmp_path / "results.md").read_text() == text
