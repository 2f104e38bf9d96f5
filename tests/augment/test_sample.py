"""augment.sample: the contract table, normalise_sample and call_albumentations."""

import os
import re

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

import augment.sample  # noqa: E402
from augment import PER_BOX_KEYS, SAMPLE_KEYS, call_albumentations, normalise_sample  # noqa: E402

H, W = 24, 40


def _compose(*transforms, fields=("labels",), **options):
    params = A.BboxParams(format="pascal_voc", label_fields=list(fields), **options)
    return A.Compose(list(transforms), bbox_params=params)


def _instances(rng, n):
    """n random integer boxes inside H x W with instance masks equal to their box raster."""
    x0, y0 = rng.integers(0, W - 2, n), rng.integers(0, H - 2, n)
    x1, y1 = x0 + 1 + rng.integers(0, W - 1 - x0), y0 + 1 + rng.integers(0, H - 1 - y0)
    boxes = np.stack([x0, y0, x1, y1], 1).astype(np.float32)
    masks = np.zeros((n, H, W), np.uint8)
    for i, (a, b, c, d) in enumerate(boxes.astype(int)):
        masks[i, b:d, a:c] = 1
    return boxes, masks


def _doc_table():
    """The module docstring's table as {key: [dtype, shape, meaning]}; wrapped cells are joined."""
    lines = augment.sample.__doc__.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("==="))
    starts = [m.start() for m in re.finditer(r"=+", lines[rule])]
    end = next(i for i in range(rule + 3, len(lines)) if lines[i].startswith("==="))
    rows = {}
    for line in lines[rule + 3 : end]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
        if cells[0]:
            rows[cells[0]] = cells[1:]
        else:  # a cell continued on the next line
            last = rows[next(reversed(rows))]
            rows[next(reversed(rows))] = [f"{a} {b}".strip() for a, b in zip(last, cells[1:])]
    return rows


def test_docstring_table_is_sample_keys():
    table = _doc_table()
    assert list(table) == list(SAMPLE_KEYS)
    for key, spec in SAMPLE_KEYS.items():
        assert table[key] == [spec.dtype, spec.shape, spec.meaning]
    assert set(PER_BOX_KEYS) <= set(SAMPLE_KEYS)


def test_normalise_gives_the_dtypes_of_the_table():
    s = normalise_sample(
        {
            "image": np.zeros((H, W, 3), np.uint8),
            "mask": [[0] * W] * H,
            "bboxes": [[1, 2, 3, 4.5]],
            "labels": [3.0],
            "weights": [1],
            "label_vector": [[0, 1]],
            "masks": [np.ones((H, W), bool)],
        }
    )
    for key in ("bboxes", "labels", "weights", "label_vector"):
        assert s[key].dtype == np.dtype(SAMPLE_KEYS[key].dtype), key
    assert s["bboxes"].shape == (1, 4) and s["labels"].tolist() == [3] and s["label_vector"].shape == (2,)
    assert s["masks"].shape == (1, H, W) and isinstance(s["mask"], np.ndarray)


@pytest.mark.parametrize("empty", [[], (), np.zeros(0), np.zeros((0, 1, 1), np.uint8)])
def test_normalise_empty_masks_take_the_image_size(empty):
    s = normalise_sample({"image": np.zeros((H, W, 3), np.uint8), "masks": empty, "bboxes": []})
    assert s["masks"].shape == (0, H, W) and s["masks"].dtype == np.uint8
    assert s["bboxes"].shape == (0, 4)


def test_normalise_copies_and_leaves_the_input_alone():
    src = {"image": np.zeros((2, 2, 3), np.uint8), "bboxes": [[0, 0, 1, 1]], "labels": [1], "extra": "x"}
    out = normalise_sample(src)
    assert out is not src and src["bboxes"] == [[0, 0, 1, 1]] and out["extra"] == "x"
    with pytest.raises(TypeError, match="list"):
        normalise_sample([src])
    with pytest.raises(ValueError, match="needs an 'image'"):
        normalise_sample({"masks": []})


def _reference(sample, window, min_visibility):
    """Per box: crop, clip and keep it alone, the way a crop is documented to filter boxes."""
    x0, y0, x1, y1 = window
    kept = []
    for i, (a, b, c, d) in enumerate(sample["bboxes"]):
        box = np.array([max(a, x0), max(b, y0), min(c, x1), min(d, y1)]) - [x0, y0, x0, y0]
        area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
        if area > 0 and area >= min_visibility * (c - a) * (d - b):
            kept.append((i, box))
    out = {
        "bboxes": np.array([b for _, b in kept], np.float32).reshape(-1, 4),
        "labels": np.array([sample["labels"][i] for i, _ in kept], np.int64),
        "weights": np.array([sample["weights"][i] for i, _ in kept], np.float32),
        "masks": np.array([sample["masks"][i, y0:y1, x0:x1] for i, _ in kept], np.uint8).reshape(-1, y1 - y0, x1 - x0),
    }
    return out


