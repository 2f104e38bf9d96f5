"""Sources in each data.mode: multilabel folders, binary folder checks, COCO categories and synthetic shapes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segdet.config import validate_config
from segdet.data import CocoDataset, FolderMultilabel, FolderSegmentation, SyntheticShapes
from segdet.data.sources import open_sources

IGNORE = 255


def _write_multilabel(root, stems, classes, rng, h=12, w=16):
    """images/<stem>.png and masks/<class>/<stem>.png (0/255, overlapping); returns the masks by stem."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    truth = {}
    for stem in stems:
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.png")
        truth[stem] = rng.integers(0, 2, (h, w, len(classes))).astype(bool)
        for k, name in enumerate(classes):
            (root / "masks" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(truth[stem][:, :, k].astype(np.uint8) * 255).save(root / "masks" / name / f"{stem}.png")
    return truth


def test_reads_one_mask_per_class_per_image(tmp_path):
    rng = np.random.default_rng(0)
    truth = _write_multilabel(tmp_path, ["b", "a"], ["nucleus", "cell"], rng)
    ds = FolderMultilabel(tmp_path, ignore_index=IGNORE)
    assert ds.classes == ("cell", "nucleus")  # the folders, sorted by name
    assert len(ds) == 2 and [p.stem for p in ds.images] == ["a", "b"]
    for i, stem in enumerate(["a", "b"]):
        s = ds[i]
        assert s["mask"].shape == (12, 16, 2) and s["mask"].dtype == np.uint8
        np.testing.assert_array_equal(s["mask"][:, :, 0], truth[stem][:, :, 1])  # cell
        np.testing.assert_array_equal(s["mask"][:, :, 1], truth[stem][:, :, 0])  # nucleus
        assert s["bboxes"].shape == (0, 4) and s["labels"].shape == (0,)
    overlap = ds[0]["mask"].all(axis=2)
    assert overlap.any()  # classes overlap


def test_classes_given_pick_the_folders_and_their_order(tmp_path):
    rng = np.random.default_rng(1)
    truth = _write_multilabel(tmp_path, ["x"], ["a", "b", "c"], rng)
    ds = FolderMultilabel(tmp_path, classes=["c", "a"])
    assert ds.classes == ("c", "a")
    np.testing.assert_array_equal(ds[0]["mask"], truth["x"][:, :, [2, 0]].astype(np.uint8))


def test_nonzero_is_present(tmp_path):
    rng = np.random.default_rng(2)
    _write_multilabel(tmp_path, ["x"], ["a"], rng)
    raw = np.array([[0, 1, 7, 255]] * 4, np.uint8)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "images" / "x.png")
    Image.fromarray(raw).save(tmp_path / "masks" / "a" / "x.png")
    assert FolderMultilabel(tmp_path)[0]["mask"][0, :, 0].tolist() == [0, 1, 1, 1]


def test_a_missing_class_folder_is_one_error_naming_it(tmp_path):
    rng = np.random.default_rng(3)
    _write_multilabel(tmp_path, ["x"], ["a"], rng)
    folder = tmp_path / "masks" / "b"
    with pytest.raises(ValueError, match=rf"class folder {re.escape(str(folder))} does not exist; .*remove 'b'"):
        FolderMultilabel(tmp_path, classes=["a", "b"])


def test_missing_and_extra_masks_and_sizes_are_named(tmp_path):
    rng = np.random.default_rng(4)
    _write_multilabel(tmp_path, ["x", "y"], ["a", "b"], rng)
    (tmp_path / "masks" / "b" / "y.png").unlink()
    with pytest.raises(ValueError, match=r"images/y.png has no mask in .*masks/b \(expected .*masks/b/y.png\)"):
        FolderMultilabel(tmp_path)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "masks" / "b" / "y.png")
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "masks" / "a" / "z.png")
    with pytest.raises(ValueError, match=r"mask .*masks/a/z.png has no image"):
        FolderMultilabel(tmp_path)
    (tmp_path / "masks" / "a" / "z.png").unlink()
    Image.fromarray(np.zeros((5, 16), np.uint8)).save(tmp_path / "masks" / "a" / "x.png")
    with pytest.raises(ValueError, match=r"mask .*masks/a/x.png is 5x16 but image .*x.png is 12x16"):
        FolderMultilabel(tmp_path)
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        FolderMultilabel(empty)


