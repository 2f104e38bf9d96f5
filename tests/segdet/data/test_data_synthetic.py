"""SyntheticShapes: determinism, and mask / instance masks / boxes / labels agreeing with each other."""

import numpy as np
import pytest

from segdet.data import SyntheticShapes, boxes_from_masks


def _naive_box(m):
    ys, xs = np.nonzero(m)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_same_seed_same_samples_and_splits_differ():
    a, b = SyntheticShapes(6, 40, 56, seed=3), SyntheticShapes(6, 40, 56, seed=3)
    for i in (5, 0, 2):  # any order
        sa, sb = a[i], b[i]
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])
    val = SyntheticShapes(6, 40, 56, seed=3, split="val")
    other = SyntheticShapes(6, 40, 56, seed=4)
    for i in range(6):
        assert not np.array_equal(a[i]["image"], val[i]["image"])
        assert not np.array_equal(a[i]["image"], other[i]["image"])
    assert not np.array_equal(a[0]["image"], a[1]["image"])
    assert a[-1]["image"].tobytes() == a[5]["image"].tobytes()


@pytest.mark.parametrize("shape", [(40, 56), (64, 48), (96, 128)])
def test_contract_and_consistency(shape):
    h, w = shape
    ds = SyntheticShapes(12, h, w, seed=1)
    seen = set()
    for i in range(len(ds)):
        s = ds[i]
        image, mask, masks, boxes, labels = s["image"], s["mask"], s["masks"], s["bboxes"], s["labels"]
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        assert mask.shape == (h, w) and np.issubdtype(mask.dtype, np.integer)
        k = len(labels)
        assert k >= 1 and masks.shape == (k, h, w) and masks.dtype == np.uint8
        assert boxes.shape == (k, 4) and boxes.dtype == np.float32 and labels.dtype == np.int64
        assert set(np.unique(masks)) <= {0, 1}
        assert masks.sum(axis=0).max() <= 1, "instance masks overlap"
        # naive reconstruction of the semantic mask from the instances, pixel by pixel
        ref = np.zeros((h, w), np.int64)
        for y in range(h):
            for x in range(w):
                for j in range(k):
                    if masks[j, y, x]:
                        ref[y, x] = labels[j] + 1
        np.testing.assert_array_equal(mask, ref)
        for j in range(k):
            assert masks[j].sum() > 0
            np.testing.assert_array_equal(boxes[j], _naive_box(masks[j]))
        assert set(labels.tolist()) <= {0, 1, 2}
        seen.update(labels.tolist())
    assert seen == {0, 1, 2}
    assert SyntheticShapes.CLASSES[1:] == SyntheticShapes.BOX_CLASSES


def test_background_is_textured_not_flat():
    ds = SyntheticShapes(8, 64, 64, seed=0)
    for i in range(8):
        s = ds[i]
        bg = s["image"][s["mask"] == 0].astype(np.float64)
        assert bg.std(axis=0).max() > 8, "background should carry texture"


def test_boxes_from_masks_degenerate_cases():
    assert boxes_from_masks(np.zeros((0, 5, 6), np.uint8)).shape == (0, 4)
    m = np.zeros((2, 5, 6), np.uint8)
    m[1, 4, 5] = 1  # single pixel in the corner
    np.testing.assert_array_equal(boxes_from_masks(m), [[0, 0, 0, 0], [5, 4, 6, 5]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="height"):
        SyntheticShapes(4, 8, 64)
    with pytest.raises(ValueError, match="split"):
        SyntheticShapes(4, 32, 32, split="valid")
    with pytest.raises(TypeError, match="num_samples"):
        SyntheticShapes(2.5, 32, 32)
    with pytest.raises(IndexError):
        SyntheticShapes(3, 32, 32)[3]


def test_class_hues_and_random_colour_mode():
    import cv2

    ds = SyntheticShapes(10, 64, 64, seed=2)
    for i in range(10):
        s = ds[i]
        hsv = cv2.cvtColor(s["image"], cv2.COLOR_RGB2HSV_FULL).astype(np.float64)
        for j, label in enumerate(s["labels"]):
            hue = np.median(hsv[s["masks"][j] > 0, 0]) * 360 / 256
            target = (0.0, 120.0, 240.0)[label]
            assert min(abs(hue - target), 360 - abs(hue - target)) <= 20 + 12  # jitter + shading/noise
    free = SyntheticShapes(10, 64, 64, seed=2, hue_jitter=None)
    assert not np.array_equal(free[0]["image"], ds[0]["image"])
    with pytest.raises(ValueError, match="hue_jitter"):
        SyntheticShapes(2, 32, 32, hue_jitter=200)
