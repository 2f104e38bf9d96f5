"""SaliencyMix and PuzzleMix against naive per-pixel references of the paste they choose."""

import numpy as np
import pytest
from _mix_reference import (
    expected_keep,
    float_boxes,
    int_boxes,
    near_threshold,
    pixel_overlap_area,
    pixel_tight_box,
    source,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from augment import MIXERS, PuzzleMix, SaliencyMix, block_region, saliency_rect, spectral_residual_saliency

MIXER_CLASSES = [SaliencyMix, PuzzleMix]


def _textured(h, w, seed, classes=4):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "mask": rng.integers(0, classes, (h, w)).astype(np.int64),
    }


def _region_by_hand(cls, mixer, primary, partner, seed):
    """The region the mixer draws, rebuilt from the public pieces with the same draws in the same order."""
    rng = np.random.default_rng(seed)
    lam = float(rng.beta(mixer.alpha, mixer.alpha))
    if cls is SaliencyMix:
        return saliency_rect(spectral_residual_saliency(partner["image"], mixer.saliency_size), lam, rng)
    grid = mixer.grid[int(rng.integers(len(mixer.grid)))]
    a = spectral_residual_saliency(primary["image"], mixer.saliency_size)
    b = spectral_residual_saliency(partner["image"], mixer.saliency_size)
    return block_region(a, b, grid, lam, rng)


@pytest.mark.parametrize("cls", MIXER_CLASSES)
@pytest.mark.parametrize("size", [(30, 40), (17, 5), (64, 64)])
def test_pixels_come_from_the_partner_exactly_inside_the_chosen_region(cls, size):
    h, w = size
    primary, partner = _textured(h, w, 0), _textured(h, w, 1)
    primary["label_vector"], partner["label_vector"] = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.5])
    mixer = cls(p=1.0)
    for seed in range(5):
        region = _region_by_hand(cls, mixer, primary, partner, seed)
        assert np.array_equal(region, mixer.region(primary, partner, np.random.default_rng(seed)))
        out, lam = mixer.mix([primary, partner], np.random.default_rng(seed))
        assert lam == (region.size - region.sum()) / region.size  # the exact pixel fraction
        for y in range(h):  # per pixel: the partner inside the region, the primary outside
            for x in range(w):
                src = partner if region[y, x] else primary
                assert (out["image"][y, x] == src["image"][y, x]).all() and out["mask"][y, x] == src["mask"][y, x]
        np.testing.assert_allclose(
            out["label_vector"], lam * primary["label_vector"] + (1 - lam) * partner["label_vector"]
        )


