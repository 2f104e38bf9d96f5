"""CutMix and its regions against naive per-pixel references."""

import copy

import numpy as np
import pytest
from _mix_reference import (
    expected_keep,
    float_boxes,
    int_boxes,
    near_threshold,
    occupancy,
    pixel_overlap_area,
    pixel_tight_box,
    source,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from augment import CutMix, MixUp, Mosaic, cutmix, fmix_region, rect_region

PRIMARY, PARTNER = 10, 200  # constant colours; classes 1 and 2


@st.composite
def mix_case(draw, boxes=float_boxes, instance_masks=False):
    h = draw(st.integers(3, 24))
    w = draw(st.integers(3, 24))
    a = draw(boxes(h, w))
    b = draw(boxes(h, w))
    return {
        "h": h,
        "w": w,
        "primary": source(h, w, PRIMARY, 1, a, 0, instance_masks),
        "partner": source(h, w, PARTNER, 2, b, 100, instance_masks),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "shape": draw(st.sampled_from(["rect", "fmix"])),
        "alpha": draw(st.sampled_from([0.3, 1.0, 4.0])),
        "min_visibility": draw(st.sampled_from([0.0, 0.25, 0.5, 0.9])),
        "min_area": draw(st.sampled_from([0.0, 2.0, 10.0])),
    }


def _run(case):
    mixer = CutMix(
        alpha=case["alpha"], shape=case["shape"], min_visibility=case["min_visibility"], min_area=case["min_area"]
    )
    return mixer.mix([case["primary"], case["partner"]], np.random.default_rng(case["seed"]))


def _check_boxes_against_reference(case, out, from_partner):
    """Every box of each source: kept exactly when the naive reference says so, same box."""
    mv, ma = case["min_visibility"], case["min_area"]
    for src, keep_map, offset in ((case["primary"], ~from_partner, 0), (case["partner"], from_partner, 100)):
        for n, box in enumerate(src["bboxes"]):
            original = float((box[2] - box[0]) * (box[3] - box[1]))
            visible = pixel_overlap_area(box, keep_map)
            assume(not near_threshold(visible, original, mv, ma))
            hits = np.flatnonzero(out["labels"] == offset + n)
            if expected_keep(visible, original, mv, ma):
                assert len(hits) == 1, (box, visible, original)
                expected = box if visible >= original else pixel_tight_box(box, keep_map)
                np.testing.assert_allclose(out["bboxes"][hits[0]], expected, atol=1e-5)
            else:
                assert len(hits) == 0, (box, visible, original)


@settings(max_examples=50, deadline=None)
@given(mix_case())
def test_cutmix_pixels_lambda_and_boxes_match_reference(case):
    out, lam = _run(case)
    h, w = case["h"], case["w"]
    from_partner = out["image"][..., 0] == PARTNER
    # image and mask agree on the source of every pixel, and nothing else appears
    assert np.isin(out["image"], [PRIMARY, PARTNER]).all()
    assert (out["image"] == out["image"][..., :1]).all()
    np.testing.assert_array_equal(out["mask"], np.where(from_partner, 2, 1))
    assert out["image"].dtype == np.uint8 and out["image"].shape == (h, w, 3)
    # lambda is the exact fraction of primary pixels
    assert lam == (~from_partner).mean()
    # boxes inside the canvas with positive area, contract dtypes
    boxes = out["bboxes"]
    assert boxes.dtype == np.float32 and boxes.shape == (len(out["labels"]), 4)
    assert out["labels"].dtype == np.int64
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    _check_boxes_against_reference(case, out, from_partner)


@settings(max_examples=50, deadline=None)
@given(mix_case(boxes=int_boxes, instance_masks=True))
def test_cutmix_instance_masks_follow_one_keep_index(case):
    out, _ = _run(case)
    h, w = case["h"], case["w"]
    from_partner = out["image"][..., 0] == PARTNER
    assert len(out["masks"]) == len(out["bboxes"]) == len(out["labels"])
    mv, ma = case["min_visibility"], case["min_area"]
    for src, keep_map, offset in ((case["primary"], ~from_partner, 0), (case["partner"], from_partner, 100)):
        for n, box in enumerate(src["bboxes"]):
            raster = occupancy(box, h, w)  # the instance mask is its box here
            original, visible = int(raster.sum()), int((raster & keep_map).sum())
            assume(not near_threshold(visible, original, mv, ma))
            hits = np.flatnonzero(out["labels"] == offset + n)
            if expected_keep(visible, original, mv, ma):
                assert len(hits) == 1
                k = hits[0]
                np.testing.assert_array_equal(out["masks"][k], raster & keep_map)
                rows, cols = np.nonzero(raster & keep_map)
                np.testing.assert_array_equal(
                    out["bboxes"][k], [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                )
            else:
                assert len(hits) == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_rect_region_has_rows_by_cols_size_and_fits(h, w, lam, seed):
    region = rect_region(h, w, lam, np.random.default_rng(seed))
    rows, cols = np.nonzero(region)
    side = np.sqrt(1 - lam)
    ch, cw = int(round(h * side)), int(round(w * side))
    assert region.shape == (h, w)
    assert region.sum() == ch * cw
    if ch and cw:
        assert rows.max() - rows.min() + 1 == ch and cols.max() - cols.min() + 1 == cw


def test_rect_region_non_square_is_not_transposed():
    region = rect_region(10, 40, 0.75, np.random.default_rng(0))
    rows, cols = np.nonzero(region)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (5, 20)


def test_rect_region_placement_is_uniform_including_borders():
    h, w, lam = 6, 9, 0.75  # 3x4 patch: 4 x 6 = 24 top-left positions
    rng = np.random.default_rng(0)
    counts = np.zeros((4, 6))
    for _ in range(4800):
        rows, cols = np.nonzero(rect_region(h, w, lam, rng))
        counts[rows.min(), cols.min()] += 1
    assert (counts > 0).all()  # every position including both borders
    assert counts.min() > 0.6 * counts.mean() and counts.max() < 1.4 * counts.mean()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_fmix_region_covers_exact_count(h, w, lam, seed):
    region = fmix_region(h, w, lam, np.random.default_rng(seed))
    assert region.sum() == int(round((1 - lam) * h * w))


def test_fmix_region_is_low_frequency():
    # a smooth blob has far fewer region/non-region neighbours than a random set of pixels
    rng = np.random.default_rng(0)
    region = fmix_region(64, 96, 0.5, rng)
    edges = (region[1:] != region[:-1]).sum() + (region[:, 1:] != region[:, :-1]).sum()
    scattered = rng.permutation(region.ravel()).reshape(region.shape)
    edges_random = (scattered[1:] != scattered[:-1]).sum() + (scattered[:, 1:] != scattered[:, :-1]).sum()
    assert edges < 0.2 * edges_random


def test_label_vector_mixed_by_exact_lambda():
    a = source(12, 20, PRIMARY, 1, np.zeros((0, 4), np.float32), 0)
    b = source(12, 20, PARTNER, 2, np.zeros((0, 4), np.float32), 100)
    a["label_vector"] = np.array([1, 0, 0], np.float32)
    b["label_vector"] = np.array([0, 1, 1], np.float32)
    out, lam = CutMix(shape="fmix").mix([a, b], np.random.default_rng(3))
    frac = (out["image"][..., 0] == PRIMARY).mean()
    np.testing.assert_allclose(out["label_vector"], [frac, 1 - frac, 1 - frac], rtol=1e-6)
    assert lam == frac


@pytest.mark.parametrize("mixer", [CutMix(), MixUp(num_classes=3), Mosaic(grid=2)])
def test_label_vectors_of_different_lengths_are_refused(mixer):
    sources = [source(12, 20, PRIMARY, 1, np.zeros((0, 4), np.float32), 0) for _ in range(mixer.num_sources)]
    for s in sources:
        s["label_vector"] = np.array([1, 0, 0], np.float32)
    sources[-1]["label_vector"] = np.array([0, 1], np.float32)
    with pytest.raises(ValueError, match="label_vector shapes differ"):
        mixer(sources, np.random.default_rng(0))


def test_empty_samples_keep_contract_shapes():
    h, w = 7, 11
    a = source(h, w, PRIMARY, 1, np.zeros((0, 4), np.float32), 0, instance_masks=True)
    b = source(h, w, PARTNER, 2, np.zeros((0, 4), np.float32), 100, instance_masks=True)
    out = CutMix()([a, b], np.random.default_rng(0))
    assert out["bboxes"].shape == (0, 4) and out["bboxes"].dtype == np.float32
    assert out["labels"].shape == (0,) and out["labels"].dtype == np.int64
    assert out["masks"].shape == (0, h, w)
    assert "weights" not in out


def test_border_boxes_stay_inside_and_shrink_when_a_side_is_removed():
    h, w = 10, 16
    a = source(h, w, PRIMARY, 1, np.array([[0, 0, w, h]], np.float32), 0)
    b = source(h, w, PARTNER, 2, np.array([[0, 0, w, h]], np.float32), 100)
    region = np.zeros((h, w), bool)
    region[:, 12:] = True  # right quarter: removes the primary box's whole right side
    out, lam = cutmix(a, b, region)
    np.testing.assert_array_equal(out["bboxes"], [[0, 0, 12, h], [12, 0, w, h]])
    assert lam == 0.75
    region[:] = False
    region[3:6, 4:8] = True  # a hole in the middle: the box keeps its extent
    out, _ = cutmix(a, b, region)
    np.testing.assert_array_equal(out["bboxes"], [[0, 0, w, h], [4, 3, 8, 6]])


def test_visibility_measured_against_original_box():
    h, w = 10, 10
    a = source(h, w, PRIMARY, 1, np.array([[0, 0, 10, 10]], np.float32), 0)
    b = source(h, w, PARTNER, 2, np.zeros((0, 4), np.float32), 100)
    region = np.zeros((h, w), bool)
    region[:, 1:] = True  # 10% of the box stays visible
    out, _ = cutmix(a, b, region, min_visibility=0.9)
    assert len(out["bboxes"]) == 0
    out, _ = cutmix(a, b, region, min_visibility=0.1)
    np.testing.assert_array_equal(out["bboxes"], [[0, 0, 1, 10]])
    out, _ = cutmix(a, b, region, min_visibility=0.1, min_area=11)
    assert len(out["bboxes"]) == 0


def test_soft_and_hard_masks_mix_with_ignore_as_zero_vector():
    h, w = 4, 6
    a = {"image": np.zeros((h, w, 3), np.uint8), "mask": np.full((h, w, 3), 1 / 3, np.float32)}
    hard = np.full((h, w), 2, np.int64)
    hard[0, :] = 255
    b = {"image": np.ones((h, w, 3), np.uint8), "mask": hard}
    region = np.zeros((h, w), bool)
    region[:2] = True
    out, _ = cutmix(a, b, region, ignore_index=255)
    assert out["mask"].shape == (h, w, 3) and out["mask"].dtype == np.float32
    np.testing.assert_array_equal(out["mask"][0], 0)  # ignored pixels: all-zero vector
    np.testing.assert_array_equal(out["mask"][1], np.tile([0, 0, 1], (w, 1)))
    np.testing.assert_allclose(out["mask"][2:], 1 / 3)


def test_same_seed_same_output_and_inputs_untouched():
    rng = np.random.default_rng(5)
    h, w = 13, 21
    boxes = np.array([[1, 2, 9, 11], [5.5, 0, 21, 4.25]], np.float32)
    a = source(h, w, PRIMARY, 1, boxes, 0, instance_masks=False)
    b = source(h, w, PARTNER, 2, boxes[::-1].copy(), 100)
    a["weights"] = np.array([0.5, 1.0], np.float32)
    before = copy.deepcopy((a, b))
    mixer = CutMix(min_visibility=0.2)
    out1 = mixer([a, b], np.random.default_rng(11))
    out2 = mixer([a, b], np.random.default_rng(11))
    for key in out1:
        np.testing.assert_array_equal(out1[key], out2[key])
    for orig, now in zip(before, (a, b)):
        for key in orig:
            np.testing.assert_array_equal(orig[key], now[key])
    assert set(out1["weights"]) <= {0.5, 1.0}
    del rng


def test_bad_inputs_raise_with_the_fix():
    a = source(8, 8, PRIMARY, 1, np.zeros((0, 4), np.float32), 0)
    b = source(8, 9, PARTNER, 2, np.zeros((0, 4), np.float32), 100)
    with pytest.raises(ValueError, match="resize or crop"):
        CutMix()([a, b], np.random.default_rng(0))
    c = source(8, 8, PARTNER, 2, np.zeros((0, 4), np.float32), 100)
    del c["mask"]
    with pytest.raises(ValueError, match="'mask'"):
        CutMix()([a, c], np.random.default_rng(0))
    d = source(8, 8, PARTNER, 2, np.array([[0, 0, 9, 4]], np.float32), 100)
    with pytest.raises(ValueError, match=r"bboxes\[0\].*outside"):
        CutMix()([a, d], np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        CutMix(shape="circle")
    with pytest.raises(ValueError, match="min_visibility"):
        CutMix(min_visibility=1.5)


def test_float_and_grayscale_images():
    h, w = 5, 7
    region = np.zeros((h, w), bool)
    region[1:3, 2:6] = True
    a = {"image": np.full((h, w, 3), 0.5, np.float32)}
    b = {"image": np.full((h, w, 3), 200, np.uint8)}
    out, lam = cutmix(a, b, region)
    assert out["image"].dtype == np.float32
    np.testing.assert_array_equal(out["image"][..., 0], np.where(region, 200, 0.5))
    assert lam == 1 - 8 / 35
    g, _ = cutmix({"image": np.zeros((h, w), np.uint8)}, {"image": np.ones((h, w), np.uint8)}, region)
    np.testing.assert_array_equal(g["image"], region.astype(np.uint8))