def _cfg(tmp_path, kind, mode, **data):
    return validate_config({"task": "segmentation", "data": {"kind": kind, "mode": mode, **data}}, base_dir=tmp_path)


def test_open_sources_in_multilabel_mode(tmp_path):
    rng = np.random.default_rng(5)
    _write_multilabel(tmp_path / "train", ["a", "b"], ["x", "y"], rng)
    _write_multilabel(tmp_path / "val", ["c"], ["x", "y"], rng)
    cfg = _cfg(
        tmp_path, "folder", "multilabel", folder={"train": str(tmp_path / "train"), "val": str(tmp_path / "val")}
    )
    sources = open_sources(cfg["data"], target="mask")
    assert sources.spec.classes == ("x", "y") and sources.spec.mode == "multilabel"
    assert sources.spec.out_channels == 2 and sources.val[0]["mask"].shape == (12, 16, 2)
    cfg["data"]["folder"]["mask_values"] = {255: 1}
    with pytest.raises(ValueError, match="data.folder.mask_values does not apply to data.mode multilabel"):
        open_sources(cfg["data"], target="mask")


def _write_binary(root, stems, rng, values):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for stem in stems:
        Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.png")
        mask = np.asarray(values, np.uint8)[rng.integers(0, len(values), (8, 10))]
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")


@pytest.mark.parametrize("scan_masks", [True, False])
def test_binary_masks_with_other_values_name_the_file_and_the_values(tmp_path, scan_masks):
    rng = np.random.default_rng(6)
    _write_binary(tmp_path, ["a"], rng, (0, 1))
    _write_binary(tmp_path, ["x"], rng, (0, 1, 2))
    path = tmp_path / "masks" / "x.png"
    expected = (
        rf"^data.mode is binary but {re.escape(str(path))} holds values \[0, 1, 2\]; map them to 0 and 1 with "
        r"data.folder.mask_values .* or use data.mode: multiclass$"
    )
    if scan_masks:  # checked at construction, while the masks are scanned
        with pytest.raises(ValueError, match=expected):
            FolderSegmentation(tmp_path, mode="binary", scan_masks=True)
    else:  # checked when the mask is loaded, in the same pass
        ds = FolderSegmentation(tmp_path, mode="binary", scan_masks=False)
        assert ds.classes == ("background", "foreground")
        ds[0]
        with pytest.raises(ValueError, match=expected):
            ds[1]


def test_binary_mapping_and_ignore_pass(tmp_path):
    rng = np.random.default_rng(7)
    _write_binary(tmp_path, ["a"], rng, (0, 128, 255))
    ds = FolderSegmentation(tmp_path, mode="binary", mask_values={128: 1}, ignore_index=IGNORE)
    assert set(np.unique(ds[0]["mask"]).tolist()) == {0, 1, IGNORE}
    with pytest.raises(ValueError, match=r"holds values \[0, 2\] after data.folder.mask_values"):
        FolderSegmentation(tmp_path, mode="binary", mask_values={128: 2, 255: 0})


def test_binary_needs_two_classes(tmp_path):
    rng = np.random.default_rng(8)
    for split in ("train", "val"):
        _write_binary(tmp_path / split, ["a"], rng, (0, 1, 2))
    cfg = _cfg(
        tmp_path,
        "folder",
        "binary",
        classes=["a", "b", "c"],
        folder={"train": str(tmp_path / "train"), "val": str(tmp_path / "val")},
    )
    with pytest.raises(ValueError, match=r"data.mode is binary but the folder .* has 3 classes \['a', 'b', 'c'\]"):
        open_sources(cfg["data"], target="mask")


