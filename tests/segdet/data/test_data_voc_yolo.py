"""VOC xml and YOLO txt folders parsed against hand-written files."""

import warnings

import numpy as np
import pytest
from PIL import Image

from segdet.data.voc import VocDataset
from segdet.data.yolo import YoloDataset

VOC_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  {objects}
</annotation>"""
OBJ = (
    "<object><name>{cls}</name><difficult>{d}</difficult>"
    "<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
)


def _image(path, h, w, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def _voc(root, name, objects, h=30, w=40):
    _image(root / "JPEGImages" / f"{name}.jpg", h, w)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    objs = "".join(OBJ.format(cls=c, d=d, x0=a, y0=b, x1=x, y1=y) for c, (a, b, x, y), d in objects)
    (root / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name, w=w, h=h, objects=objs))


def test_voc_boxes_classes_and_difficult(tmp_path):
    _voc(tmp_path, "a", [("dog", (1, 1, 10, 20), 0), ("cat", (5, 6, 40, 30), 0), ("dog", (2, 2, 4, 4), 1)])
    _voc(tmp_path, "b", [])
    ds = VocDataset(tmp_path)
    assert ds.classes == ["cat", "dog"]  # sorted names found in the files
    s = ds[0]
    assert s["image"].shape == (30, 40, 3) and s["image"].dtype == np.uint8
    # VOC is 1-based inclusive: pixel columns 1..10 are the continuous span [0, 10]
    np.testing.assert_array_equal(s["bboxes"], np.array([[0, 0, 10, 20], [4, 5, 40, 30]], np.float32))
    np.testing.assert_array_equal(s["labels"], [1, 0])  # the difficult dog is dropped
    assert s["bboxes"].dtype == np.float32 and s["labels"].dtype == np.int64
    empty = ds[1]
    assert empty["bboxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert len(VocDataset(tmp_path, keep_difficult=True)[0]["labels"]) == 3


def test_voc_split_and_given_classes(tmp_path):
    _voc(tmp_path, "a", [("dog", (1, 1, 10, 20), 0)])
    _voc(tmp_path, "b", [("cat", (1, 1, 5, 5), 0)])
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    ds = VocDataset(tmp_path, split="val", classes=["dog", "cat"])
    assert len(ds) == 1 and ds[0]["labels"].tolist() == [1]


def test_voc_clips_and_drops_with_counted_warning(tmp_path):
    _voc(
        tmp_path,
        "a",
        [
            ("dog", (-5, 1, 10, 50), 0),
            ("dog", (10, 10, 9, 20), 0),
            ("dog", (12, 9, 11, 20), 0),
            ("dog", (10, 10, 10, 10), 0),
        ],
    )  # the last is one pixel: kept
    with pytest.warns(UserWarning, match=r"1 boxes partly outside.*clipped.*2 zero-area, inverted"):
        ds = VocDataset(tmp_path)
    np.testing.assert_array_equal(ds[0]["bboxes"], [[0, 0, 10, 30], [9, 9, 10, 10]])


def test_voc_bad_input_names_the_file(tmp_path):
    _voc(tmp_path, "a", [("zebra", (1, 1, 10, 20), 0)])
    with pytest.raises(ValueError, match=r"a\.xml: class 'zebra' is not in data.classes"):
        VocDataset(tmp_path, classes=["dog"])
    (tmp_path / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(ValueError, match=r"a\.xml: image a\.jpg not found"):
        VocDataset(tmp_path)
    _image(tmp_path / "JPEGImages" / "a.jpg", 30, 40)
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(ValueError, match=r"cannot read VOC annotation .*a\.xml"):
        VocDataset(tmp_path)
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><object><name>dog</name></object></annotation>")
    with pytest.raises(ValueError, match=r"a\.xml: object 'dog' has no <bndbox>"):
        VocDataset(tmp_path)
    with pytest.raises(ValueError, match="has no Annotations/"):
        VocDataset(tmp_path / "nowhere")


def _yolo(root, name, lines, h=20, w=40):
    _image(root / "images" / f"{name}.png", h, w)
    if lines is not None:
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")


def test_yolo_boxes_in_pixels(tmp_path):
    _yolo(tmp_path, "a", ["1 0.5 0.5 0.5 0.5", "", "0 0.125 0.25 0.25 0.5"])
    _yolo(tmp_path, "b", None)  # no label file: no boxes
    (tmp_path / "classes.txt").write_text("person\ncar\n")
    ds = YoloDataset(tmp_path)
    assert ds.classes == ["person", "car"]
    s = ds[0]
    np.testing.assert_allclose(s["bboxes"], [[10, 5, 30, 15], [0, 0, 10, 10]])
    np.testing.assert_array_equal(s["labels"], [1, 0])
    assert ds[1]["bboxes"].shape == (0, 4) and ds[1]["image"].shape == (20, 40, 3)


def test_yolo_clipping_warning(tmp_path):
    _yolo(tmp_path, "a", ["0 0.95 0.5 0.2 0.2", "0 0.5 0.5 0 0.1"])
    with pytest.warns(UserWarning, match=r"1 boxes partly outside.*1 zero-area"):
        ds = YoloDataset(tmp_path, classes=["x"])
    np.testing.assert_allclose(ds[0]["bboxes"], [[34, 8, 40, 12]])


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 0.5 0.5 0.2", r"a\.txt:1: expected 'class cx cy w h' \(5 fields\), got 4"),
        ("0 0.5 half 0.2 0.2", r"a\.txt:1: .* not a number"),
        ("2 0.5 0.5 0.2 0.2", r"a\.txt:1: class 2 is not an index in 0\.\.1"),
        ("0 0.5 0.5 -0.2 0.2", r"a\.txt:1: negative box size"),
    ],
)
def test_yolo_bad_lines(tmp_path, line, message):
    _yolo(tmp_path, "a", [line])
    with pytest.raises(ValueError, match=message):
        YoloDataset(tmp_path, classes=["x", "y"])


def test_yolo_needs_class_names(tmp_path):
    _yolo(tmp_path, "a", ["0 0.5 0.5 0.2 0.2"])
    with pytest.raises(ValueError, match="no class names; set data.classes or add a classes.txt"):
        YoloDataset(tmp_path)


def test_no_warning_for_clean_data(tmp_path):
    _yolo(tmp_path, "a", ["0 0.5 0.5 0.2 0.2"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        YoloDataset(tmp_path, classes=["x"])


def test_voc_size_tag_is_not_trusted_over_the_image(tmp_path):
    _voc(tmp_path, "a", [("dog", (1, 1, 60, 45), 0)], h=30, w=40)
    _voc(tmp_path, "b", [("dog", (1, 1, 10, 10), 0)], h=30, w=40)
    xml = tmp_path / "Annotations" / "a.xml"  # the xml claims 60x80; the image is 30x40
    xml.write_text(
        xml.read_text().replace("<width>40</width><height>30</height>", "<width>80</width><height>60</height>")
    )
    with pytest.warns(UserWarning, match=r"1 annotations give a <size> .*a\.xml says 60x80, a\.jpg is 30x40"):
        ds = VocDataset(tmp_path)
    np.testing.assert_array_equal(ds[0]["bboxes"], [[0, 0, 40, 30]])  # clipped to the real image
    assert ds.num_boxes == 2


def test_yolo_without_a_labels_folder_stops(tmp_path):
    _yolo(tmp_path, "a", None)
    with pytest.raises(ValueError, match=r"YOLO folder .* has no labels/ \(.*labels does not exist\)"):
        YoloDataset(tmp_path, classes=["x"])


@pytest.mark.parametrize("line", ["0 20 10 8 4", "0 0.5 0.5 8 0.2"])
def test_yolo_labels_in_pixel_units_stop_with_the_fix(tmp_path, line):
    _yolo(tmp_path, "a", ["0 0.5 0.5 0.2 0.2", line])
    with pytest.raises(ValueError, match=r"a\.txt:2: .*above 1 .*look like pixel units; divide cx and w"):
        YoloDataset(tmp_path, classes=["x"])
    _yolo(tmp_path, "a", ["0 0.5 0.5 1.0 1.0"])  # the whole image: the largest normalised size
    assert YoloDataset(tmp_path, classes=["x"]).num_boxes == 1
