"""CopyPaste against a per-pixel reference of the occlusion rules."""

import copy

import numpy as np
import pytest
from _mix_reference import expected_keep, near_threshold, pixel_overlap_area, pixel_tight_box
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augment import CopyPaste, copy_paste


def _bbox(m):
    rows, cols = np.nonzero(m)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)


def _expected(box, m, keep_map, mv, ma):
    """The documented rule for one instance, written out with pixel loops; None = dropped."""
    visible_mask = m & keep_map
    original_box_area = float((box[2] - box[0]) * (box[3] - box[1]))
    box_visible = pixel_overlap_area(box, keep_map)
    box_untouched = box_visible >= original_box_area
    geo = box if box_untouched else pixel_tight_box(box, keep_map)
    if m.sum() == 0:  # judged by its box
        vis, orig = box_visible, original_box_area
        new_box = geo
    else:
        vis, orig = float(visible_mask.sum()), float(m.sum())
        if vis >= orig and box_untouched:
            new_box = box
        elif vis == 0 or geo is None:
            return None, None, (vis, orig)
        else:
            mb = _bbox(visible_mask)
            new_box = [max(geo[0], mb[0]), max(geo[1], mb[1]), min(geo[2], mb[2]), min(geo[3], mb[3])]
    keep = (
        expected_keep(vis, orig, mv, ma) and new_box is not None and new_box[2] > new_box[0] and new_box[3] > new_box[1]
    )
    return (np.asarray(new_box, np.float64) if keep else None), visible_mask, (vis, orig)


@st.composite
def instances(draw, h, w, offset):
    n = draw(st.integers(0, 3))
    masks, boxes = [], []
    for _ in range(n):
        x0, x1 = sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2, unique=True)))
        blob = draw(hnp.arrays(bool, (h, w)))
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = blob[y0:y1, x0:x1]
        masks.append(m)
        boxes.append([x0, y0, x1, y1])  # loose: the box may hold background and empty rows
    return {
        "image": np.full((h, w, 3), 10 if offset == 0 else 200, np.uint8),
        "mask": np.full((h, w), 1 if offset == 0 else 2, np.int64),
        "bboxes": np.array(boxes, np.float32).reshape(-1, 4),
        "labels": np.arange(n, dtype=np.int64) + offset,
        "masks": np.array(masks, np.uint8).reshape(n, h, w),
    }


@st.composite
def case(draw):
    h, w = draw(st.integers(2, 14)), draw(st.integers(2, 14))
    a, b = draw(instances(h, w, 0)), draw(instances(h, w, 100))
    chosen = np.array(draw(st.lists(st.booleans(), min_size=len(b["labels"]), max_size=len(b["labels"]))), bool)
    return a, b, chosen, draw(st.sampled_from([0.0, 0.3, 0.7])), draw(st.sampled_from([0.0, 3.0]))


@settings(max_examples=50, deadline=None)
@given(case())
def test_copy_paste_matches_reference(c):
    a, b, chosen, mv, ma = c
    before = copy.deepcopy((a, b))
    out = copy_paste(a, b, chosen, min_visibility=mv, min_area=ma)
    h, w = a["mask"].shape
    region = (b["masks"][chosen] != 0).any(0) if chosen.any() else np.zeros((h, w), bool)
    np.testing.assert_array_equal(out["image"][..., 0], np.where(region, 200, 10))
    np.testing.assert_array_equal(out["mask"], np.where(region, 2, 1))
    assert len(out["masks"]) == len(out["bboxes"]) == len(out["labels"])
    boxes = out["bboxes"]
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
    for src, keep_map, offset, allowed in ((a, ~region, 0, None), (b, region, 100, chosen)):
        for n in range(len(src["labels"])):
            hits = np.flatnonzero(out["labels"] == offset + n)
            if allowed is not None and not allowed[n]:
                assert len(hits) == 0
                continue
            box, visible_mask, (vis, orig) = _expected(
                src["bboxes"][n].astype(np.float64), src["masks"][n] != 0, keep_map, mv, ma
            )
            assume(not near_threshold(vis, orig, mv, ma))
            if box is None:
                assert len(hits) == 0, (n, offset)
            else:
                assert len(hits) == 1, (n, offset)
                np.testing.assert_allclose(out["bboxes"][hits[0]], box, atol=1e-5)
                np.testing.assert_array_equal(out["masks"][hits[0]] != 0, visible_mask)
    for orig, now in zip(before, (a, b)):
        for key in orig:
            np.testing.assert_array_equal(orig[key], now[key])


