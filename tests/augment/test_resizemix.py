"""ResizeMix against naive per-pixel references: area-averaged image, nearest masks, scaled boxes."""

import numpy as np
import pytest
from _mix_reference import expected_keep, float_boxes, near_threshold, pixel_overlap_area, pixel_tight_box, source
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from augment import MIXERS, ResizeMix, resizemix


def naive_area_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Float64 area average: each output pixel is the mean of the source area it covers, pixel by pixel."""
    h, w = image.shape[:2]
    sy, sx = h / out_h, w / out_w
    out = np.zeros((out_h, out_w) + image.shape[2:])
    for i in range(out_h):
        for j in range(out_w):
            y0, y1, x0, x1 = i * sy, (i + 1) * sy, j * sx, (j + 1) * sx
            total = np.zeros(image.shape[2:])
            for r in range(int(y0), min(h, int(np.ceil(y1)))):
                for c in range(int(x0), min(w, int(np.ceil(x1)))):
                    wy = min(y1, r + 1) - max(y0, r)
                    wx = min(x1, c + 1) - max(x0, c)
                    total = total + wy * wx * image[r, c].astype(np.float64)
            out[i, j] = total / (sy * sx)
    return out


def naive_nearest(array: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Each output pixel reads the source pixel under its centre: floor((t + 1/2) * n / m)."""
    h, w = array.shape[:2]
    out = np.empty((out_h, out_w) + array.shape[2:], array.dtype)
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = array[int((i + 0.5) * h / out_h), int((j + 0.5) * w / out_w)]
    return out


def _textured(h, w, seed, classes=4):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "mask": rng.integers(0, classes, (h, w)).astype(np.int64),
    }


@pytest.mark.parametrize(
    "partner_size,rect", [((40, 56), (3, 5, 17, 26)), ((13, 9), (0, 0, 30, 40)), ((64, 64), (29, 39, 30, 40))]
)
def test_pixels_are_the_resized_partner_inside_and_the_primary_outside(partner_size, rect):
    primary, partner = _textured(30, 40, 0), _textured(*partner_size, 1)
    out, lam = resizemix(primary, partner, rect)
    y0, x0, y1, x1 = rect
    inside = np.zeros((30, 40), bool)
    inside[y0:y1, x0:x1] = True
    assert lam == 1 - inside.sum() / inside.size
    np.testing.assert_array_equal(out["image"][~inside], primary["image"][~inside])
    np.testing.assert_array_equal(out["mask"][~inside], primary["mask"][~inside])
    ref = naive_area_resize(partner["image"], y1 - y0, x1 - x0)
    assert np.abs(out["image"][y0:y1, x0:x1].astype(np.float64) - ref).max() <= 1.0  # uint8 rounding
    np.testing.assert_array_equal(out["mask"][y0:y1, x0:x1], naive_nearest(partner["mask"], y1 - y0, x1 - x0))


def test_partner_boxes_are_scaled_into_the_rectangle_and_tiny_ones_dropped():
    primary = source(32, 32, 10, 1, np.zeros((0, 4), np.float32), 0)
    boxes = np.array([[0, 0, 32, 16], [4.5, 8, 12, 30.25], [30, 30, 31, 31]], np.float32)
    partner = source(32, 32, 200, 2, boxes, 100)
    rect = (8, 4, 24, 20)  # 16 x 16: half the partner's size
    out, _ = resizemix(primary, partner, rect, min_area=1.0)
    expected = boxes.astype(np.float64) * 0.5 + [4, 8, 4, 8]
    kept = (expected[:, 2] - expected[:, 0]) * (expected[:, 3] - expected[:, 1]) >= 1.0  # the last is 0.25 px
    np.testing.assert_allclose(out["bboxes"], expected[kept], rtol=0, atol=1e-5)
    assert out["labels"].tolist() == [100, 101]


@st.composite
def case(draw):
    h, w = draw(st.integers(4, 20)), draw(st.integers(4, 20))
    ph, pw = draw(st.integers(3, 24)), draw(st.integers(3, 24))
    return {
        "primary": source(h, w, 10, 1, draw(float_boxes(h, w)), 0, instance_masks=True),
        "partner": source(ph, pw, 200, 2, draw(float_boxes(ph, pw)), 100, instance_masks=True),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "scale": draw(st.sampled_from([(0.1, 0.8), (0.5, 1.0), (1.0, 1.0)])),
        "min_visibility": draw(st.sampled_from([0.0, 0.5])),
        "min_area": draw(st.sampled_from([0.0, 2.0])),
    }


