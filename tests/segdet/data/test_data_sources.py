"""open_sources: checks across the config and the data that no single dataset can make."""

from __future__ import annotations

import json

import pytest

from segdet.config import validate_config
from segdet.data.sources import open_sources


def _data(**data):
    return validate_config({"data": {"kind": "synthetic", **data}})["data"]


@pytest.mark.parametrize("ignore", [0, 2, 3])
def test_ignore_index_that_is_a_class_index_is_refused(ignore):
    names = ("background", "circle", "square", "triangle")
    with pytest.raises(ValueError, match=rf"data\.ignore_index = {ignore} is class {ignore} \('{names[ignore]}'\)"):
        open_sources(_data(ignore_index=ignore), target="mask")
    assert open_sources(_data(ignore_index=4), target="mask").spec.classes == names  # outside 0..3: fine
    assert open_sources(_data(ignore_index=-1), target="mask").spec.classes == names


def test_ignore_index_is_checked_against_data_classes_before_any_file_is_read(tmp_path):
    folders = {"train": "x", "val": "x"}  # they do not exist: the ignore_index error comes first
    data = validate_config(
        {"data": {"kind": "folder", "classes": ["bg", "road"], "ignore_index": 1, "folder": folders}}, base_dir=tmp_path
    )["data"]
    with pytest.raises(ValueError, match=r"data\.ignore_index = 1 is class 1 \('road'\).*e\.g\. 255"):
        open_sources(data, target="mask")


def test_ignore_index_does_not_matter_for_boxes():
    assert open_sources(_data(ignore_index=1), target="boxes").spec.num_classes == 3


def _coco_split(folder, annotations):
    from PIL import Image

    folder.mkdir()
    Image.new("RGB", (16, 12)).save(folder / "a.png")
    image = {"id": 1, "file_name": "a.png", "height": 12, "width": 16}
    cats = [{"id": 1, "name": "cell"}]
    (folder / "ann.json").write_text(json.dumps({"images": [image], "annotations": annotations, "categories": cats}))
    return {"train_json": str(folder / "ann.json"), "train_images": str(folder)}


def _coco_data(tmp_path, train_anns, val_anns):
    train, val = _coco_split(tmp_path / "train", train_anns), _coco_split(tmp_path / "val", val_anns)
    coco = {**train, "val_json": val["train_json"], "val_images": val["train_images"]}
    return validate_config({"data": {"kind": "coco", "coco": coco}})["data"]


CELL = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [2, 2, 6, 6]}
CELL["segmentation"] = [[2, 2, 8, 2, 8, 8, 2, 8]]


def test_coco_segmentation_without_training_annotations_stops(tmp_path):
    with pytest.raises(ValueError, match=r"data\.coco\.train_json .*train/ann\.json has no annotations"):
        open_sources(_coco_data(tmp_path, [], [CELL]), target="mask")


def test_coco_segmentation_without_validation_annotations_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"data\.coco\.val_json .*val/ann\.json has no annotations: its 1 images"):
        sources = open_sources(_coco_data(tmp_path, [CELL], []), target="mask")
    assert not sources.val[0]["mask"].any()  # all background, scored as such
