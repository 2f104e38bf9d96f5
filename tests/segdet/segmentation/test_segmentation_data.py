"""build_segmentation_data from config dicts: kinds, pipelines, mixers through augment.MixDataset."""

import copy
import json

import numpy as np
import pytest
from PIL import Image

import augment
from segdet.data import SyntheticShapes
from segdet.segmentation.collate import collate_segmentation
from segdet.segmentation.data import ValidationSet, build_segmentation_data


def _build(cfg):
    """build_segmentation_data on a whole config; returns the class names in place of the spec."""
    train, val, spec = build_segmentation_data(cfg["data"], cfg["augment"], cfg.get("seed", 0))
    return train, val, spec.classes


BASE = {
    "seed": 0,
    "data": {
        "kind": "synthetic",
        "classes": None,
        "ignore_index": 255,
        "synthetic": {"train_size": 6, "val_size": 3, "height": 32, "width": 48, "seed": 0},
        "folder": {"train": None, "val": None, "mask_values": None},
        "coco": {"train_json": None, "train_images": None, "val_json": None, "val_images": None},
    },
    "augment": {
        "train": [{"HorizontalFlip": {"p": 0.5}}],
        "val": [],
        "mix": [{"CutMix": {"p": 1.0}}],
        "post": [{"VerticalFlip": {"p": 0.5}}],
    },
}


def _cfg(**changes):
    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split("__")
        for p in path:
            node = node[p]
        node[last] = value
    return cfg


def test_synthetic_train_is_mixdataset_and_val_is_plain():
    train, val, classes = _build(_cfg())
    assert classes == SyntheticShapes.CLASSES
    assert isinstance(train, augment.MixDataset) and train.classes == classes and len(train) == 6
    assert isinstance(val, ValidationSet) and val.classes == classes and len(val) == 3
    assert val[2]["index"] == 2 and "full_mask" not in val[2]  # nothing resized: the mask is the annotation
    assert len(train.mixers) == 1 and isinstance(train.mixers[0], augment.CutMix)
    assert train.mixers[0].num_classes == 4 and train.mixers[0].ignore_index == 255
    s = train[0]
    assert s["image"].shape == (32, 48, 3) and s["mask"].shape == (32, 48)
    assert len(s["bboxes"]) == len(s["labels"]) == len(s["masks"])
    # validation is exactly the val split, unchanged by an empty pipeline
    ref = SyntheticShapes(3, 32, 48, seed=0, split="val")[1]
    np.testing.assert_array_equal(val[1]["image"], ref["image"])
    np.testing.assert_array_equal(val[1]["mask"], ref["mask"])
    batch = collate_segmentation([train[i] for i in range(3)], ignore_index=255, num_classes=4)
    assert batch["image"].shape == (3, 3, 32, 64)


def test_same_seed_same_training_samples_and_soft_masks_with_mixup():
    cfg = _cfg(augment__mix=[{"MixUp": {"p": 1.0}}])
    a, _, _ = _build(cfg)
    b, _, _ = _build(cfg)
    sa, sb = a[2], b[2]
    np.testing.assert_array_equal(sa["image"], sb["image"])
    assert sa["mask"].shape == (32, 48, 4) and a.mixers[0].num_classes == 4
    assert "weights" in sa and len(sa["weights"]) == len(sa["bboxes"])


def test_unknown_mixer_and_bad_mixer_argument():
    with pytest.raises(ValueError, match=r"augment\.mix\[0\]: unknown mixer 'Cutmix' \(did you mean 'CutMix'"):
        _build(_cfg(augment__mix=[{"Cutmix": {}}]))
    with pytest.raises(ValueError, match=r"augment\.mix\[0\]: CutMix has no argument 'alpah' \(did you mean 'alpha'"):
        _build(_cfg(augment__mix=[{"CutMix": {"alpah": 1.0}}]))
    with pytest.raises(ValueError, match=r"augment\.mix\[0\]: bad arguments for CutMix"):
        _build(_cfg(augment__mix=[{"CutMix": {"p": 2.0}}]))


def test_unknown_transform_and_kind_and_class_count():
    with pytest.raises(ValueError, match=r"augment\.post\[0\]: unknown albumentations transform 'VerticalFlp'"):
        _build(_cfg(augment__post=[{"VerticalFlp": {}}]))
    with pytest.raises(ValueError, match="data.kind 'voc' is not a segmentation dataset kind"):
        _build(_cfg(data__kind="voc"))
    with pytest.raises(ValueError, match="data.classes has 2 names but synthetic data has 4 classes"):
        _build(_cfg(data__classes=["a", "b"]))
    _, _, classes = _build(_cfg(data__classes=["bg", "c", "s", "t"]))
    assert classes == ("bg", "c", "s", "t")


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (tmp_path / split / sub).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(
                tmp_path / split / "images" / f"{k}.png"
            )
            Image.fromarray((rng.integers(0, 2, (16, 20)) * 255).astype(np.uint8)).save(
                tmp_path / split / "masks" / f"{k}.png"
            )
    return _cfg(
        data__kind="folder",
        data__classes=["bg", "fg"],
        data__folder={"train": str(tmp_path / "train"), "val": str(tmp_path / "val"), "mask_values": {255: 1}},
    )


def test_folder_kind(tmp_path):
    train, val, classes = _build(_folder(tmp_path))
    assert classes == ("bg", "fg") and val.classes == classes
    assert set(np.unique(val[0]["mask"]).tolist()) <= {0, 1}
    assert train[0]["image"].shape == (16, 20, 3)


def test_coco_kind(tmp_path):
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "a.png")
    ann = {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 12}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 4,
                "iscrowd": 0,
                "bbox": [1, 1, 4, 4],
                "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]],
            }
        ],
        "categories": [{"id": 4, "name": "cell"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    paths = {
        "train_json": str(tmp_path / "ann.json"),
        "train_images": str(tmp_path),
        "val_json": str(tmp_path / "ann.json"),
        "val_images": str(tmp_path),
    }
    train, val, classes = _build(_cfg(data__kind="coco", data__coco=paths, augment__mix=[]))
    assert classes == ("background", "cell")
    assert val[0]["mask"][2, 2] == 1 and val[0]["mask"][8, 10] == 0
    assert train[0]["mask"].shape == (10, 12)


def test_copypaste_needs_instance_masks_in_the_training_samples(tmp_path):
    # a folder of semantic masks has no instances: CopyPaste would paste nothing, silently
    cfg = _folder(tmp_path)
    cfg["augment"]["mix"] = [{"CutMix": {"p": 0.5}}, {"CopyPaste": {"p": 1.0}}]
    with pytest.raises(
        ValueError, match=r"augment\.mix\[1\]: CopyPaste pastes objects by their instance masks.*data\.kind folder"
    ):
        _build(cfg)
    # synthetic samples carry instance masks, and CopyPaste at p=1 changes masks (not every one:
    # a pasted shape may land on its own class, or the partner drawn may be the sample itself)
    train, _, _ = _build(_cfg(augment__mix=[{"CopyPaste": {"p": 1.0}}], augment__train=[], augment__post=[]))
    plain, _, _ = _build(_cfg(augment__mix=[], augment__train=[], augment__post=[]))
    assert "masks" in plain[0]
    changed = [not np.array_equal(train[i]["mask"], plain[i]["mask"]) for i in range(len(plain))]
    assert any(changed)
