"""draw_detections: enlargement of small images, frames inside the boxes, one colour per class."""

import numpy as np

from segdet.detection import draw_detections
from segdet.palette import box_colour, class_palette

NAMES = [f"class{k}" for k in range(12)]


def _repeat(a, f):
    """Naive nearest-neighbour enlargement: every pixel becomes an f x f block."""
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


def test_small_image_is_enlarged_and_boxes_scaled_with_it():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    box = np.array([[10, 20, 30, 40]], np.float32)
    out = draw_detections(image, box, np.array([2]), np.array([0.9]), NAMES)
    f = 4  # 64 px wide -> 256
    assert out.shape == (48 * f, 64 * f, 3)
    changed = (out != _repeat(image, f)).any(axis=2)
    ys, xs = np.nonzero(changed)
    # the frame lies inside the enlarged box; only its caption tag, above it, reaches outside
    inside = (ys >= 20 * f) & (ys < 40 * f) & (xs >= 10 * f) & (xs < 30 * f)
    assert inside.any() and (ys[~inside] < 20 * f).all() and (xs >= 10 * f).all()
    colour = box_colour(2, len(NAMES))
    assert (out[24 * f : 40 * f, 10 * f] == colour).all()  # left edge, below the tag
    assert (out[24 * f : 40 * f, 30 * f - 1] == colour).all()  # right edge: the last pixel of the box
    assert not (out[24 * f : 40 * f, 30 * f] == colour).all(axis=1).all()


def test_input_is_not_modified_and_large_images_keep_their_size():
    image = np.full((300, 400, 3), 90, np.uint8)
    before = image.copy()
    out = draw_detections(image, np.array([[50, 60, 200, 250]]), np.array([0]), np.array([0.5]), NAMES)
    np.testing.assert_array_equal(image, before)
    assert out.shape == image.shape and (out != image).any()
    small = np.zeros((10, 20, 3), np.uint8)
    assert draw_detections(small, np.zeros((0, 4)), np.zeros(0), np.zeros(0), NAMES, min_width=1).shape == small.shape


def test_every_class_has_its_own_colour_equal_to_the_mask_colour_of_label_plus_one():
    image = np.zeros((40, 256, 3), np.uint8)
    boxes = np.array([[4 + 20 * k, 20, 16 + 20 * k, 38] for k in range(12)], np.float32)
    out = draw_detections(image, boxes, np.arange(12), np.full(12, 0.5), NAMES)
    colours = [tuple(int(v) for v in out[30, int(b[0])]) for b in boxes]  # each box's left edge
    assert colours == [tuple(c) for c in class_palette(13)[1:].tolist()]
    assert len(set(colours)) == 12
    # a label outside the class names: white
    out = draw_detections(image, boxes[:1], np.array([12]), np.array([0.5]), NAMES)
    assert tuple(int(v) for v in out[30, 4]) == (255, 255, 255)
