"""build_pipeline: config lists to albumentations, error messages, and samples kept in the contract.

Pipelines are plain ``A.Compose`` objects; samples run through them by ``augment.call_albumentations``.
"""

import numpy as np
import pytest

from augment import call_albumentations
from segdet.data import build_pipeline


def _sample(rng, h=32, w=48):
    masks = np.zeros((2, h, w), np.uint8)
    masks[0, 2:10, 3:12] = 1
    masks[1, 20:30, 35:46] = 1
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "mask": rng.integers(0, 3, (h, w)).astype(np.uint8),
        "masks": masks,
        "bboxes": np.array([[3, 2, 12, 10], [35, 20, 46, 30]], np.float32),
        "labels": np.array([1, 0], np.int64),
    }


def test_flip_matches_numpy_reference():
    s = _sample(np.random.default_rng(0))
    out = call_albumentations(build_pipeline([{"HorizontalFlip": {"p": 1.0}}], boxes=True, key="augment.train"), s)
    np.testing.assert_array_equal(out["image"], s["image"][:, ::-1])
    np.testing.assert_array_equal(out["mask"], s["mask"][:, ::-1])
    np.testing.assert_array_equal(out["masks"], s["masks"][:, :, ::-1])
    w = 48
    ref = np.stack([w - s["bboxes"][:, 2], s["bboxes"][:, 1], w - s["bboxes"][:, 0], s["bboxes"][:, 3]], 1)
    np.testing.assert_allclose(out["bboxes"], ref, atol=1e-4)
    assert out["bboxes"].dtype == np.float32 and out["labels"].dtype == np.int64
    assert out["labels"].tolist() == [1, 0]


def test_dropped_box_drops_its_instance_mask():
    s = _sample(np.random.default_rng(1))
    # crop the left part: the second object (x 35..46) leaves the image
    crop = build_pipeline([{"Crop": {"x_min": 0, "y_min": 0, "x_max": 20, "y_max": 16}}], boxes=True)
    out = call_albumentations(crop, s)
    assert out["bboxes"].shape == (1, 4) and out["labels"].tolist() == [1]
    assert out["masks"].shape == (1, 16, 20)
    np.testing.assert_array_equal(out["masks"][0], s["masks"][0, :16, :20])
    # every box dropped: masks become (0, H, W)
    crop = build_pipeline([{"Crop": {"x_min": 14, "y_min": 12, "x_max": 30, "y_max": 18}}], boxes=True)
    out = call_albumentations(crop, s)
    assert out["bboxes"].shape == (0, 4) and out["labels"].shape == (0,) and out["masks"].shape == (0, 6, 16)


def test_weights_survive_and_missing_fields_are_optional():
    s = _sample(np.random.default_rng(2))
    post = build_pipeline([{"HorizontalFlip": {"p": 1.0}}], boxes=True, label_fields=("labels", "weights"))
    out = call_albumentations(post, {**s, "weights": np.array([0.25, 0.75], np.float32)})
    assert out["weights"].dtype == np.float32 and out["weights"].tolist() == [0.25, 0.75]
    out = call_albumentations(post, s)  # a sample without weights passes and gets none
    assert "weights" not in out and out["labels"].tolist() == [1, 0]
    s.pop("labels")
    assert "labels" not in call_albumentations(build_pipeline([{"VerticalFlip": {"p": 1.0}}], boxes=True), s)


def test_empty_instance_masks_and_no_boxes():
    rng = np.random.default_rng(3)
    s = {
        "image": rng.integers(0, 256, (32, 48, 3), dtype=np.uint8),
        "mask": np.zeros((32, 48), np.uint8),
        "masks": np.zeros((0, 32, 48), np.uint8),
        "bboxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros((0,), np.int64),
    }
    out = call_albumentations(build_pipeline([{"Resize": {"height": 16, "width": 24}}], boxes=True), s)
    assert out["masks"].shape == (0, 16, 24) and out["bboxes"].shape == (0, 4) and out["labels"].dtype == np.int64


def test_float_images_keep_their_0_255_scale_and_soft_masks_pass():
    img = np.full((8, 10, 3), 200.0, np.float32)
    soft = np.random.default_rng(4).dirichlet(np.ones(3), size=(8, 10)).astype(np.float32)
    pipe = build_pipeline(
        [
            {"RandomBrightnessContrast": {"brightness_limit": 0, "contrast_limit": 0, "p": 1}},
            {"HorizontalFlip": {"p": 1}},
        ]
    )
    out = call_albumentations(pipe, {"image": img, "mask": soft})
    assert out["image"].dtype == np.float32
    np.testing.assert_allclose(out["image"], 200.0, rtol=1e-5)
    np.testing.assert_array_equal(out["mask"], soft[:, ::-1])


def test_nested_one_of_and_seed_reproducible():
    steps = [
        {"OneOf": {"transforms": [{"Blur": {"blur_limit": 3}}, "GaussNoise"], "p": 1.0}},
        {"HorizontalFlip": {"p": 0.5}},
        {"RandomBrightnessContrast": None},
    ]
    s = _sample(np.random.default_rng(5))
    s = {"image": s["image"], "mask": s["mask"]}  # the pipeline has no bbox_params
    a = [call_albumentations(build_pipeline(steps, seed=3), s)["image"] for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], s["image"])


