"""Mosaic against naive references: per-pixel box occupancy, nearest resize, source colours."""

import math
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from augment.mosaic import Mosaic

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILL, MASK_FILL = 7, 255


def _source(i, h, w, boxes, dtype=np.uint8):
    """Constant colour 10 * (i + 1) (channel c adds c) and class i + 1; box labels 100 i + j."""
    image = (np.full((h, w, 3), 10 * (i + 1)) + np.arange(3)).astype(dtype)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return {
        "image": image,
        "mask": np.full((h, w), i + 1, np.uint8),
        "bboxes": boxes,
        "labels": np.arange(len(boxes), dtype=np.int64) + 100 * i,
    }


@st.composite
def _boxes(draw, h, w, max_boxes=4):
    out = []
    for _ in range(draw(st.integers(0, max_boxes))):
        x0 = draw(st.integers(0, w - 1))
        y0 = draw(st.integers(0, h - 1))
        out.append([x0, y0, draw(st.integers(x0 + 1, w)), draw(st.integers(y0 + 1, h))])
    return out


@st.composite
def _case(draw):
    grid = draw(st.integers(1, 3))
    size = (draw(st.integers(4, 30)), draw(st.integers(4, 30)))
    shapes = [(draw(st.integers(3, 24)), draw(st.integers(3, 24))) for _ in range(grid * grid)]
    samples = [_source(i, h, w, draw(_boxes(h, w))) for i, (h, w) in enumerate(shapes)]
    lo = draw(st.floats(0.0, 1.0))
    mosaic = Mosaic(
        grid=grid,
        size=size,
        center_range=(lo, draw(st.floats(lo, 1.0))),
        fit=draw(st.sampled_from(["cover", "contain", "none"])),
        shuffle=draw(st.booleans()),
        fill=FILL,
        mask_fill=MASK_FILL,
        min_visibility=draw(st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0])),
        min_area=draw(st.sampled_from([0.0, 3.0, 10.0])),
    )
    return mosaic, samples, draw(st.integers(0, 2**32 - 1))


def _nearest_resize(array, nh, nw):
    """Naive nearest resize: output pixel centre (t + 1/2) reads source floor((t + 1/2) h / nh)."""
    h, w = array.shape[:2]
    rows = [min(int(Fraction(2 * t + 1, 2) * h / nh), h - 1) for t in range(nh)]
    cols = [min(int(Fraction(2 * t + 1, 2) * w / nw), w - 1) for t in range(nw)]
    return np.array([[array[r, c] for c in cols] for r in rows], dtype=array.dtype)


def test_naive_nearest_matches_cv2_nearest_exact_off_ties():
    """The reference above is cv2.INTER_NEAREST_EXACT except where a centre falls on a pixel
    edge: there cv2's fixed point picks the upper-left pixel, the exact rule the lower-right."""
    rng = np.random.default_rng(0)
    for h, w, nh, nw in rng.integers(1, 30, (200, 4)):
        src = rng.integers(0, 250, (h, w), dtype=np.uint8)
        ref = cv2.resize(src, (int(nw), int(nh)), interpolation=cv2.INTER_NEAREST_EXACT)
        tie_r = ((2 * np.arange(nh) + 1) * h) % (2 * nh) == 0
        tie_c = ((2 * np.arange(nw) + 1) * w) % (2 * nw) == 0
        ours = _nearest_resize(src, nh, nw)
        np.testing.assert_array_equal(ours[~tie_r][:, ~tie_c], ref[~tie_r][:, ~tie_c])


def _coverage(lo, hi, start, stop):
    """Overlap of [lo, hi] with each unit pixel [j, j + 1], j in [start, stop)."""
    j = np.arange(start, stop, dtype=np.float64)
    return np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)


def _placed(box, placement):
    """A source box mapped by the placement: the crop's corners land on the visible corners."""
    cy0, cx0, cy1, cx1 = placement.crop
    vy0, vx0, vy1, vx1 = placement.visible
    sy = Fraction(vy1 - vy0, cy1 - cy0) if vy1 > vy0 else 1
    sx = Fraction(vx1 - vx0, cx1 - cx0) if vx1 > vx0 else 1
    x0, y0, x1, y1 = (Fraction(float(v)) for v in box)
    return [
        float(v) for v in ((x0 - cx0) * sx + vx0, (y0 - cy0) * sy + vy0, (x1 - cx0) * sx + vx0, (y1 - cy0) * sy + vy0)
    ]


