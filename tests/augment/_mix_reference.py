"""Naive per-pixel references and sample builders for the augment tests."""

import numpy as np
from hypothesis import strategies as st


def pixel_overlap_area(box, keep_map):
    """Visible area of a float box: loop over every pixel, add the area it shares with the box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = keep_map.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            if keep_map[i, j]:
                ox = min(x1, j + 1) - max(x0, j)
                oy = min(y1, i + 1) - max(y0, i)
                if ox > 0 and oy > 0:
                    total += ox * oy
    return total


def pixel_tight_box(box, keep_map):
    """Bounding box of box ∩ (union of kept pixel squares), by looping over pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = keep_map.shape
    xs, ys = [], []
    for i in range(h):
        for j in range(w):
            if keep_map[i, j] and min(x1, j + 1) > max(x0, j) and min(y1, i + 1) > max(y0, i):
                xs += [max(x0, j), min(x1, j + 1)]
                ys += [max(y0, i), min(y1, i + 1)]
    if not xs:
        return None
    return [min(xs), min(ys), max(xs), max(ys)]


def occupancy(box, h, w):
    """Raster of an integer box: True on its pixels."""
    x0, y0, x1, y1 = (int(v) for v in box)
    r = np.zeros((h, w), bool)
    r[y0:y1, x0:x1] = True
    return r


def float_boxes(h, w, max_n=4):
    """Strategy: (N, 4) float32 pascal_voc boxes inside an h x w canvas (quarter-pixel grid)."""
    coord = st.tuples(st.integers(0, 4 * w), st.integers(0, 4 * w), st.integers(0, 4 * h), st.integers(0, 4 * h))
    boxes = st.lists(coord.filter(lambda c: c[0] != c[1] and c[2] != c[3]), max_size=max_n)
    return boxes.map(
        lambda cs: np.array(
            [[min(a, b) / 4, min(c, d) / 4, max(a, b) / 4, max(c, d) / 4] for a, b, c, d in cs], dtype=np.float32
        ).reshape(-1, 4)
    )


def int_boxes(h, w, max_n=4):
    """Strategy: (N, 4) float32 integer-valued boxes inside an h x w canvas."""
    coord = st.tuples(st.integers(0, w), st.integers(0, w), st.integers(0, h), st.integers(0, h))
    boxes = st.lists(coord.filter(lambda c: c[0] != c[1] and c[2] != c[3]), max_size=max_n)
    return boxes.map(
        lambda cs: np.array(
            [[min(a, b), min(c, d), max(a, b), max(c, d)] for a, b, c, d in cs], dtype=np.float32
        ).reshape(-1, 4)
    )


def source(h, w, colour, cls, boxes, label_offset, instance_masks=False):
    """A sample with a constant colour and class, labels numbering its boxes from label_offset."""
    s = {
        "image": np.full((h, w, 3), colour, np.uint8),
        "mask": np.full((h, w), cls, np.int64),
        "bboxes": boxes,
        "labels": np.arange(len(boxes), dtype=np.int64) + label_offset,
    }
    if instance_masks:
        s["masks"] = (
            np.stack([occupancy(b, h, w) for b in boxes]).astype(np.uint8)
            if len(boxes)
            else np.zeros((0, h, w), np.uint8)
        )
    return s


def expected_keep(visible, original, min_visibility, min_area):
    """The documented keep rule, written out per box."""
    if visible <= 0:
        return False
    if visible >= original:
        return True
    return visible >= min_visibility * original and visible >= min_area


def near_threshold(visible, original, min_visibility, min_area, eps=1e-4):
    """True when float round-off could flip the decision (hypothesis skips such cases)."""
    return abs(visible - min_visibility * original) < eps * max(original, 1) or abs(visible - min_area) < eps