@pytest.mark.parametrize("seed", range(6))
def test_crop_keeps_labels_weights_and_masks_in_step_like_a_per_box_reference(seed):
    rng = np.random.default_rng(seed)
    boxes, masks = _instances(rng, 8)
    sample = {
        "image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "mask": rng.integers(0, 3, (H, W)),
        "bboxes": boxes,
        "labels": rng.permutation(8) + 10,
        "weights": rng.random(8).astype(np.float32),
        "masks": masks,
    }
    for _ in range(4):
        x0, y0 = int(rng.integers(0, W - 8)), int(rng.integers(0, H - 8))
        x1, y1 = x0 + int(rng.integers(4, W - x0 + 1)), y0 + int(rng.integers(4, H - y0 + 1))
        crop = _compose(A.Crop(x_min=x0, y_min=y0, x_max=x1, y_max=y1), min_visibility=0.3)
        out = call_albumentations(crop, sample)
        ref = _reference(sample, (x0, y0, x1, y1), 0.3)
        np.testing.assert_allclose(out["bboxes"], ref["bboxes"], atol=1e-4)
        for key in ("labels", "weights", "masks"):
            assert out[key].dtype == ref[key].dtype, key
            np.testing.assert_array_equal(out[key], ref[key], err_msg=key)
        np.testing.assert_array_equal(out["mask"], sample["mask"][y0:y1, x0:x1])


def test_boxes_on_a_crop_border_are_dropped_with_their_masks():
    """albumentations keeps a box whose edge lies on the crop border, flat after clipping; it goes."""
    boxes = np.array([[4, 16, 12, 22], [16, 2, 20, 8], [2, 2, 8, 8], [20, 10, 30, 16]], np.float32)
    masks = np.zeros((4, H, W), np.uint8)
    for i, (a, b, c, d) in enumerate(boxes.astype(int)):
        masks[i, b:d, a:c] = 1
    sample = {"image": np.zeros((H, W, 3), np.uint8), "bboxes": boxes, "labels": [1, 2, 3, 4], "masks": masks}
    # box 0 starts at the crop's bottom edge (y = 16), box 1 at its right edge (x = 16)
    out = call_albumentations(_compose(A.Crop(x_min=0, y_min=0, x_max=16, y_max=16)), sample)
    assert out["labels"].tolist() == [3]
    np.testing.assert_array_equal(out["bboxes"], [[2, 2, 8, 8]])
    np.testing.assert_array_equal(out["masks"], masks[[2], :16, :16])