def test_synthetic_binary_is_background_against_every_shape(tmp_path):
    cfg = _cfg(tmp_path, "synthetic", "binary", synthetic={"train_size": 3, "val_size": 2, "height": 32, "width": 32})
    sources = open_sources(cfg["data"], target="mask")
    assert sources.spec.classes == ("background", "shape") and sources.spec.mode == "binary"
    plain = SyntheticShapes(3, 32, 32, split="train")
    for i in range(3):
        np.testing.assert_array_equal(sources.train[i]["mask"], (plain[i]["mask"] > 0).astype(np.uint8))
        np.testing.assert_array_equal(sources.train[i]["image"], plain[i]["image"])
    cfg = _cfg(tmp_path, "synthetic", "multilabel")
    with pytest.raises(ValueError, match="data.kind synthetic has no multilabel masks"):
        open_sources(cfg["data"], target="mask")


def test_detection_refuses_a_segmentation_mode(tmp_path):
    cfg = _cfg(tmp_path, "synthetic", "binary")
    with pytest.raises(ValueError, match="data.mode is binary but data.mode is a segmentation setting"):
        open_sources(cfg["data"], target="boxes")


H, W = 16, 20


def _coco(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    big, small, crowd, second = (np.zeros((H, W), np.uint8) for _ in range(4))
    big[2:12, 2:14] = 1
    second[0:4, 12:20] = 1  # a second car, overlapping the first: the channel is their union
    small[5:9, 6:18] = 1  # overlaps big: another category
    crowd[10:15, 0:8] = 1  # crowd of the big one's category, partly under it

    def rle(m):
        r = mask_utils.encode(np.asfortranarray(m))
        r["counts"] = r["counts"].decode()
        return r

    anns = [
        {"id": 1, "image_id": 1, "category_id": 4, "iscrowd": 0, "bbox": [2, 2, 12, 10], "segmentation": rle(big)},
        {"id": 2, "image_id": 1, "category_id": 9, "iscrowd": 0, "bbox": [6, 5, 12, 4], "segmentation": rle(small)},
        {"id": 3, "image_id": 1, "category_id": 4, "iscrowd": 1, "bbox": [0, 10, 8, 5], "segmentation": rle(crowd)},
        {"id": 5, "image_id": 1, "category_id": 4, "iscrowd": 0, "bbox": [12, 0, 8, 4], "segmentation": rle(second)},
    ]
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "annotations": anns,
        "categories": [{"id": 9, "name": "wheel"}, {"id": 4, "name": "car"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    cars = (big | second).astype(bool)
    return tmp_path / "ann.json", tmp_path / "images", cars, small.astype(bool), crowd.astype(bool)


def test_coco_multilabel_is_one_union_mask_per_category(tmp_path):
    path, images, big, small, crowd = _coco(tmp_path)
    ds = CocoDataset(path, images, multilabel=True, ignore_index=IGNORE)
    assert ds.classes == ("car", "wheel")  # categories by id, no background
    mask = ds[0]["mask"]
    assert mask.shape == (H, W, 2) and mask.dtype == np.uint8
    car = np.where(big, 1, np.where(crowd, IGNORE, 0))
    np.testing.assert_array_equal(mask[:, :, 0], car)
    np.testing.assert_array_equal(mask[:, :, 1], small.astype(np.uint8))
    assert (mask[:, :, 0] == 1)[small].any()  # the overlap keeps both classes
    with pytest.raises(ValueError, match=r"multilabel=True\) describes the semantic mask"):
        CocoDataset(path, images, with_mask=False, with_boxes=True, multilabel=True)


def test_coco_sources_per_mode(tmp_path):
    path, images, *_ = _coco(tmp_path)
    coco = {"train_json": str(path), "train_images": str(images), "val_json": str(path), "val_images": str(images)}
    spec = open_sources(_cfg(tmp_path, "coco", "multilabel", coco=coco)["data"], target="mask").spec
    assert spec.classes == ("car", "wheel") and spec.mode == "multilabel"
    with pytest.raises(
        ValueError, match=r"data.mode is binary but .*ann.json \(background \+ categories\) has 3 classes"
    ):
        open_sources(_cfg(tmp_path, "coco", "binary", coco=coco)["data"], target="mask")