def test_occluded_instance_box_shrinks_and_vanished_instance_is_dropped():
    h, w = 6, 8
    m = np.zeros((2, h, w), np.uint8)
    m[0, 1:5, 1:7] = 1  # will lose its right half
    m[1, 0:2, 0:2] = 1  # will vanish entirely
    a = {"image": np.zeros((h, w, 3), np.uint8), "bboxes": [[1, 1, 7, 5], [0, 0, 2, 2]], "labels": [1, 2], "masks": m}
    pm = np.zeros((1, h, w), np.uint8)
    pm[0, :, 4:] = 1
    pm[0, 0:2, 0:2] = 1
    b = {"image": np.ones((h, w, 3), np.uint8), "bboxes": [[0, 0, 8, 6]], "labels": [3], "masks": pm}
    out = CopyPaste()([a, b], np.random.default_rng(0))
    np.testing.assert_array_equal(out["labels"], [1, 3])
    np.testing.assert_array_equal(out["bboxes"], [[1, 1, 4, 5], [0, 0, 8, 6]])
    assert out["masks"][0].sum() == 11  # 4x3 left part minus the pixel (1, 1) under the corner blob
    assert out["masks"][0][:, 4:].sum() == 0


def test_max_instances_and_empty_partner():
    h, w = 5, 5
    masks = np.zeros((3, h, w), np.uint8)
    for k in range(3):
        masks[k, k, k] = 1
    b = {
        "image": np.ones((h, w, 3), np.uint8),
        "bboxes": [[k, k, k + 1, k + 1] for k in range(3)],
        "labels": [0, 1, 2],
        "masks": masks,
    }
    a = {
        "image": np.zeros((h, w, 3), np.uint8),
        "bboxes": np.zeros((0, 4)),
        "labels": [],
        "masks": np.zeros((0, h, w), np.uint8),
    }
    for seed in range(10):
        out = CopyPaste(max_instances=1)([a, b], np.random.default_rng(seed))
        assert len(out["labels"]) == 1 and out["image"].sum() == 3
    out = CopyPaste()([a, a], np.random.default_rng(0))
    assert out["bboxes"].shape == (0, 4) and out["masks"].shape == (0, h, w)


def test_copy_paste_needs_instance_masks():
    a = {"image": np.zeros((4, 4, 3), np.uint8), "bboxes": [[0, 0, 1, 1]], "labels": [1]}
    with pytest.raises(ValueError, match="masks"):
        CopyPaste()([a, a], np.random.default_rng(0))


def test_soft_primary_mask_takes_one_hot_partner_pixels():
    h, w = 4, 4
    pm = np.zeros((1, h, w), np.uint8)
    pm[0, :2, :2] = 1
    a = {
        "image": np.zeros((h, w, 3), np.float32),
        "mask": np.full((h, w, 3), 1 / 3, np.float32),
        "bboxes": np.zeros((0, 4)),
        "labels": [],
        "masks": np.zeros((0, h, w), np.uint8),
    }
    b = {
        "image": np.ones((h, w, 3), np.uint8),
        "mask": np.full((h, w), 2, np.int64),
        "bboxes": [[0, 0, 2, 2]],
        "labels": [5],
        "masks": pm,
    }
    out = copy_paste(a, b, np.array([True]), num_classes=3)
    np.testing.assert_array_equal(out["mask"][:2, :2], np.broadcast_to([0, 0, 1], (2, 2, 3)))
    np.testing.assert_allclose(out["mask"][2:], 1 / 3)
    assert out["image"].dtype == np.float32 and out["image"][:2, :2].min() == 1
