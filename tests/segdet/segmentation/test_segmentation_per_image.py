"""Scores at the annotation's resolution after a resizing validation pipeline, per-image scores, worst.png."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from segdet.cli import main
from segdet.data import build_pipeline
from segdet.segmentation import SegmentationEvaluator
from segdet.segmentation.collate import collate_segmentation
from segdet.segmentation.data import ValidationSet
from segdet.segmentation.worst import worst_entries

IGNORE = 255


class Blobs:
    """Source dataset: images of the given sizes with discs (class 1) and squares (class 2), some pixels ignored."""

    def __init__(self, sizes, seed=0):
        rng = np.random.default_rng(seed)
        self.samples = []
        for h, w in sizes:
            yy, xx = np.mgrid[:h, :w]
            mask = np.zeros((h, w), np.uint8)
            for _ in range(12):
                cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(h // 40 + 2, h // 8 + 3)
                if rng.random() < 0.5:
                    mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
                else:
                    mask[(abs(yy - cy) < r) & (abs(xx - cx) < r)] = 2
            mask[rng.random((h, w)) < 0.01] = IGNORE
            image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
            image[mask == 1, 0] = 220
            image[mask == 2, 1] = 220
            self.samples.append({"image": image, "mask": mask})
        self.names = [f"blob_{i}.png" for i in range(len(sizes))]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return {k: v.copy() for k, v in self.samples[i].items()}


def _model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    return net.eval()


def test_a_resizing_validation_is_scored_at_the_annotation_against_a_float64_reference():
    # 1040x1388 (1.4 Mpx, shrunk 4.3x by the pipeline) and 256x320 (already at the size: not resized)
    source = Blobs([(1040, 1388), (256, 320)])
    val = ValidationSet(source, build_pipeline([{"LongestMaxSize": {"max_size": 320}}], boxes=True, key="augment.val"))
    samples = [val[0], val[1]]
    assert samples[0]["image"].shape[:2] == (240, 320) and samples[0]["full_mask"].shape == (1040, 1388)
    batch = collate_segmentation(samples, ignore_index=IGNORE, num_classes=3)
    model = _model()
    ev = SegmentationEvaluator(3, IGNORE, ["bg", "disc", "square"], "cpu")
    with torch.no_grad():
        ev.update(model, batch)
        logits = model(batch["image"]).double().numpy()

    # reference: each image's logits cut from the padded batch, resized by OpenCV in float64
    # (bilinear, half-pixel centres), argmax, counted with numpy against the source mask
    expected = np.zeros((3, 3), np.int64)
    per_image = []
    for i, s in enumerate(samples):
        h, w = s["image"].shape[:2]
        truth = source[i]["mask"]
        own = logits[i, :, :h, :w].transpose(1, 2, 0)
        if own.shape[:2] != truth.shape:
            own = cv2.resize(own, truth.shape[::-1], interpolation=cv2.INTER_LINEAR)
        full = own
        pred = full.argmax(-1)
        keep = truth != IGNORE
        cm = np.bincount(truth[keep].astype(np.int64) * 3 + pred[keep], minlength=9).reshape(3, 3)
        expected += cm
        per_image.append(cm)
    got = ev.confusion().numpy()
    assert got.sum() == expected.sum() == sum(int((source[i]["mask"] != IGNORE).sum()) for i in range(2))
    # float32 against float64 interpolation may flip a pixel at an exact tie of two logits, no more
    assert np.abs(got - expected).sum() <= 2e-5 * expected.sum()
    for entry, cm in zip(ev.per_image(source.names), per_image):
        tp, gt, pr = np.diag(cm), cm.sum(1), cm.sum(0)
        assert entry["iou"]["disc"] == pytest.approx(tp[1] / (gt[1] + pr[1] - tp[1]), abs=1e-4)
    assert [e["name"] for e in ev.per_image(source.names)] == ["blob_0.png", "blob_1.png"]


def test_a_validation_pipeline_that_crops_or_moves_pixels_is_one_clear_error():
    source = Blobs([(64, 64)])
    for step in ({"CenterCrop": {"height": 32, "width": 32}}, {"HorizontalFlip": {"p": 1.0}}):
        with pytest.raises(ValueError, match=f"augment.val: {next(iter(step))} moves, crops or pads pixels"):
            ValidationSet(source, build_pipeline([step], boxes=True, key="augment.val"))
    # pixel-level transforms and no transform at all keep the mask as it is: no full_mask
    pixel = ValidationSet(source, build_pipeline([{"ToGray": {"p": 1.0}}], boxes=True, key="augment.val"))
    assert "full_mask" not in pixel[0] and pixel[0]["index"] == 0


def _naive_scores(pred, truth, c):
    """IoU per class of one image, pixel by pixel (NaN where the class is in neither)."""
    tp, fp, fn = [0] * c, [0] * c, [0] * c
    for p, t in zip(pred.ravel().tolist(), truth.ravel().tolist()):
        if t == IGNORE:
            continue
        if p == t:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    return [tp[k] / (tp[k] + fp[k] + fn[k]) if tp[k] + fp[k] + fn[k] else math.nan for k in range(c)]


def test_per_image_scores_match_a_naive_loop_in_dataset_order_and_repeats_count_once():
    gen = torch.Generator().manual_seed(3)
    ev = SegmentationEvaluator(4, IGNORE, None, "cpu")
    batches = []
    for index in ([4, 0, 2], [1, 3], [3]):  # the last repeats image 3, as a padded DistributedSampler does
        logits = torch.randn(len(index), 4, 12, 10, generator=gen)
        mask = torch.randint(0, 4, (len(index), 12, 10), generator=gen)
        mask[:, :2] = IGNORE
        if index == [3]:
            logits, mask = batches[-1][0][1:], batches[-1][1][1:]
        batches.append((logits, mask))
        ev.update_from_logits(logits, mask, torch.tensor(index))
    entries = ev.per_image()
    assert [e["index"] for e in entries] == [0, 1, 2, 3, 4]
    seen = {}
    for (logits, mask), index in zip(batches, ([4, 0, 2], [1, 3], [3])):
        for row, i in enumerate(index):
            seen[i] = _naive_scores(logits[row].argmax(0).numpy(), mask[row].numpy(), 4)
    for entry in entries:
        ref = seen[entry["index"]]
        got = [entry["iou"][f"class_{k}"] for k in range(4)]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
        assert entry["miou"] == pytest.approx(np.nanmean(ref), abs=1e-12)


def test_worst_entries_are_the_lowest_scores_and_skip_images_without_one():
    entries = [{"index": i, "miou": v} for i, v in enumerate([0.9, math.nan, 0.2, 0.5, 0.2])]
    assert [e["index"] for e in worst_entries(entries, 3)] == [2, 4, 3]
    assert worst_entries(entries, 0) == [] and len(worst_entries(entries, 10)) == 4


def _folder_config(root: Path) -> Path:
    rng = np.random.default_rng(1)
    for split, sizes in (("train", [(48, 64)] * 4), ("val", [(48, 64), (40, 40), (96, 72)])):
        for d in ("images", "masks"):
            (root / split / d).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            yy, xx = np.mgrid[:h, :w]
            disc = (yy - rng.integers(10, h - 10)) ** 2 + (xx - rng.integers(10, w - 10)) ** 2 < 49
            image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            image[disc] = 200
            Image.fromarray(image).save(root / split / "images" / f"cell_{split}{i}.png")
            Image.fromarray((disc * 255).astype(np.uint8)).save(root / split / "masks" / f"cell_{split}{i}.png")
    cfg = {
        "task": "segmentation",
        "data": {
            "kind": "folder",
            "classes": ["background", "cell"],
            "batch_size": 2,
            "num_workers": 0,
            "folder": {"train": str(root / "train"), "val": str(root / "val"), "mask_values": {0: 0, 255: 1}},
        },
        "augment": {"train": [], "val": [{"Resize": {"height": 32, "width": 32}}], "mix": []},
        "model": {"encoder": "resnet18"},
        "train": {"epochs": 1, "device": "cpu", "progress": False},
        "output_dir": str(root / "run"),
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_eval_lists_every_image_by_file_name_and_pictures_the_worst(tmp_path, capsys):
    config = _folder_config(tmp_path)
    assert main(["train", str(config)]) == 0
    ckpt = tmp_path / "run" / "weights" / "best.pt"
    assert main(["eval", str(config), "--checkpoint", str(ckpt), "--worst", "2"]) == 0
    out = capsys.readouterr().out
    assert "worst.png" in out
    doc = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    names = [e["name"] for e in doc["per_image"]]
    assert names == ["cell_val0.png", "cell_val1.png", "cell_val2.png"]
    # scored at the annotation's size although the pipeline resized to 32x32: every pixel counted
    assert sum(map(sum, doc["confusion_matrix"]["counts"])) == 48 * 64 + 40 * 40 + 96 * 72
    picture = np.asarray(Image.open(tmp_path / "run" / "eval" / "worst.png"))
    assert picture.shape[0] == 2 * (256 + 22) + 2  # two captioned rows, one gap between them
    assert main(["eval", str(config), "--checkpoint", str(ckpt), "--worst", "0", "--output", str(tmp_path / "e0")]) == 0
    assert not (tmp_path / "e0" / "worst.png").exists() and (tmp_path / "e0" / "metrics.json").exists()
    assert main(["eval", str(config), "--checkpoint", str(ckpt), "--worst", "-1"]) == 2
    assert "--worst must be a whole number >= 0" in capsys.readouterr().err
