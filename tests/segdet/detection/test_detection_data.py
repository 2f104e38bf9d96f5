"""build_detection_data: a split without a single box stops before any training."""

import json

import numpy as np
import pytest
from PIL import Image

from segdet.config import validate_config
from segdet.detection.data import build_detection_data

BOX = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 8], "iscrowd": 0, "area": 80}


def _coco_file(path, annotations):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path.parent / "a.png")
    ann = {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": annotations,
    }
    path.write_text(json.dumps(ann))
    return str(path)


def _build(tmp_path, train_anns, val_anns):
    coco = {
        "train_json": _coco_file(tmp_path / "train.json", train_anns),
        "val_json": _coco_file(tmp_path / "val.json", val_anns),
        "train_images": str(tmp_path),
        "val_images": str(tmp_path),
    }
    cfg = validate_config({"task": "detection", "data": {"kind": "coco", "coco": coco}, "train": {"metric": "map50"}})
    return build_detection_data(cfg["data"], cfg["augment"], seed=0, epochs=1, instance_masks=False)


def test_validation_set_without_boxes_stops_before_training(tmp_path):
    with pytest.raises(
        ValueError, match=r"the val set data\.coco\.val_json = .*val\.json holds no box in its 1 images"
    ):
        _build(tmp_path, [BOX], [])
    crowd_only = [{**BOX, "iscrowd": 1}]  # crowd regions are never boxes to find
    with pytest.raises(ValueError, match=r"every COCO metric would be -1 and best\.pt would be picked on nothing"):
        _build(tmp_path, [BOX], crowd_only)


def test_training_set_without_boxes_stops(tmp_path):
    with pytest.raises(ValueError, match=r"the train set data\.coco\.train_json = .*train\.json holds no box"):
        _build(tmp_path, [], [BOX])
    train, val, spec = _build(tmp_path, [BOX], [BOX])
    assert spec.classes == ("cell",) and len(val[0]["labels"]) == 1
