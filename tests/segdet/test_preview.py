"""write_preview: grid size, enlargement, overlay colours, ignore hatching, soft masks, legend, atomic write."""

import math

import cv2
import numpy as np
import pytest

from segdet.data import SyntheticShapes
from segdet.palette import LEGEND_ROW, box_colour, class_palette
from segdet.preview import GAP, grid_layout, legend_entries, write_preview


def _read(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _repeat(a, f):
    """Naive nearest-neighbour enlargement: every pixel becomes an f x f block."""
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


class _Samples:
    """Hand-made samples with known masks and boxes."""

    def __init__(self, *samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def _swatch(out, k, top, cols, cell_w):
    """RGB at the centre of legend entry k's swatch."""
    r, c = divmod(k, cols)
    return tuple(int(v) for v in out[top + r * LEGEND_ROW + 12, GAP + c * cell_w + 8])


def test_grid_size(tmp_path):
    ds = SyntheticShapes(7, 40, 56)
    out = write_preview(ds, ds.CLASSES, tmp_path / "sub" / "p.png", num=5)
    # 56 px wide tiles are enlarged 5x (ceil(256 / 56)) to 200 x 280; 5 tiles -> 3 columns x 2 rows with
    # 4 px gaps, plus a legend of the 4 mask classes (the boxes' classes are classes 1..3) in ceil(4 / 3) rows
    assert _read(out).shape == (2 * (200 + 4) + 4 + 2 * LEGEND_ROW, 3 * (280 + 4) + 4, 3)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["p.png"]  # no temporary file left
    # more tiles asked than samples: all samples, once
    big = write_preview(ds, ds.CLASSES, tmp_path / "all.png", num=50)
    assert _read(big).shape == (3 * 204 + 4 + 2 * LEGEND_ROW, 3 * 284 + 4, 3)
    # min_width=1: the samples' own size
    small = write_preview(ds, ds.CLASSES, tmp_path / "small.png", num=5, min_width=1)
    assert _read(small).shape == (2 * 44 + 4 + 2 * LEGEND_ROW, 3 * 60 + 4, 3)


@pytest.mark.parametrize("num", [1, 2, 3, 5, 9, 10, 16, 17])
def test_grid_layout_against_a_loop(num):
    cols = next(c for c in range(1, num + 1) if c * c >= num)  # smallest c with c * c >= num
    rows = next(r for r in range(1, num + 1) if r * cols >= num)
    legend = next(r for r in range(0, 20) if r * cols >= 7)
    assert grid_layout(num, 192, 256, 7) == (rows, cols, rows * 196 + 4 + legend * LEGEND_ROW, cols * 260 + 4)


def test_overlay_colours_and_ignore(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 5:15] = 2
    mask[5:25, 25:35] = 255
    out = _read(write_preview(_Samples({"image": image, "mask": mask}), ["bg", "a", "b"], tmp_path / "p.png"))
    f = 7  # ceil(256 / 40)
    tile = out[GAP : GAP + 30 * f, GAP : GAP + 40 * f].astype(np.float64)
    big_image, big_mask = _repeat(image, f).astype(np.float64), _repeat(mask, f)
    assert np.abs(tile[big_mask == 0] - big_image[big_mask == 0]).max() <= 1  # class 0 transparent
    blend = 0.5 * big_image[big_mask == 2] + 0.5 * class_palette(3)[2]
    assert np.abs(tile[big_mask == 2] - blend).max() <= 1
    ign = tile[big_mask == 255]
    white = (ign == 255).all(axis=1)
    assert 0.2 < white.mean() < 0.5  # hatched
    assert np.abs(ign[~white] - 0.6 * big_image[big_mask == 255][~white]).max() <= 1
    # the hatching is drawn at the tile's scale: thin stripes, not the samples' pixels enlarged
    stripes = (big_mask == 255) & ((np.add.outer(np.arange(30 * f), np.arange(40 * f)) % 8) < 3)
    assert ((tile == 255).all(axis=2) == stripes)[big_mask == 255].all()


def test_enlarged_tile_equals_the_repeated_small_one(tmp_path):
    rng = np.random.default_rng(3)
    soft = {
        "image": rng.uniform(0, 255, (20, 24, 3)).astype(np.float32),
        "mask": rng.dirichlet(np.ones(4), size=(20, 24)).astype(np.float32),
    }
    hard = {"image": rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), "mask": rng.integers(0, 4, (20, 24))}
    classes = ["bg", "a", "b", "c"]
    for sample in (soft, hard):
        big = _read(write_preview(_Samples(sample), classes, tmp_path / "big.png"))
        small = _read(write_preview(_Samples(sample), classes, tmp_path / "small.png", min_width=1))
        f = math.ceil(256 / 24)
        assert f == 11
        np.testing.assert_array_equal(
            big[GAP : GAP + 20 * f, GAP : GAP + 24 * f], _repeat(small[GAP : GAP + 20, GAP : GAP + 24], f)
        )


def test_soft_mask_boxes_and_weights_render(tmp_path):
    rng = np.random.default_rng(1)
    sample = {
        "image": rng.uniform(0, 255, (30, 40, 3)).astype(np.float32),
        "mask": rng.dirichlet(np.ones(3), size=(30, 40)).astype(np.float32),
        "bboxes": np.array([[2, 3, 20, 25]], np.float32),
        "labels": np.array([1]),
        "weights": np.array([0.4], np.float32),
    }
    plain = dict(sample, bboxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64))
    box_classes = ["x", "y"]
    a = _read(write_preview(_Samples(sample), ["bg", "a", "b"], tmp_path / "a.png", box_classes=box_classes))
    b = _read(write_preview(_Samples(plain), ["bg", "a", "b"], tmp_path / "b.png", box_classes=box_classes))
    assert a.shape == b.shape
    diff = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    f = 7
    # only the box (inside its enlarged pixels) and its tag above it changed
    assert diff.any() and xs.min() >= GAP + 2 * f and ys.max() < GAP + 25 * f and ys.min() >= GAP
    frame = a[GAP + 3 * f : GAP + 25 * f, GAP + 2 * f]  # the box's left edge
    assert (frame == box_colour(1, 2)).all()
    # the weight is in the caption: without it only the tag above the box changes
    unweighted = {k: v for k, v in sample.items() if k != "weights"}
    c = _read(write_preview(_Samples(unweighted), ["bg", "a", "b"], tmp_path / "c.png", box_classes=box_classes))
    ys, xs = np.nonzero(np.abs(a.astype(int) - c.astype(int)).sum(axis=2) > 0)
    assert len(ys) and ys.max() < GAP + 3 * f and xs.min() >= GAP + 2 * f


