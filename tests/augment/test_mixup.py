"""MixUp against a per-pixel reference; chains with CutMix through soft masks."""

import copy

import numpy as np
import pytest
from _mix_reference import float_boxes
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augment import CutMix, MixUp, cutmix, mixup

IGNORE = 255


def _reference_soft(a, b, lam, c):
    """Loop over pixels: the documented MixUp rule for hard masks with ignore."""
    h, w = a.shape
    out = np.zeros((h, w, c))
    for i in range(h):
        for j in range(w):
            va, vb = a[i, j] != IGNORE, b[i, j] != IGNORE
            if va and vb:
                out[i, j, a[i, j]] += lam
                out[i, j, b[i, j]] += 1 - lam
            elif va:
                out[i, j, a[i, j]] = 1
            elif vb:
                out[i, j, b[i, j]] = 1
    return out


@st.composite
def pair(draw):
    h, w, c = draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 4))
    classes = st.sampled_from(list(range(c)) + [IGNORE])
    samples = []
    for _ in range(2):
        boxes = draw(float_boxes(h, w, max_n=3))
        samples.append(
            {
                "image": draw(hnp.arrays(np.uint8, (h, w, 3))),
                "mask": draw(hnp.arrays(np.int64, (h, w), elements=classes)),
                "bboxes": boxes,
                "labels": np.arange(len(boxes), dtype=np.int64) + 10 * len(samples),
                "masks": draw(hnp.arrays(np.uint8, (len(boxes), h, w), elements=st.integers(0, 1))),
            }
        )
    return samples, c, draw(st.floats(0, 1))


@settings(max_examples=50, deadline=None)
@given(pair())
def test_mixup_matches_reference(case):
    (a, b), c, lam = case
    before = copy.deepcopy((a, b))
    out = mixup(a, b, lam, num_classes=c, ignore_index=IGNORE)
    expected_image = lam * a["image"].astype(np.float64) + (1 - lam) * b["image"].astype(np.float64)
    assert out["image"].dtype == np.float32
    np.testing.assert_allclose(out["image"], expected_image, atol=1e-3)
    assert out["mask"].dtype == np.float32 and out["mask"].shape == a["mask"].shape + (c,)
    np.testing.assert_allclose(out["mask"], _reference_soft(a["mask"], b["mask"], lam, c), atol=1e-6)
    # both box sets kept, primary first, each with its weight; one index for masks too
    np.testing.assert_array_equal(out["bboxes"], np.concatenate([a["bboxes"], b["bboxes"]]))
    np.testing.assert_array_equal(out["labels"], np.concatenate([a["labels"], b["labels"]]))
    np.testing.assert_array_equal(out["masks"], np.concatenate([a["masks"], b["masks"]]))
    np.testing.assert_allclose(
        out["weights"], [lam] * len(a["bboxes"]) + [1 - lam] * len(b["bboxes"]), rtol=1e-6, atol=1e-7
    )
    assert out["bboxes"].shape == (len(out["labels"]), 4) and out["bboxes"].dtype == np.float32
    for orig, now in zip(before, (a, b)):  # inputs untouched
        for key in orig:
            np.testing.assert_array_equal(orig[key], now[key])


def test_ignored_in_both_is_all_zero_and_valid_pixels_sum_to_one():
    a = {"image": np.zeros((1, 3, 3), np.uint8), "mask": np.array([[IGNORE, 0, IGNORE]])}
    b = {"image": np.zeros((1, 3, 3), np.uint8), "mask": np.array([[IGNORE, IGNORE, 1]])}
    out = mixup(a, b, 0.3, num_classes=2, ignore_index=IGNORE)
    np.testing.assert_allclose(out["mask"][0], [[0, 0], [1, 0], [0, 1]])