def _reference_visibility(box, placement):
    """Naive per-pixel occupancy: (visible area, full area, clipped box) of one scaled box.

    Every canvas pixel of an extended grid that spans the whole scaled box counts with the
    area it shares with it; visible pixels are those inside ``placement.visible``.
    """
    x0, y0, x1, y1 = _placed(box, placement)
    r0, r1 = math.floor(min(y0, 0)) - 1, math.ceil(max(y1, 1)) + 1
    c0, c1 = math.floor(min(x0, 0)) - 1, math.ceil(max(x1, 1)) + 1
    occupancy = np.outer(_coverage(y0, y1, r0, r1), _coverage(x0, x1, c0, c1))
    vy0, vx0, vy1, vx1 = placement.visible
    inside = np.zeros_like(occupancy, dtype=bool)
    inside[max(vy0 - r0, 0) : max(vy1 - r0, 0), max(vx0 - c0, 0) : max(vx1 - c0, 0)] = True
    clipped = [min(max(x0, vx0), vx1), min(max(y0, vy0), vy1), min(max(x1, vx0), vx1), min(max(y1, vy0), vy1)]
    return occupancy[inside].sum(), occupancy.sum(), clipped


def _extended_nearest(array, placement):
    """Naive nearest resize of a whole source mask on the placement's grid extended past the
    crop: ``(scaled mask, (row, col) of the visible rectangle's top-left inside it)``."""
    h, w = array.shape[:2]
    cy0, cx0, cy1, cx1 = placement.crop
    vy0, vx0, vy1, vx1 = placement.visible

    def lines(start, crop, out, length):
        t_of = {}
        bound = length * out // crop + 3  # past every line of the whole scaled source
        for t in range(-bound, bound):
            src = start + math.floor(Fraction(2 * t + 1, 2) * Fraction(crop, out))
            if 0 <= src < length:
                t_of[t] = src
        ts = sorted(t_of)
        return [t_of[t] for t in ts], -ts[0]

    rows, top = lines(cy0, cy1 - cy0, vy1 - vy0, h)
    cols, left = lines(cx0, cx1 - cx0, vx1 - vx0, w)
    return np.array([[array[r, c] for c in cols] for r in rows], dtype=array.dtype), (top, left)


@SETTINGS
@given(_case())
def test_boxes_and_pixels_match_naive_reference(case):
    mosaic, samples, seed = case
    out = mosaic(samples, np.random.default_rng(seed))
    placements = mosaic.layout([s["image"].shape[:2] for s in samples], np.random.default_rng(seed))
    H, W = mosaic.size
    image, mask, boxes, labels = out["image"], out["mask"], out["bboxes"], out["labels"]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and mask.shape == (H, W)
    assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4) and labels.dtype == np.int64

    # Image and mask agree on the source of every pixel; empty canvas has both fills.
    expected = np.full((H, W), MASK_FILL)
    for p in placements:
        vy0, vx0, vy1, vx1 = p.visible
        if not p.is_empty:
            expected[vy0:vy1, vx0:vx1] = p.source + 1
    np.testing.assert_array_equal(mask, expected)
    colour = np.where(mask[..., None] == MASK_FILL, FILL, 10 * mask[..., None].astype(int) + np.arange(3))
    np.testing.assert_array_equal(image, colour)

    # Every output box lies inside the canvas with positive area.
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= W).all() and (boxes[:, 3] <= H).all()

    # Kept set and coordinates equal the per-pixel occupancy reference.
    kept = {int(lab): b for lab, b in zip(labels, boxes)}
    assert len(kept) == len(labels)
    eps = 1e-6
    for p in placements:
        s = samples[p.source]
        for box, label in zip(s["bboxes"], s["labels"]):
            visible, full, clipped = _reference_visibility(box, p)
            vis_ok = visible >= mosaic.min_visibility * full and visible >= mosaic.min_area and visible > 0
            if int(label) in kept:
                assert not p.is_empty
                assert visible >= mosaic.min_visibility * full - eps * full, (visible, full)
                assert visible >= mosaic.min_area - eps and visible > eps
                np.testing.assert_allclose(kept[int(label)], clipped, atol=1e-4)
            elif (
                abs(visible - mosaic.min_visibility * full) > eps * max(full, 1)
                and abs(visible - mosaic.min_area) > eps
            ):
                assert not vis_ok or p.is_empty, (label, visible, full)