@settings(max_examples=60, deadline=None)
@given(case())
def test_instances_follow_their_pixels_exactly(c):
    mixer = ResizeMix(scale=c["scale"], min_visibility=c["min_visibility"], min_area=c["min_area"])
    rng = np.random.default_rng(c["seed"])
    rect = ResizeMix(scale=c["scale"]).rect(*c["primary"]["image"].shape[:2], np.random.default_rng(c["seed"]))
    out, lam = mixer.mix([c["primary"], c["partner"]], rng)
    y0, x0, y1, x1 = rect
    h, w = c["primary"]["image"].shape[:2]
    region = np.zeros((h, w), bool)
    region[y0:y1, x0:x1] = True
    assert lam == pytest.approx(1 - region.mean(), abs=1e-12)
    assert len(out["bboxes"]) == len(out["labels"]) == len(out["masks"])
    partner_masks = c["partner"]["masks"]
    for box, label, inst in zip(out["bboxes"], out["labels"], out["masks"]):
        on = inst != 0
        if label >= 100:  # a partner instance: its mask is the naive nearest resize, inside the rectangle
            ref = np.zeros((h, w), bool)
            ref[y0:y1, x0:x1] = naive_nearest(partner_masks[label - 100], y1 - y0, x1 - x0) != 0
            np.testing.assert_array_equal(on, ref)
            assert on.sum() >= c["min_area"] or not partner_masks[label - 100].any()  # an empty mask: judged by its box
        else:  # a primary instance: the pixels outside the rectangle, at least min_visibility of them
            before = c["primary"]["masks"][label] != 0
            np.testing.assert_array_equal(on, before & ~region)
        if label >= 100 and on.any():  # a resized box never reaches past its resized instance's pixels
            rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
            assert cols[0] <= box[0] and box[2] <= cols[-1] + 1 and rows[0] <= box[1] and box[3] <= rows[-1] + 1


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 20), st.integers(4, 20), st.data())
def test_primary_boxes_follow_cutmix_rules_against_the_pixel_reference(h, w, data):
    boxes = data.draw(float_boxes(h, w))
    primary = source(h, w, 10, 1, boxes, 0)
    partner = source(h, w, 200, 2, np.zeros((0, 4), np.float32), 100)
    y0, y1 = sorted(data.draw(st.lists(st.integers(0, h), min_size=2, max_size=2, unique=True)))
    x0, x1 = sorted(data.draw(st.lists(st.integers(0, w), min_size=2, max_size=2, unique=True)))
    mv, ma = data.draw(st.sampled_from([0.0, 0.25, 0.75])), data.draw(st.sampled_from([0.0, 3.0]))
    out, _ = resizemix(primary, partner, (y0, x0, y1, x1), min_visibility=mv, min_area=ma)
    keep_map = np.ones((h, w), bool)
    keep_map[y0:y1, x0:x1] = False
    for n, box in enumerate(boxes):
        original = float((box[2] - box[0]) * (box[3] - box[1]))
        visible = pixel_overlap_area(box, keep_map)
        assume(not near_threshold(visible, original, mv, ma))
        hits = np.flatnonzero(out["labels"] == n)
        untouched = visible == pytest.approx(original)
        assert (len(hits) == 1) == (untouched or expected_keep(visible, original, mv, ma))
        if len(hits) and not untouched:
            np.testing.assert_allclose(out["bboxes"][hits[0]], pixel_tight_box(box, keep_map), atol=1e-5)


def test_soft_and_label_vector_targets_mix_by_the_exact_area():
    a = {
        "image": np.zeros((10, 10, 3), np.uint8),
        "mask": np.zeros((10, 10), np.int64),
        "label_vector": np.array([1.0, 0.0]),
    }
    b = {
        "image": np.zeros((6, 6, 3), np.uint8),
        "mask": np.full((6, 6, 2), 0.5, np.float32),
        "label_vector": np.array([0.0, 1.0]),
    }
    out, lam = resizemix(a, b, (0, 0, 5, 4), num_classes=2)
    assert lam == 0.8 and out["mask"].dtype == np.float32 and out["mask"].shape == (10, 10, 2)
    np.testing.assert_array_equal(out["mask"][:5, :4], 0.5)
    np.testing.assert_array_equal(out["mask"][5:, :], np.broadcast_to([1.0, 0.0], (5, 10, 2)))  # one-hot class 0
    np.testing.assert_allclose(out["label_vector"], [0.8, 0.2])


def test_bad_input_is_one_clear_error():
    a = _textured(8, 8, 0)
    for kwargs, message in (
        ({"scale": (0.0, 0.5)}, "0 < low <= high <= 1"),
        ({"scale": (0.6, 0.5)}, "0 < low <= high <= 1"),
        ({"scale": 0.5}, "two side ratios"),
        ({"p": 1.5}, "p must lie in"),
        ({"min_area": -1}, "min_area"),
    ):
        with pytest.raises(ValueError, match=message):
            ResizeMix(**kwargs)
    with pytest.raises(ValueError, match="must hold a pixel inside the 8x8 image"):
        resizemix(a, a, (2, 2, 2, 5))
    with pytest.raises(TypeError):
        ResizeMix()([a, a], None)
    with pytest.raises(ValueError, match="num_classes|class"):
        resizemix(a, _textured(8, 8, 1, classes=9), (0, 0, 4, 4), num_classes=4, ignore_index=255)
    assert MIXERS["ResizeMix"] is ResizeMix