@st.composite
def case(draw):
    h, w = draw(st.integers(2, 20)), draw(st.integers(2, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # integer boxes: each instance mask fills its box, so mask pixels and box area agree
    primary = source(h, w, 10, 1, draw(int_boxes(h, w)), 0, instance_masks=True)
    partner = source(h, w, 200, 2, draw(int_boxes(h, w)), 100, instance_masks=True)
    for s in (primary, partner):  # textured images, so the saliency maps are not flat
        s["image"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return {
        "primary": primary,
        "partner": partner,
        "seed": draw(st.integers(0, 2**32 - 1)),
        "cls": draw(st.sampled_from(MIXER_CLASSES)),
        "min_visibility": draw(st.sampled_from([0.0, 0.25, 0.75])),
        "min_area": draw(st.sampled_from([0.0, 3.0])),
    }


@settings(max_examples=80, deadline=None)
@given(case())
def test_boxes_and_instances_follow_cutmix_rules_against_the_pixel_reference(c):
    cls, primary, partner = c["cls"], c["primary"], c["partner"]
    mixer = cls(p=1.0, min_visibility=c["min_visibility"], min_area=c["min_area"])
    out, _ = mixer.mix([primary, partner], np.random.default_rng(c["seed"]))
    region = mixer.region(primary, partner, np.random.default_rng(c["seed"]))
    assert len(out["bboxes"]) == len(out["labels"]) == len(out["masks"])
    for src, offset, keep_map in ((primary, 0, ~region), (partner, 100, region)):
        for n, box in enumerate(src["bboxes"]):
            before = src["masks"][n] != 0
            visible, original = float((before & keep_map).sum()), float(before.sum())  # instance masks: pixels
            assume(not near_threshold(visible, original, c["min_visibility"], c["min_area"]))
            hits = np.flatnonzero(out["labels"] == n + offset)
            assert len(hits) == int(expected_keep(visible, original, c["min_visibility"], c["min_area"]))
            if len(hits):
                k = hits[0]
                np.testing.assert_array_equal(out["masks"][k] != 0, before & keep_map)
                if visible < original:  # a cut instance: its box is tight around what stays visible
                    tight = pixel_tight_box(box, keep_map & before)
                    np.testing.assert_allclose(out["bboxes"][k], tight, atol=1e-5)
                else:
                    np.testing.assert_array_equal(out["bboxes"][k], box)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 20), st.integers(2, 20), st.data())
def test_plain_boxes_keep_by_exact_visible_area(h, w, data):
    cls = data.draw(st.sampled_from(MIXER_CLASSES))
    boxes = data.draw(float_boxes(h, w))
    primary = source(h, w, 10, 1, boxes, 0)
    partner = source(h, w, 200, 2, np.zeros((0, 4), np.float32), 100)
    partner["image"] = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mv, ma = data.draw(st.sampled_from([0.0, 0.5])), data.draw(st.sampled_from([0.0, 2.0]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    mixer = cls(p=1.0, min_visibility=mv, min_area=ma)
    out, _ = mixer.mix([primary, partner], np.random.default_rng(seed))
    keep_map = ~mixer.region(primary, partner, np.random.default_rng(seed))
    for n, box in enumerate(boxes):
        original = float((box[2] - box[0]) * (box[3] - box[1]))
        visible = pixel_overlap_area(box, keep_map)
        assume(not near_threshold(visible, original, mv, ma))
        hits = np.flatnonzero(out["labels"] == n)
        untouched = visible == pytest.approx(original)
        assert (len(hits) == 1) == (untouched or expected_keep(visible, original, mv, ma))
        if len(hits) and not untouched:
            np.testing.assert_allclose(out["bboxes"][hits[0]], pixel_tight_box(box, keep_map), atol=1e-5)


@pytest.mark.parametrize("cls", MIXER_CLASSES)
def test_soft_and_multilabel_masks_mix_by_the_exact_area(cls):
    a, b = _textured(12, 16, 2), _textured(12, 16, 3)
    b["mask"] = np.random.default_rng(4).dirichlet(np.ones(4), size=(12, 16)).astype(np.float32)
    a["mask"][0, :3] = 255  # ignored: the all-zero vector once soft
    out, lam = cls(p=1.0, num_classes=4, ignore_index=255).mix([a, b], np.random.default_rng(0))
    region = cls(p=1.0).region(a, b, np.random.default_rng(0))
    onehot = np.eye(4, dtype=np.float32)[np.where(a["mask"] == 255, 0, a["mask"])] * (a["mask"] != 255)[..., None]
    np.testing.assert_array_equal(out["mask"], np.where(region[..., None], b["mask"], onehot))
    c, d = _textured(12, 16, 5), _textured(12, 16, 6)
    rng = np.random.default_rng(7)
    c["mask"], d["mask"] = rng.integers(0, 2, (12, 16, 3)), rng.integers(0, 2, (12, 16, 3))  # multilabel channels
    out = cls(p=1.0)([c, d], np.random.default_rng(1))
    region = cls(p=1.0).region(c, d, np.random.default_rng(1))
    assert out["mask"].dtype == c["mask"].dtype
    np.testing.assert_array_equal(out["mask"], np.where(region[..., None], d["mask"], c["mask"]))


@pytest.mark.parametrize("cls", MIXER_CLASSES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (3, 2)])
def test_tiny_and_flat_images(cls, shape):
    h, w = shape
    for a, b in ((_textured(h, w, 0), _textured(h, w, 1)), (source(h, w, 7, 0, np.zeros((0, 4)), 0),) * 2):
        out, lam = cls(p=1.0).mix([a, b], np.random.default_rng(3))  # flat images: all-zero saliency
        assert out["image"].shape == (h, w, 3) and 0.0 <= lam <= 1.0
        assert lam * h * w == pytest.approx(round(lam * h * w))


def test_flat_saliency_still_mixes_at_random_places():
    a, b = source(16, 16, 10, 1, np.zeros((0, 4)), 0), source(16, 16, 200, 2, np.zeros((0, 4)), 0)
    for cls in MIXER_CLASSES:
        masks = {cls(p=1.0, alpha=50.0)([a, b], np.random.default_rng(i))["mask"].tobytes() for i in range(20)}
        assert len(masks) > 5, cls.__name__


def test_alpha_sets_the_pasted_area_on_average():
    a, b = _textured(32, 32, 0), _textured(32, 32, 1)
    for cls in MIXER_CLASSES:
        mixer = cls(p=1.0, alpha=1.0, grid=8) if cls is PuzzleMix else cls(p=1.0, alpha=1.0)
        lams = [mixer.mix([a, b], np.random.default_rng(i))[1] for i in range(300)]
        assert np.mean(lams) == pytest.approx(0.5, abs=0.05), cls.__name__  # Beta(1, 1) has mean 1/2


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"p": 1.5}, "p must lie in"),
        ({"alpha": 0}, "alpha must be > 0"),
        ({"saliency_size": 0}, "saliency_size must be an integer >= 1"),
        ({"min_visibility": 2}, "min_visibility"),
        ({"min_area": -1}, "min_area"),
    ],
)
@pytest.mark.parametrize("cls", MIXER_CLASSES)
def test_bad_options_are_one_clear_error(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"{cls.__name__}.*{message}"):
        cls(**kwargs)


@pytest.mark.parametrize("grid", [0, [], [4, 0], "4", 2.5, True])
def test_bad_puzzlemix_grid(grid):
    with pytest.raises(ValueError, match="PuzzleMix grid must be blocks per side"):
        PuzzleMix(grid=grid)


def test_registered_by_name():
    assert MIXERS["SaliencyMix"] is SaliencyMix and MIXERS["PuzzleMix"] is PuzzleMix
    assert PuzzleMix(grid=4).grid == (4,) and PuzzleMix(grid=[2, 8]).grid == (2, 8)
    with pytest.raises(ValueError, match="SaliencyMix needs sources of one size"):
        SaliencyMix()([_textured(8, 8, 0), _textured(8, 9, 1)], np.random.default_rng(0))