@SETTINGS
@given(
    st.integers(3, 20),
    st.integers(3, 20),
    st.sampled_from(["cover", "contain", "none"]),
    st.sampled_from([np.uint8, np.float32]),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_one_by_one_with_input_size_is_identity(h, w, fit, dtype, seed, data):
    rng = np.random.default_rng(seed)
    boxes = np.asarray(data.draw(_boxes(h, w)), np.float32).reshape(-1, 4)
    n = len(boxes)
    sample = {
        "image": (rng.random((h, w, 3)) * 255).astype(dtype),
        "mask": rng.integers(0, 5, (h, w)).astype(np.int64),
        "masks": np.stack([_box_mask(b, h, w) for b in boxes]) if n else np.zeros((0, h, w), np.uint8),
        "bboxes": boxes,
        "labels": np.arange(n),
        "weights": np.linspace(0.1, 1, n).astype(np.float32),
        "label_vector": np.array([0.2, 0.8], np.float32),
    }
    out = Mosaic(grid=1, fit=fit, center_range=(0.5, 0.5), min_visibility=1.0)([sample], rng)
    for key in sample:
        assert out[key].dtype == sample[key].dtype, key
        np.testing.assert_array_equal(out[key], sample[key], err_msg=key)


def _box_mask(box, h, w):
    m = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    m[y0:y1, x0:x1] = 1
    return m


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["cover", "contain"]), st.integers(1, 3))
def test_scaled_tiles_match_naive_nearest_and_cv2_resize(seed, fit, grid):
    rng = np.random.default_rng(seed)
    samples = [
        {
            "image": rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8),
            "mask": rng.integers(0, 6, (int(h), int(w)), dtype=np.uint8),
        }
        for h, w in rng.integers(3, 25, (grid * grid, 2))
    ]
    mosaic = Mosaic(grid=grid, size=(int(rng.integers(5, 40)), int(rng.integers(5, 40))), fit=fit)
    out = mosaic(samples, np.random.default_rng(seed))
    for p in mosaic.layout([s["image"].shape[:2] for s in samples], np.random.default_rng(seed)):
        if p.is_empty:
            continue
        cy0, cx0, cy1, cx1 = p.crop
        vy0, vx0, vy1, vx1 = p.visible
        crop = np.s_[cy0:cy1, cx0:cx1]
        ref_mask = _nearest_resize(samples[p.source]["mask"][crop], vy1 - vy0, vx1 - vx0)
        np.testing.assert_array_equal(out["mask"][vy0:vy1, vx0:vx1], ref_mask)
        full, (top, left) = _extended_nearest(samples[p.source]["mask"], p)
        np.testing.assert_array_equal(full[top : top + vy1 - vy0, left : left + vx1 - vx0], ref_mask)
        ref_image = cv2.resize(samples[p.source]["image"][crop], (vx1 - vx0, vy1 - vy0), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(out["image"][vy0:vy1, vx0:vx1], ref_image)
        if fit == "cover":  # the largest crop with the cell's aspect, to within half a pixel
            assert p.visible == p.cell
            h, w = samples[p.source]["mask"].shape
            ch, cw = vy1 - vy0, vx1 - vx0
            s = max(ch / h, cw / w)
            for got, ideal in ((cy1 - cy0, ch / s), (cx1 - cx0, cw / s)):
                assert abs(got - ideal) <= 0.5 + 1e-9 or (got == 1 and ideal < 1)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["cover", "contain", "none"]), st.sampled_from([0.0, 0.5, 0.9]))