def test_box_colour_equals_the_legend_swatch(tmp_path):
    rng = np.random.default_rng(2)
    names = [f"class{k}" for k in range(12)]
    boxes = np.array([[4 + 5 * k, 2, 8 + 5 * k, 30] for k in range(12)], np.float32)
    detection = {"image": rng.integers(0, 256, (32, 64, 3), dtype=np.uint8), "bboxes": boxes, "labels": np.arange(12)}
    out = _read(write_preview(_Samples(detection), names, tmp_path / "det.png"))
    f = 4  # 64 px wide -> 256
    assert len(legend_entries(names, names, with_mask=False)) == 12
    top = GAP + 32 * f + GAP
    swatches = [_swatch(out, k, top, 1, 256 + GAP) for k in range(12)]
    for k in range(12):
        frame = tuple(int(v) for v in out[GAP + 20 * f, GAP + int(boxes[k, 0]) * f])
        assert frame == swatches[k] == box_colour(k, 12)
    assert len(set(swatches)) == 12

    # with masks: mask class k and boxes of label k - 1 share the swatch of class k
    seg = dict(detection, mask=np.zeros((32, 64), np.uint8))
    out = _read(write_preview(_Samples(seg), ["background", *names], tmp_path / "seg.png"))
    assert out.shape[0] == top + 13 * LEGEND_ROW  # one entry per mask class, none added for the boxes
    for k in range(12):
        frame = tuple(int(v) for v in out[GAP + 20 * f, GAP + int(boxes[k, 0]) * f])
        assert frame == _swatch(out, k + 1, top, 1, 256 + GAP) == tuple(class_palette(13)[k + 1].tolist())
    assert _swatch(out, 0, top, 1, 256 + GAP) == (32, 32, 32)  # the background's swatch is left empty


def test_legend_of_twenty_classes_has_twenty_distinct_swatches(tmp_path):
    classes = ["background", *(f"c{k}" for k in range(1, 21))]
    mask = np.arange(21 * 16).reshape(21, 16) % 21
    sample = {"image": np.zeros((21, 16, 3), np.uint8), "mask": mask}
    out = _read(write_preview(_Samples(sample), classes, tmp_path / "p.png"))
    top = GAP + 21 * 16 + GAP  # 16 px wide -> 16x
    swatches = [_swatch(out, k, top, 1, 256 + GAP) for k in range(21)]
    assert swatches[1:] == [tuple(c) for c in class_palette(21)[1:].tolist()]
    assert len(set(swatches)) == 21


def test_legend_entries_add_box_classes_that_are_not_mask_classes():
    entries = legend_entries(["bg", "a"], ["a", "z"], with_mask=True)
    assert [t for t, _ in entries] == ["0 bg", "1 a", "box 1 z"]
    assert entries[0][1] is None and entries[1][1] == box_colour(0, 2) and entries[2][1] == box_colour(1, 2)


def test_bad_arguments(tmp_path):
    ds = SyntheticShapes(2, 32, 32)
    with pytest.raises(ValueError, match="num"):
        write_preview(ds, ds.CLASSES, tmp_path / "p.png", num=0)
    with pytest.raises(ValueError, match="empty"):
        write_preview(SyntheticShapes(0, 32, 32), ds.CLASSES, tmp_path / "p.png")
