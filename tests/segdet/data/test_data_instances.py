"""Instance data in: instance-id PNG folders and YOLO polygon labels, against naive references and pycocotools."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segdet.data.folder_instances import FolderInstances, instance_boxes
from segdet.data.sources import open_sources
from segdet.data.synthetic import boxes_from_masks
from segdet.data.yolo import YoloDataset, parse_yolo_file


def _write_folder(root, stems_ids, value=90):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "instances").mkdir(parents=True, exist_ok=True)
    for stem, ids in stems_ids.items():
        h, w = ids.shape
        Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(ids.astype(np.uint16)).save(root / "instances" / f"{stem}.png")


def _ids(h=20, w=30):
    ids = np.zeros((h, w), np.uint16)
    ids[2:6, 3:9] = 7
    ids[10:19, 1:4] = 300  # ids need not be contiguous, and exceed uint8
    ids[12:14, 20:29] = 3
    ids[0, 29] = 1000  # a one-pixel object at the corner
    return ids


def test_instance_boxes_equal_boxes_of_the_naive_masks():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=(17, 23)) * rng.integers(0, 2, size=(17, 23))
    found, boxes = instance_boxes(ids)
    expect_ids = np.array(sorted(set(ids.ravel().tolist()) - {0}))
    np.testing.assert_array_equal(found, expect_ids)
    np.testing.assert_array_equal(boxes, boxes_from_masks((ids[None] == expect_ids[:, None, None]).astype(np.uint8)))
    empty_ids, empty_boxes = instance_boxes(np.zeros((4, 5), np.uint16))
    assert empty_ids.shape == (0,) and empty_boxes.shape == (0, 4)


def test_folder_instances_one_class(tmp_path):
    ids = _ids()
    _write_folder(tmp_path, {"a": ids, "b": np.zeros((8, 9), np.uint16)})
    ds = FolderInstances(tmp_path)
    assert ds.classes == ("object",) and len(ds) == 2 and ds.num_boxes == 4
    s = ds[0]
    order = np.array([3, 7, 300, 1000])
    expect = (ids[None] == order[:, None, None]).astype(np.uint8)
    assert s["masks"].dtype == np.uint8 and s["masks"].shape == (4, 20, 30)
    np.testing.assert_array_equal(s["masks"], expect)
    np.testing.assert_array_equal(s["bboxes"], boxes_from_masks(expect))
    np.testing.assert_array_equal(s["bboxes"][3], [29, 0, 30, 1])
    assert s["labels"].tolist() == [0, 0, 0, 0] and s["image"].shape == (20, 30, 3)
    blank = ds[1]
    assert blank["bboxes"].shape == (0, 4) and blank["masks"].shape == (0, 8, 9)
    assert "masks" not in FolderInstances(tmp_path, with_masks=False)[0]
    assert FolderInstances(tmp_path, classes=["nucleus"]).classes == ("nucleus",)
    with pytest.raises(ValueError, match=r"data.classes lists 2 names .* one class without data.folder.class_map"):
        FolderInstances(tmp_path, classes=["a", "b"])


def test_folder_instances_class_map(tmp_path):
    _write_folder(tmp_path, {"a": _ids()})
    cmap = tmp_path / "classes.json"
    cmap.write_text(json.dumps({"a": {"3": 1, "7": 0, "300": 2, "1000": 1}}))
    ds = FolderInstances(tmp_path, class_map=cmap)
    assert ds.classes == ("class_0", "class_1", "class_2")
    assert ds[0]["labels"].tolist() == [1, 0, 2, 1]  # ids 3, 7, 300, 1000
    assert FolderInstances(tmp_path, class_map=cmap, classes=["x", "y", "z", "w"]).classes[3] == "w"
    with pytest.raises(ValueError, match=r"gives instance 300 of a the class 2, but there are 2 classes"):
        FolderInstances(tmp_path, class_map=cmap, classes=["x", "y"])
    cmap.write_text(json.dumps({"a": {"3": 1, "7": 0}}))
    with pytest.raises(ValueError, match=r"instances/a.png holds ids \[300, 1000\] that .*classes.json gives no class"):
        FolderInstances(tmp_path, class_map=cmap)
    cmap.write_text(json.dumps({"a": {"0": 1}}))
    with pytest.raises(ValueError, match=r"maps '0' to 1; each entry maps an instance id >= 1"):
        FolderInstances(tmp_path, class_map=cmap)
    with pytest.raises(ValueError, match=r"class_map .*missing.json does not exist"):
        FolderInstances(tmp_path, class_map=tmp_path / "missing.json")


def test_instance_pngs_that_are_not_integer_ids_stop_naming_the_file(tmp_path):
    _write_folder(tmp_path, {"a": _ids()})
    Image.fromarray((np.zeros((20, 30, 3)) + [0, 5, 9]).astype(np.uint8)).save(tmp_path / "instances" / "a.png")
    with pytest.raises(ValueError, match=r"instance PNG .*instances/a.png is a RGB \(colour\) image.*uint16 PNG"):
        FolderInstances(tmp_path)
    (tmp_path / "instances" / "a.png").unlink()
    Image.fromarray(_ids().astype(np.float32) + 0.5).save(tmp_path / "instances" / "a.tif")
    with pytest.raises(ValueError, match=r"instances/a.tif holds floating-point values \(mode F\).*np.rint"):
        FolderInstances(tmp_path)


def test_folder_kind_serves_detection_with_instance_masks(tmp_path):
    _write_folder(tmp_path / "train", {"a": _ids()})
    _write_folder(tmp_path / "val", {"b": _ids()})
    data = {
        "kind": "folder",
        "classes": ["cell"],
        "ignore_index": 255,
        "folder": {"train": tmp_path / "train", "val": tmp_path / "val"},
    }
    sources = open_sources(data, target="boxes", instance_masks=True)
    assert sources.spec.classes == ("cell",) and sources.val[0]["masks"].shape == (4, 20, 30)
    semantic = open_sources({**data, "classes": None}, target="boxes", instance_masks=False)
    assert "masks" not in semantic.train[0]


def test_a_mask_head_on_box_only_data_stops_before_reading_it(tmp_path):
    data = {"kind": "voc", "classes": None, "ignore_index": 255, "voc": {"train": tmp_path, "val": tmp_path}}
    with pytest.raises(ValueError, match=r"mask head \(Mask R-CNN\) or CopyPaste needs instance masks, but data.kind"):
        open_sources(data, target="boxes", instance_masks=True)


def _yolo(root, stem, lines, h=40, w=50):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "images" / f"{stem}.png")
    (root / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")


def test_yolo_polygons_give_boxes_and_the_masks_pycocotools_draws(tmp_path):
    tri = [0.1, 0.1, 0.5, 0.2, 0.3, 0.7]
    rect = [0.6, 0.25, 0.9, 0.25, 0.9, 0.75, 0.6, 0.75]
    _yolo(tmp_path, "a", ["0 " + " ".join(map(str, tri)), "1 " + " ".join(map(str, rect))])
    ds = YoloDataset(tmp_path, classes=["t", "r"], instance_masks=True)
    s = ds[0]
    np.testing.assert_allclose(s["bboxes"], [[5, 4, 25, 28], [30, 10, 45, 30]], atol=1e-4)
    assert s["labels"].tolist() == [0, 1] and s["masks"].shape == (2, 40, 50) and s["masks"].dtype == np.uint8
    for mask, poly in zip(s["masks"], (tri, rect)):
        pixels = (np.asarray(poly).reshape(-1, 2) * [50, 40]).ravel().tolist()
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([pixels], 40, 50)))
        np.testing.assert_array_equal(mask, ref)
    assert s["masks"][1].sum() == 15 * 20  # the pixel-aligned rectangle covers its 15 x 20 pixels
    assert "masks" not in YoloDataset(tmp_path, classes=["t", "r"])[0]  # boxes only unless asked


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0 0.1 0.1 0.5 0.2 0.3 0.7 0.4", r"a.txt:1: polygon line .* has 7 coordinates, an odd number"),
        ("0 0.1 0.1 0.5 0.2 0.3", r"a.txt:1: polygon line .* has 5 coordinates, an odd number"),
        ("0 0.1 0.1 0.5", r"a.txt:1: expected 'class cx cy w h' \(5 fields\), got 4"),
        ("0 10 12 30 12 20 30", r"a.txt:1: a coordinate is 30, above 1, .*pixel units"),
    ],
)
def test_bad_yolo_polygon_lines_stop_with_file_and_line(tmp_path, line, expected):
    _yolo(tmp_path, "a", [line])
    with pytest.raises(ValueError, match=expected):
        YoloDataset(tmp_path, classes=["x"])


def test_a_two_point_line_in_a_polygon_file_is_refused(tmp_path):
    _yolo(tmp_path, "a", ["0 0.1 0.1 0.5 0.2 0.3 0.7", "0 0.5 0.5 0.2 0.2"])
    with pytest.raises(ValueError, match=r"a.txt:2: .* has 2 points, but a polygon needs at least three"):
        parse_yolo_file(tmp_path / "labels" / "a.txt", 1)


def test_yolo_boxes_with_a_mask_head_stop(tmp_path):
    _yolo(tmp_path, "a", ["0 0.5 0.5 0.2 0.2"])
    assert YoloDataset(tmp_path, classes=["x"]).num_boxes == 1
    with pytest.raises(ValueError, match=r"a.txt holds boxes .* mask head \(Mask R-CNN\) or CopyPaste needs"):
        YoloDataset(tmp_path, classes=["x"], instance_masks=True)


def test_yolo_polygon_outside_the_image_is_dropped_with_its_mask(tmp_path):
    _yolo(tmp_path, "a", ["0 0.1 0.1 0.5 0.2 0.3 0.7", "0 -0.5 -0.5 -0.2 -0.5 -0.3 -0.1"])
    with pytest.warns(UserWarning, match="1 zero-area"):
        ds = YoloDataset(tmp_path, classes=["x"], instance_masks=True)
    s = ds[0]
    assert len(s["bboxes"]) == len(s["masks"]) == len(s["labels"]) == 1 and s["masks"].sum() > 0