def test_instance_masks_share_the_keep_index(seed, fit, min_visibility):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(4):
        h, w = (int(v) for v in rng.integers(6, 20, 2))
        boxes = []
        masks = []
        for _ in range(int(rng.integers(0, 4))):
            x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
            x1, y1 = int(rng.integers(x0 + 2, w + 1)), int(rng.integers(y0 + 2, h + 1))
            m = np.zeros((h, w), np.uint8)
            m[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7  # a blob inside its box
            m[y0, x0] = m[y1 - 1, x1 - 1] = 1
            boxes.append([x0, y0, x1, y1])
            masks.append(m)
        s = _source(i, h, w, boxes)
        s["masks"] = np.stack(masks) if masks else np.zeros((0, h, w), np.uint8)
        s["weights"] = np.full(len(boxes), i + 1, np.float32)
        samples.append(s)
    mosaic = Mosaic(size=(24, 34), fit=fit, min_visibility=min_visibility)
    out = mosaic(samples, np.random.default_rng(seed))
    placements = mosaic.layout([s["image"].shape[:2] for s in samples], np.random.default_rng(seed))
    n = len(out["labels"])
    assert out["bboxes"].shape == (n, 4) and out["masks"].shape == (n, 24, 34) and out["weights"].shape == (n,)
    by_source = {p.source: p for p in placements}
    for box, label, mask, weight in zip(out["bboxes"], out["labels"], out["masks"], out["weights"]):
        source, j = divmod(int(label), 100)
        assert weight == source + 1
        # The box is the scaled, clipped box tightened to the visible mask.
        p = by_source[source]
        _, _, clipped = _reference_visibility(samples[source]["bboxes"][j], p)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        tight = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
        expected = np.concatenate([np.maximum(clipped[:2], tight[:2]), np.minimum(clipped[2:], tight[2:])])
        np.testing.assert_allclose(box, expected, atol=1e-5)
        # Visibility on mask pixels against a full naive nearest resize of the instance.
        full, (top, left) = _extended_nearest(samples[source]["masks"][j], p)
        assert mask.sum() >= min_visibility * full.sum() * (1 - 1e-9)
        vy0, vx0, vy1, vx1 = p.visible
        win = full[top : top + vy1 - vy0, left : left + vx1 - vx0]
        np.testing.assert_array_equal(mask[vy0:vy1, vx0:vx1], win)
        assert mask.sum() == win.sum()


def test_min_visibility_uses_the_box_before_the_crop():
    """The albumentations trap: a box 10% visible must not survive min_visibility=0.9."""
    tile = _source(0, 20, 20, [[0, 0, 10, 10]])
    mosaic = Mosaic(grid=1, size=(20, 20), fit="none", min_visibility=0.9)
    (p,) = mosaic.layout([(20, 20)], np.random.default_rng(0))
    shifted = type(p)(0, p.cell, (9, 0, 20, 20), (0, 0, 11, 20))  # rows 9..19 visible
    out = mosaic.apply([tile], [shifted])
    assert out["bboxes"].shape == (0, 4)
    loose = Mosaic(grid=1, size=(20, 20), fit="none", min_visibility=0.1)
    np.testing.assert_array_equal(loose.apply([tile], [shifted])["bboxes"], [[0, 0, 10, 1]])


def test_min_side_and_max_aspect_ratio():
    tile = _source(0, 20, 20, [[0, 0, 10, 10], [0, 0, 20, 2], [2, 2, 3, 12]])
    out = Mosaic(grid=1, size=(20, 20), min_side=2)([tile], np.random.default_rng(0))
    np.testing.assert_array_equal(out["labels"], [0, 1])
    out = Mosaic(grid=1, size=(20, 20), max_aspect_ratio=5)([tile], np.random.default_rng(0))
    np.testing.assert_array_equal(out["labels"], [0])


@pytest.mark.parametrize("fill, expect", [(255, [0, 0, 0]), (2, [0, 0, 1]), (0, [1, 0, 0])])
def test_tiles_smaller_than_cells_fill_soft_masks(fill, expect):
    samples = []
    for i in range(4):
        soft = np.zeros((5, 7, 3), np.float32)
        soft[..., i % 3] = 1.0
        samples.append(
            {
                "image": np.full((5, 7, 3), 50 * i + 10, np.float32),
                "mask": soft,
                "bboxes": np.array([[0, 0, 7, 5]], np.float32),
                "labels": np.array([i]),
            }
        )
    mosaic = Mosaic(size=(30, 44), fit="none", mask_fill=fill, fill=(1, 2, 3))
    out = mosaic(samples, np.random.default_rng(3))
    assert out["image"].dtype == np.float32 and out["mask"].shape == (30, 44, 3)
    empty = (out["image"] == [1, 2, 3]).all(-1)
    assert 0 < empty.sum() < 30 * 44
    np.testing.assert_array_equal(out["mask"][empty], np.broadcast_to(expect, (empty.sum(), 3)))
    np.testing.assert_array_equal(out["mask"][~empty].sum(-1), 1.0)
    # Uncut whole-tile boxes are kept and shifted exactly onto their tiles.
    assert len(out["bboxes"]) == 4
    for box, label in zip(out["bboxes"], out["labels"]):
        x0, y0, x1, y1 = box.astype(int)
        assert (x1 - x0, y1 - y0) == (7, 5)
        np.testing.assert_array_equal(out["image"][y0:y1, x0:x1], 50 * label + 10)


def test_hard_and_soft_masks_mix_to_soft_with_ignore_as_zero():
    hard = {"image": np.zeros((6, 6, 3), np.uint8), "mask": np.full((6, 6), 255, np.int64)}
    hard["mask"][0, 0] = 1
    soft = {"image": np.zeros((6, 6, 3), np.uint8), "mask": np.full((6, 6, 2), 0.5, np.float32)}
    out = Mosaic(grid=1, ignore_index=255)([hard], np.random.default_rng(0))
    assert out["mask"].dtype == np.int64
    mosaic = Mosaic(grid=2, size=(6, 6), center_range=(0.5, 0.5), shuffle=False, fit="none")
    out = mosaic([hard, soft, soft, soft], np.random.default_rng(0))
    assert out["mask"].shape == (6, 6, 2) and out["mask"].dtype == np.float32
    np.testing.assert_array_equal(out["mask"][:3, :3].sum(-1) <= 1, True)
    np.testing.assert_array_equal(out["mask"][3:, 3:], 0.5)


def test_empty_samples_and_border_boxes():
    empty = [_source(i, 8, 12, []) for i in range(4)]
    out = Mosaic(size=(16, 20))(empty, np.random.default_rng(0))
    assert out["bboxes"].shape == (0, 4) and out["bboxes"].dtype == np.float32
    assert out["labels"].shape == (0,) and out["labels"].dtype == np.int64
    border = [_source(i, 8, 12, [[0, 0, 12, 8], [0, 0, 1, 1], [11, 7, 12, 8]]) for i in range(4)]
    out = Mosaic(size=(16, 24), fit="none", center_range=(0.5, 0.5))(border, np.random.default_rng(0))
    # 8x12 tiles exactly fill 8x12 cells: every box is uncut and exact.
    assert len(out["labels"]) == 12
    for box, label in zip(out["bboxes"], out["labels"]):
        ref = border[label // 100]["bboxes"][label % 100]
        np.testing.assert_array_equal(box[2:] - box[:2], ref[2:] - ref[:2])


def test_same_seed_same_output_and_inputs_untouched():
    rng = np.random.default_rng(5)
    samples = [
        _source(i, int(rng.integers(5, 15)), int(rng.integers(5, 15)), [[0, 0, 4, 4], [1, 2, 5, 5]]) for i in range(9)
    ]
    copies = [{k: v.copy() for k, v in s.items()} for s in samples]
    mosaic = Mosaic(grid=3, size=(21, 33), fit="cover", min_visibility=0.3)
    a = mosaic(samples, np.random.default_rng(11))
    b = mosaic(samples, np.random.default_rng(11))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for s, c in zip(samples, copies):
        for key in s:
            np.testing.assert_array_equal(s[key], c[key])
    outputs = {mosaic(samples, np.random.default_rng(seed))["image"].tobytes() for seed in range(5)}
    assert len(outputs) > 1


def test_label_vector_weighted_by_pixels():
    samples = [
        {"image": np.zeros((4, 4, 3), np.uint8), "label_vector": np.eye(4, dtype=np.float32)[i]} for i in range(4)
    ]
    out = Mosaic(size=(4, 8), center_range=(0.5, 0.5), shuffle=False)(samples, np.random.default_rng(0))
    np.testing.assert_allclose(out["label_vector"], [0.25] * 4)
    out = Mosaic(size=(10, 10), center_range=(0.3, 0.3), shuffle=False)(samples, np.random.default_rng(0))
    np.testing.assert_allclose(out["label_vector"], [0.09, 0.21, 0.21, 0.49])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grid": 0}, "grid"),
        ({"size": (0, 4)}, "size"),
        ({"center_range": (0.8, 0.2)}, "center_range"),
        ({"fit": "stretch"}, "fit"),
        ({"min_visibility": 1.5}, "min_visibility"),
        ({"max_aspect_ratio": 0.5}, "max_aspect_ratio"),
        ({"p": 2}, "p must"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Mosaic(**kwargs)


def test_bad_samples_raise():
    good = _source(0, 8, 8, [[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="4 samples"):
        Mosaic()([good], np.random.default_rng(0))
    no_mask = {k: v for k, v in good.items() if k != "mask"}
    with pytest.raises(ValueError, match="'mask'"):
        Mosaic()([good, good, good, no_mask], np.random.default_rng(0))
    gray = dict(good, image=np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        Mosaic()([good, good, gray, good], np.random.default_rng(0))
    outside = dict(good, bboxes=np.array([[0, 0, 9, 4]], np.float32))
    with pytest.raises(ValueError, match="outside"):
        Mosaic()([good, outside, good, good], np.random.default_rng(0))
    with pytest.raises(ValueError, match="mask_fill"):
        Mosaic(mask_fill=-1)([good] * 4, np.random.default_rng(0))
    assert math.isinf(Mosaic().max_aspect_ratio) and Mosaic(grid=3).num_sources == 9


def test_docstring_examples():
    import doctest

    import augment._mosaic_layout
    import augment.mosaic

    for module in (augment.mosaic, augment._mosaic_layout):
        result = doctest.testmod(module)
        assert result.failed == 0
    assert doctest.testmod(augment.mosaic).attempted > 0


def test_chain_through_mix_dataset_with_albumentations():
    """Mosaic then MixUp in MixDataset, each source through an albumentations pipeline first
    (MixUp's partner is a plain source, so the sources have the mosaic's size)."""
    import albumentations as A

    from augment import MixDataset, MixUp

    data = []
    for i in range(6):
        h, w = 32, 48
        s = _source(i, h, w, [[1, 2, w // 2, h // 2], [0, 0, w, h]])
        s["mask"] = s["mask"].astype(np.int64)
        data.append(s)
    pre = A.Compose([A.HorizontalFlip(p=0.5)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]))
    ds = MixDataset(
        data,
        [
            Mosaic(p=1.0, size=(32, 48), min_visibility=0.2, ignore_index=255),
            MixUp(p=1.0, num_classes=7, ignore_index=255),
        ],
        pre=pre,
        seed=3,
    )
    out = ds[2]
    assert out["image"].shape == (32, 48, 3) and out["mask"].shape == (32, 48, 7)
    n = len(out["labels"])
    assert out["bboxes"].shape == (n, 4) and out["weights"].shape == (n,)
    sums = out["mask"].sum(-1)
    np.testing.assert_allclose(sums[sums > 0], 1.0, atol=1e-6)
    assert (out["bboxes"][:, 2:] > out["bboxes"][:, :2]).all()
    again = ds[2]
    np.testing.assert_array_equal(out["image"], again["image"])


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["cover", "contain", "none"]), st.integers(1, 3))
def test_whole_scaled_mask_pixels_match_naive_extended_grid(seed, fit, grid):
    """The pixel count min_visibility divides by: every pixel of the whole scaled mask, on the
    placement's grid extended past the crop, against a naive nearest resize."""
    from augment._mosaic_tiles import tile_boxes, tile_instances

    rng = np.random.default_rng(seed)
    shapes = [tuple(int(v) for v in rng.integers(2, 25, 2)) for _ in range(grid * grid)]
    mosaic = Mosaic(grid=grid, size=(int(rng.integers(4, 40)), int(rng.integers(4, 40))), fit=fit)
    for p in mosaic.layout(shapes, rng):
        if p.is_empty:
            continue
        h, w = shapes[p.source]
        masks = (rng.random((3, h, w)) < [[[0.02]], [[0.3]], [[1.0]]]).astype(np.uint8)
        boxes = np.tile(np.array([[0, 0, w, h]], np.float32), (3, 1))
        _, visible_px, full_px, _, _ = tile_instances(masks, p, tile_boxes(boxes, p)[0])
        for m, vis, full in zip(masks, visible_px, full_px):
            ref, _ = _extended_nearest(m, p)
            assert full == ref.sum()
            assert vis == _crop_nearest(m, p).sum()


def _crop_nearest(mask, p):
    """Naive nearest resize of the placement's crop onto its visible rectangle."""
    cy0, cx0, cy1, cx1 = p.crop
    vy0, vx0, vy1, vx1 = p.visible
    return _nearest_resize(mask[cy0:cy1, cx0:cx1], vy1 - vy0, vx1 - vx0)
