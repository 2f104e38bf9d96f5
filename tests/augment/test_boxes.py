"""Box format conversions and the shared box helpers against naive references."""

import numpy as np
import pytest
from _mix_reference import float_boxes, pixel_overlap_area, pixel_tight_box
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augment import coco_to_pascal_voc, pascal_voc_to_coco, pascal_voc_to_yolo, yolo_to_pascal_voc
from augment._boxes import check_boxes, masks_to_boxes, visible_boxes


def test_conversions_by_hand():
    voc = np.array([[10, 20, 30, 60]], np.float32)
    np.testing.assert_array_equal(pascal_voc_to_coco(voc), [[10, 20, 20, 40]])
    np.testing.assert_array_equal(coco_to_pascal_voc([[10, 20, 20, 40]]), voc)
    # 100 wide, 80 tall: centre (20, 40), size (20, 40)
    np.testing.assert_allclose(pascal_voc_to_yolo(voc, height=80, width=100), [[0.2, 0.5, 0.2, 0.5]])
    np.testing.assert_allclose(yolo_to_pascal_voc([[0.2, 0.5, 0.2, 0.5]], height=80, width=100), voc)


@pytest.mark.parametrize("fn", [coco_to_pascal_voc, pascal_voc_to_coco])
def test_empty_is_zero_by_four(fn):
    for empty in ([], np.zeros((0, 4)), None):
        out = fn(empty)
        assert out.shape == (0, 4) and out.dtype == np.float32


def test_yolo_empty_and_bad_input():
    assert yolo_to_pascal_voc([], 10, 20).shape == (0, 4)
    assert pascal_voc_to_yolo(np.zeros((0, 4)), 10, 20).dtype == np.float32
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        coco_to_pascal_voc([[1, 2, 3]])
    with pytest.raises(ValueError, match="positive"):
        yolo_to_pascal_voc([[0.5, 0.5, 0.1, 0.1]], 0, 10)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 50), st.integers(1, 50), st.data())
def test_round_trips(h, w, data):
    voc = data.draw(float_boxes(h, w))
    np.testing.assert_allclose(coco_to_pascal_voc(pascal_voc_to_coco(voc)), voc, atol=1e-4)
    np.testing.assert_allclose(yolo_to_pascal_voc(pascal_voc_to_yolo(voc, h, w), h, w), voc, atol=1e-4)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10), st.integers(1, 10), st.data())
def test_visible_boxes_match_pixel_loop(h, w, data):
    boxes = data.draw(float_boxes(h, w))
    keep = data.draw(hnp.arrays(bool, (h, w)))
    area, new = visible_boxes(boxes, keep)
    for n, box in enumerate(boxes):
        assert area[n] == pytest.approx(pixel_overlap_area(box, keep), abs=1e-9)
        tight = pixel_tight_box(box, keep)
        if tight is None:
            assert area[n] == 0
        else:
            np.testing.assert_allclose(new[n], tight, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(0, 3), st.integers(1, 8), st.integers(1, 8)), elements=st.integers(0, 2))
)
def test_masks_to_boxes_match_loop(masks):
    boxes, nonempty = masks_to_boxes(masks)
    for k, m in enumerate(masks):
        pts = [(j, i) for i in range(m.shape[0]) for j in range(m.shape[1]) if m[i, j]]
        assert nonempty[k] == bool(pts)
        if pts:
            xs, ys = zip(*pts)
            np.testing.assert_array_equal(boxes[k], [min(xs), min(ys), max(xs) + 1, max(ys) + 1])


def test_check_boxes_messages():
    assert check_boxes(None, 4, 4).shape == (0, 4)
    np.testing.assert_array_equal(check_boxes([[0, 0, 4.0000001, 4]], 4, 4), [[0, 0, 4, 4]])
    with pytest.raises(ValueError, match=r"bboxes\[1\].*no area"):
        check_boxes([[0, 0, 1, 1], [2, 2, 2, 3]], 4, 4)
    with pytest.raises(ValueError, match="outside the 4x3"):
        check_boxes([[0, 0, 1, 3.5]], 3, 4)
    with pytest.raises(ValueError, match="NaN"):
        check_boxes([[0, 0, np.nan, 1]], 3, 4)