@pytest.mark.parametrize("seed", range(4))
def test_random_crops_of_many_touching_boxes_match_the_per_box_reference(seed):
    """Integer boxes on a 4 px grid at 480x640 and crops on the same grid: edges meet borders often."""
    rng = np.random.default_rng(seed)
    h, w, n = 480, 640, 300
    x0, y0 = rng.integers(0, w // 4 - 1, n) * 4, rng.integers(0, h // 4 - 1, n) * 4
    x1 = np.minimum(x0 + 4 * rng.integers(1, 12, n), w)
    y1 = np.minimum(y0 + 4 * rng.integers(1, 12, n), h)
    boxes = np.stack([x0, y0, x1, y1], 1).astype(np.float32)
    masks = np.zeros((n, h, w), np.uint8)
    for i, (a, b, c, d) in enumerate(boxes.astype(int)):
        masks[i, b:d, a:c] = 1
    sample = {"image": np.zeros((h, w, 3), np.uint8), "bboxes": boxes, "labels": np.arange(n),
              "weights": rng.random(n).astype(np.float32), "masks": masks}  # fmt: skip
    cx0, cy0 = 4 * int(rng.integers(0, 60)), 4 * int(rng.integers(0, 40))
    cx1, cy1 = cx0 + 4 * int(rng.integers(20, 100)), cy0 + 4 * int(rng.integers(20, 70))
    cx1, cy1 = min(cx1, w), min(cy1, h)
    out = call_albumentations(_compose(A.Crop(x_min=cx0, y_min=cy0, x_max=cx1, y_max=cy1)), sample)
    ref = _reference(sample, (cx0, cy0, cx1, cy1), 0.0)
    assert len(ref["labels"]) < n  # the crop drops boxes, on its borders among them
    np.testing.assert_allclose(out["bboxes"], ref["bboxes"], atol=1e-3)
    for key in ("labels", "weights", "masks"):
        np.testing.assert_array_equal(out[key], ref[key], err_msg=key)


def test_keep_index_ignores_the_label_values():
    """Labels that repeat, or equal box indices, are still selected per box."""
    boxes = np.array([[0, 0, 8, 8], [30, 0, 40, 10], [10, 12, 20, 24]], np.float32)  # box 1 leaves the crop
    masks = np.stack([np.pad(np.ones((4, 4), np.uint8), ((i, H - 4 - i), (i, W - 4 - i))) for i in range(3)])
    sample = {"image": np.zeros((H, W, 3), np.uint8), "bboxes": boxes, "labels": [2, 1, 2], "masks": masks}
    out = call_albumentations(_compose(A.Crop(x_min=0, y_min=0, x_max=28, y_max=H)), sample)
    assert out["labels"].tolist() == [2, 2]
    np.testing.assert_array_equal(out["masks"], masks[[0, 2], :, :28])


def test_fields_the_sample_lacks_are_filled_for_the_call_and_left_out():
    boxes, masks = _instances(np.random.default_rng(1), 2)
    pipe = _compose(A.HorizontalFlip(p=1.0), fields=("labels", "weights"))
    image = np.zeros((H, W, 3), np.uint8)
    assert set(call_albumentations(pipe, {"image": image})) == {"image"}
    out = call_albumentations(pipe, {"image": image, "bboxes": boxes})
    assert set(out) == {"image", "bboxes"} and out["bboxes"].shape == (2, 4)
    out = call_albumentations(pipe, {"image": image, "bboxes": boxes, "labels": [4, 5], "masks": masks})
    assert out["labels"].tolist() == [4, 5] and "weights" not in out
    np.testing.assert_array_equal(out["masks"], masks[:, :, ::-1])


def test_no_instances_and_no_boxes():
    pipe = _compose(A.Resize(12, 20))
    s = {
        "image": np.zeros((H, W, 3), np.uint8),
        "bboxes": np.zeros((0, 4)),
        "labels": [],
        "weights": [],
        "masks": np.zeros((0, H, W), np.uint8),
    }
    out = call_albumentations(pipe, s)
    assert out["masks"].shape == (0, 12, 20) and out["bboxes"].shape == (0, 4)
    assert out["labels"].dtype == np.int64 and out["weights"].dtype == np.float32
    out = call_albumentations(pipe, {"image": s["image"], "masks": []})  # masks without boxes
    assert out["masks"].shape == (0, 12, 20)


def test_float_images_are_scaled_for_the_transforms_and_back():
    seen = []

    def record(image, **kwargs):
        seen.append(float(image.max()))
        return image

    pipe = A.Compose([A.Lambda(image=record), A.HorizontalFlip(p=1.0)])
    image = np.full((4, 6, 3), 200.0, np.float32)
    image[0, 0] = 255.0
    out = call_albumentations(pipe, {"image": image})
    assert seen == [1.0] and out["image"].dtype == np.float32
    np.testing.assert_allclose(out["image"], image[:, ::-1], rtol=1e-6)
    u8 = call_albumentations(pipe, {"image": image.astype(np.uint8)})
    assert seen[-1] == 255.0 and u8["image"].dtype == np.uint8


def test_boxes_need_a_pascal_voc_compose_with_labels():
    boxes, _ = _instances(np.random.default_rng(2), 1)
    s = {"image": np.zeros((H, W, 3), np.uint8), "bboxes": boxes, "labels": [1]}
    with pytest.raises(ValueError, match="Compose has no bbox_params"):
        call_albumentations(A.Compose([A.HorizontalFlip(p=1.0)]), s)
    with pytest.raises(ValueError, match="HorizontalFlip has no bbox_params"):
        call_albumentations(A.HorizontalFlip(p=1.0), s)
    with pytest.raises(ValueError, match="format='yolo'"):
        call_albumentations(A.Compose([A.HorizontalFlip()], bbox_params=A.BboxParams(format="yolo")), s)
    with pytest.raises(ValueError, match=r"label_fields=\['classes'\]"):
        call_albumentations(_compose(A.HorizontalFlip(), fields=("classes",)), s)
    assert call_albumentations(A.Compose([]), s)["labels"].tolist() == [1]  # an empty Compose moves nothing
    with pytest.raises(TypeError, match="function"):
        call_albumentations(lambda **kw: kw, s)


def test_per_box_arrays_of_another_length_are_refused():
    boxes, masks = _instances(np.random.default_rng(3), 2)
    s = {"image": np.zeros((H, W, 3), np.uint8), "bboxes": boxes, "labels": [1, 2]}
    pipe = _compose(A.HorizontalFlip(p=1.0))
    with pytest.raises(ValueError, match="2 bboxes but 3 labels"):
        call_albumentations(pipe, {**s, "labels": [1, 2, 3]})
    with pytest.raises(ValueError, match="2 bboxes but 1 weights"):
        call_albumentations(pipe, {**s, "weights": [1.0]})
    with pytest.raises(ValueError, match="2 bboxes but 1 instance masks"):
        call_albumentations(pipe, {**s, "masks": masks[:1]})


def test_the_sample_is_not_modified():
    boxes, masks = _instances(np.random.default_rng(4), 3)
    s = {"image": np.zeros((H, W, 3), np.float32), "bboxes": boxes, "labels": [1, 2, 3], "masks": masks}
    before = {k: np.array(v, copy=True) for k, v in s.items()}
    call_albumentations(_compose(A.Crop(x_min=0, y_min=0, x_max=10, y_max=10)), s)
    assert all(np.array_equal(before[k], s[k]) for k in s)
