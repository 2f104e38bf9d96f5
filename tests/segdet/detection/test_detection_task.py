"""The detection task through the real loop, ``segdet eval`` and ``segdet predict``."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from segdet.config import validate_config
from segdet.data import SyntheticShapes
from segdet.engine import evaluate, predict, train
from segdet.task import build_task

TINY_MODEL = {"arch": "fasterrcnn_mobilenet_v3_large_fpn", "min_size": 64, "max_size": 64}


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
        "model": TINY_MODEL,
        "train": {"epochs": 1, "metric": "map50", "progress": False},
    }
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return validate_config(raw)


def test_one_step_train_eval_predict_through_the_loop(tmp_path):
    cfg = _cfg(tmp_path, augment={"mix": [{"MixUp": {"p": 1.0}}]})
    run = train(cfg)
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert len(rows) == 1 and "map50" in rows[0] and "train/loss_classifier" in rows[0]
    assert (run / "weights" / "last.pt").is_file() and (run / "weights" / "best.pt").is_file()

    # segdet eval runs the same validation pass: same numbers as the epoch's row
    metrics, table = evaluate(cfg, run / "weights" / "last.pt")
    for key in ("map", "map50", "map_small", "mar_100"):
        assert metrics[key] == pytest.approx(float(rows[0][key]), abs=1e-5)
    assert "circle" in table and "AP50" in table
    dets = json.loads((run / "eval" / "detections.json").read_text())
    assert isinstance(dets, list) and all(d["category_id"] in (1, 2, 3) for d in dets)
    assert json.loads((run / "eval" / "coco_eval.json").read_text())["stats"]["map50"] == metrics["map50"]

    Image.fromarray(SyntheticShapes(1, 40, 48, split="test")[0]["image"]).save(tmp_path / "x.png")
    predict(cfg, run / "weights" / "last.pt", tmp_path / "x.png", tmp_path / "pred")
    out = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert out["images"][0]["height"] == 40 and [c["name"] for c in out["categories"]] == list(
        SyntheticShapes.BOX_CLASSES
    )
    assert (tmp_path / "pred" / "x.png").is_file()


def test_mixing_switches_off_for_the_last_epochs(tmp_path):
    cfg = _cfg(tmp_path, augment={"mix": [{"MixUp": {"p": 1.0}}], "mix_off_last_epochs": 1}, train={"epochs": 3})
    train_ds, val_ds, _ = build_task(cfg).build_datasets()
    raw = SyntheticShapes(2, 40, 48, seed=0, split="train")[0]
    train_ds.set_epoch(1)
    mixed = train_ds[0]
    assert len(mixed["labels"]) > len(raw["labels"]) and not np.array_equal(mixed["image"], raw["image"])
    train_ds.set_epoch(2)  # the last epoch: clean images
    clean = train_ds[0]
    np.testing.assert_array_equal(clean["image"], raw["image"])
    np.testing.assert_array_equal(clean["bboxes"], raw["bboxes"])
    assert "mask" not in clean and val_ds[1]["image_id"] == 1


def test_coco_data_keeps_original_category_and_image_ids(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    ann = {
        "images": [{"id": 40, "file_name": "a.png", "height": 20, "width": 30}],
        "categories": [{"id": 9, "name": "b"}, {"id": 5, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 40, "category_id": 9, "bbox": [2, 2, 10, 8], "iscrowd": 0, "area": 80}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    paths = {
        "train_json": str(tmp_path / "ann.json"),
        "train_images": str(tmp_path),
        "val_json": str(tmp_path / "ann.json"),
        "val_images": str(tmp_path),
    }
    task = build_task(_cfg(tmp_path, data={"kind": "coco", "coco": paths}))
    _, val, spec = task.build_datasets()
    assert spec.classes == ("a", "b") and spec.cat_ids == (5, 9)
    assert val[0]["image_id"] == 40 and val[0]["labels"].tolist() == [1]
    ev = task.make_evaluator(spec, None)
    assert ev.cat_ids == [5, 9]


def test_unknown_names_fail_before_reading_data(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'retinanet_resnet50_fpn'"):
        build_task(_cfg(tmp_path, model={"arch": "retinanet_resnet50"})).check()
    with pytest.raises(ValueError, match="unknown mixer 'Mosiac'"):
        build_task(_cfg(tmp_path, augment={"mix": [{"Mosiac": {}}]})).check()
    with pytest.raises(ValueError, match="train.metric 'miou' is not a detection metric"):
        build_task(_cfg(tmp_path, train={"metric": "miou"})).check()
    with pytest.raises(ValueError, match="data.classes has 2 names but synthetic data has 3 classes"):
        build_task(_cfg(tmp_path, data={"classes": ["a", "b"]})).build_datasets()


def test_instance_masks_travel_only_when_needed(tmp_path):
    plain, _, _ = build_task(_cfg(tmp_path)).build_datasets()
    assert "masks" not in plain[0]
    pasted, _, _ = build_task(_cfg(tmp_path, augment={"mix": [{"CopyPaste": {"p": 1.0}}]})).build_datasets()
    s = pasted[0]
    assert s["masks"].shape == (len(s["bboxes"]), 40, 48)