def test_empty_pipeline_is_identity():
    s = _sample(np.random.default_rng(6))
    for steps in (None, []):
        out = call_albumentations(build_pipeline(steps, boxes=True), s)
        for k in s:
            np.testing.assert_array_equal(out[k], s[k])


def test_unknown_transform_names_key_and_suggestions():
    with pytest.raises(
        ValueError,
        match=r"augment\.train\[1\]: unknown albumentations transform 'HorizontalFlp'"
        r" \(did you mean 'HorizontalFlip'",
    ):
        build_pipeline([{"VerticalFlip": {}}, {"HorizontalFlp": {"p": 0.5}}], key="augment.train")
    with pytest.raises(ValueError, match=r"did you mean 'HorizontalFlip'"):
        build_pipeline(["horizontalflip"])
    with pytest.raises(ValueError, match=r"augment\.val\[0\]\.OneOf\.transforms\[1\]: unknown .*'Blurr'.*'Blur'"):
        build_pipeline([{"OneOf": {"transforms": ["GaussNoise", {"Blurr": {}}]}}], key="augment.val")


def test_bad_arguments_name_transform_and_argument():
    with pytest.raises(ValueError, match=r"augment\.train\[0\]: Resize has no argument 'widht' \(did you mean 'width'"):
        build_pipeline([{"Resize": {"height": 8, "widht": 8}}], key="augment.train")
    with pytest.raises(ValueError, match=r"bad arguments for Resize: argument height='a'"):
        build_pipeline([{"Resize": {"height": "a", "width": 8}}])
    with pytest.raises(ValueError, match=r"bad arguments for Resize: argument height \(missing\)"):
        build_pipeline([{"Resize": {"width": 8}}])
    with pytest.raises(ValueError, match=r"bad arguments for HorizontalFlip: argument p=3"):
        build_pipeline([{"HorizontalFlip": {"p": 3}}])


def test_malformed_steps():
    with pytest.raises(ValueError, match="must be a list"):
        build_pipeline({"HorizontalFlip": {}}, key="augment.train")
    with pytest.raises(ValueError, match=r"augment\.post\[0\] must be one"):
        build_pipeline([{"HorizontalFlip": {}, "VerticalFlip": {}}], key="augment.post")
    with pytest.raises(ValueError, match="arguments of HorizontalFlip must be a mapping"):
        build_pipeline([{"HorizontalFlip": [0.5]}])
    with pytest.raises(ValueError, match="need boxes=True"):
        build_pipeline([{"HorizontalFlip": {}}], min_visibility=0.5)


def test_box_aware_pipeline_on_samples_without_boxes():
    rng = np.random.default_rng(7)
    s = {
        "image": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
        "mask": rng.integers(0, 2, (12, 16)).astype(np.uint8),
    }
    pipe = build_pipeline([{"HorizontalFlip": {"p": 1.0}}], boxes=True, label_fields=("labels", "weights"))
    out = call_albumentations(pipe, s)
    assert set(out) == {"image", "mask"}
    np.testing.assert_array_equal(out["mask"], s["mask"][:, ::-1])


def test_pipeline_is_a_plain_compose_with_pascal_voc_box_params():
    import albumentations as A

    pipe = build_pipeline([{"HorizontalFlip": {}}], boxes=True, label_fields=("labels", "weights"), min_area=4)
    assert type(pipe) is A.Compose
    params = pipe.processors["bboxes"].params
    assert params.format == "pascal_voc" and params.label_fields == ["labels", "weights"]
    assert params.clip and params.min_area == 4
    assert "bboxes" not in build_pipeline([{"HorizontalFlip": {}}]).processors
    with pytest.raises(ValueError, match=r"augment\.post: label_fields \['weights'\] must include 'labels'"):
        build_pipeline([{"HorizontalFlip": {}}], boxes=True, label_fields=("weights",), key="augment.post")
    with pytest.raises(TypeError, match="the string 'labels'"):
        build_pipeline([{"HorizontalFlip": {}}], boxes=True, label_fields="labels")


def test_transformed_dataset_keeps_instances_in_step_and_reseeds_per_index():
    from segdet.data import TransformedDataset

    data = [_sample(np.random.default_rng(10 + i)) for i in range(4)]
    pipe = build_pipeline(
        [{"RandomCrop": {"height": 16, "width": 24}}, {"HorizontalFlip": {"p": 0.5}}], boxes=True, min_visibility=0.5
    )
    ds = TransformedDataset(data, pipe, seed=3)
    first = [ds[i] for i in range(len(ds))]
    again = [TransformedDataset(data, pipe, seed=3)[i] for i in reversed(range(len(ds)))][::-1]
    for a, b in zip(first, again):  # any order, any process: the same samples
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    for out in first:
        assert out["image"].shape == (16, 24, 3) and out["bboxes"].dtype == np.float32
        assert len(out["bboxes"]) == len(out["labels"]) == len(out["masks"])
        for box, mask in zip(out["bboxes"], out["masks"]):  # each mask lies inside its own box
            rows, cols = np.nonzero(mask)
            assert rows.min() >= box[1] and rows.max() < box[3] and cols.min() >= box[0] and cols.max() < box[2]
    assert any(len(out["labels"]) < 2 for out in first)  # some crop dropped a box
    other = TransformedDataset(data, pipe, seed=4)
    assert not all(np.array_equal(a["image"], other[i]["image"]) for i, a in enumerate(first))