def test_ignore_index_inside_the_class_range_is_unlabelled():
    """ignore_index=0 with 3 classes: 0 means unlabelled, as in every loss, never class 0."""
    a = {"image": np.zeros((1, 3, 3), np.float32), "mask": np.array([[0, 1, 0]])}
    b = {"image": np.ones((1, 3, 3), np.float32), "mask": np.array([[2, 2, 0]])}
    out = mixup(a, b, 0.75, num_classes=3, ignore_index=0)["mask"][0]
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 0.75, 0.25], [0, 0, 0]])
    soft_b = {**b, "mask": np.eye(3, dtype=np.float32)[[[2, 2, 1]]]}
    region = np.array([[False, False, True]])
    mixed, _ = cutmix(a, soft_b, region, num_classes=3, ignore_index=0)
    np.testing.assert_array_equal(mixed["mask"][0], [[0, 0, 0], [0, 1, 0], [0, 1, 0]])


def test_weights_multiply_along_a_chain_and_primary_dominant():
    a = {
        "image": np.zeros((4, 5, 3), np.uint8),
        "bboxes": [[0, 0, 2, 2]],
        "labels": [1],
        "weights": np.array([0.5], np.float32),
    }
    b = {"image": np.zeros((4, 5, 3), np.uint8), "bboxes": [[1, 1, 3, 3]], "labels": [2]}
    mixer = MixUp(alpha=0.5, primary_dominant=True)
    for seed in range(20):
        out, lam = mixer.mix([a, b], np.random.default_rng(seed))
        assert lam >= 0.5
        np.testing.assert_allclose(out["weights"], [0.5 * lam, 1 - lam], rtol=1e-6)


def test_mixup_then_cutmix_with_a_hard_partner():
    h, w, c = 6, 10, 3
    a = {"image": np.full((h, w, 3), 10, np.uint8), "mask": np.zeros((h, w), np.int64)}
    b = {"image": np.full((h, w, 3), 20, np.uint8), "mask": np.ones((h, w), np.int64)}
    soft, lam = MixUp(num_classes=c).mix([a, b], np.random.default_rng(0))
    partner = {"image": np.full((h, w, 3), 30, np.uint8), "mask": np.full((h, w), 2, np.int64)}
    region = np.zeros((h, w), bool)
    region[:, 7:] = True
    out, _ = cutmix(soft, partner, region, num_classes=c)
    assert out["image"].dtype == np.float32 and out["mask"].shape == (h, w, c)
    np.testing.assert_allclose(out["mask"][:, :7], np.broadcast_to([lam, 1 - lam, 0], (h, 7, c)), rtol=1e-6)
    np.testing.assert_array_equal(out["mask"][:, 7:], np.broadcast_to([0, 0, 1], (h, 3, c)))
    np.testing.assert_allclose(out["image"][:, 7:], 30)
    # and a soft mask mixed again by MixUp keeps its probabilities
    again = mixup(out, soft, 0.5, num_classes=c)
    np.testing.assert_allclose(again["mask"].sum(-1), 1, rtol=1e-6)
    # CutMix with a soft primary, through the class
    out2 = CutMix(num_classes=c)([soft, partner], np.random.default_rng(1))
    np.testing.assert_allclose(out2["mask"].sum(-1), 1, rtol=1e-6)


def test_hard_masks_need_num_classes_and_sizes_must_match():
    a = {"image": np.zeros((4, 5, 3), np.uint8), "mask": np.zeros((4, 5), np.int64)}
    with pytest.raises(ValueError, match="num_classes"):
        MixUp()([a, a], np.random.default_rng(0))
    b = {"image": np.zeros((4, 5, 3), np.uint8), "mask": np.full((4, 5), 7, np.int64)}
    with pytest.raises(ValueError, match="class 7"):
        mixup(a, b, 0.5, num_classes=3, ignore_index=255)
    c = {"image": np.zeros((5, 4, 3), np.uint8), "mask": np.zeros((5, 4), np.int64)}
    with pytest.raises(ValueError, match="one size"):
        mixup(a, c, 0.5, num_classes=3)
    with pytest.raises(ValueError, match="alpha"):
        MixUp(alpha=0)
