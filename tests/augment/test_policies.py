"""AutoAugment / RandAugment / TrivialAugment: colour ops against torchvision, geometric ops move masks and boxes."""

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augment import POLICIES, auto_augment, call_albumentations, rand_augment, trivial_augment
from augment.policies import IMAGENET_POLICY, _op, _space
from segdet.data import build_pipeline

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (33, 41, 3), dtype=np.uint8)


def _tv(name, m, image):
    t = torch.from_numpy(image).permute(2, 0, 1)
    out = {
        "Brightness": lambda: TF.adjust_brightness(t, 1 + m),
        "Color": lambda: TF.adjust_saturation(t, 1 + m),
        "Contrast": lambda: TF.adjust_contrast(t, 1 + m),
        "Sharpness": lambda: TF.adjust_sharpness(t, 1 + m),
        "Posterize": lambda: TF.posterize(t, int(m)),
        "Solarize": lambda: TF.solarize(t, m),
        "AutoContrast": lambda: TF.autocontrast(t),
        "Equalize": lambda: TF.equalize(t),
        "Invert": lambda: TF.invert(t),
    }[name]()
    return out.permute(1, 2, 0).numpy()


@pytest.mark.parametrize(
    "name,m",
    [
        ("Brightness", 0.6),
        ("Brightness", -0.5),
        ("Color", 0.9),
        ("Color", -0.9),
        ("Contrast", 0.45),
        ("Contrast", -0.3),
        ("Sharpness", 0.9),
        ("Sharpness", -0.9),
        ("Posterize", 5),
        ("Solarize", 128.0),
        ("AutoContrast", 0),
        ("Equalize", 0),
        ("Invert", 0),
    ],
)
def test_colour_operations_equal_torchvision_on_the_image_and_leave_masks(name, m):
    mask = RNG.integers(0, 4, IMAGE.shape[:2]).astype(np.uint8)
    out = A.Compose([_op(name, m, 0, 255, 1, True)])(image=IMAGE, mask=mask)
    diff = np.abs(out["image"].astype(int) - _tv(name, m, IMAGE).astype(int))
    # one grey level of rounding; torchvision rounds the grey image to uint8 before blending the
    # saturation (2 levels), and equalize rounds its cumulative histogram differently (3 levels)
    assert diff.max() <= {"Equalize": 3, "Color": 2}.get(name, 1), (name, m, diff.max())
    np.testing.assert_array_equal(out["mask"], mask)


@pytest.mark.parametrize(
    "name,m", [("ShearX", 0.3), ("ShearY", -0.2), ("TranslateX", 0.3), ("TranslateY", -0.25), ("Rotate", 30.0)]
)
def test_geometric_operations_move_mask_boxes_and_instances_with_the_image(name, m):
    h, w = 48, 64
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 12:40] = 1
    mask[30:44, 40:60] = 2
    image = np.stack([mask * 100] * 3, axis=-1).astype(np.uint8)  # the mask, colour coded
    instance = (mask == 1).astype(np.uint8)[None]
    pipe = A.Compose(
        [_op(name, m, 0, 255, cv2.INTER_NEAREST, True)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True),
    )
    sample = {"image": image, "mask": mask, "masks": instance, "bboxes": np.array([[12, 10, 40, 30]], np.float32)}
    out = call_albumentations(pipe, {**sample, "labels": np.array([1])})
    moved = out["mask"] != 255
    assert (~moved).any() and moved.mean() > 0.5  # something moved in from outside, most stayed
    np.testing.assert_array_equal(out["image"][..., 0][moved], out["mask"][moved].astype(np.uint8) * 100)
    assert (out["image"][~moved] == 0).all()  # the image's fill where the mask got its fill
    np.testing.assert_array_equal(out["masks"][0] != 0, out["mask"] == 1)  # the instance moved as the mask did
    if len(out["bboxes"]):
        ys, xs = np.nonzero(out["masks"][0])
        x0, y0, x1, y1 = out["bboxes"][0]
        assert x0 <= xs.min() + 1 and y0 <= ys.min() + 1 and x1 >= xs.max() and y1 >= ys.max()  # the box holds it


def test_the_magnitudes_are_the_published_ranges():
    s = _space(31, wide=False)
    assert s["Rotate"][-1] == 30.0 and s["ShearX"][-1] == 0.3 and s["TranslateX"][-1] == pytest.approx(150 / 331)
    assert s["Posterize"][0] == 8 and s["Posterize"][-1] == 4 and s["Solarize"][0] == 255 and s["Solarize"][-1] == 0
    wide = _space(31, wide=True)
    assert wide["Rotate"][-1] == 135.0 and wide["TranslateX"][-1] == 32.0 and wide["Posterize"][-1] == 2
    ra = rand_augment(num_ops=2, magnitude=9)
    assert isinstance(ra, A.SomeOf) and ra.n == 2 and ra.replace and len(ra.transforms) == 14
    rotate = ra.transforms[5]  # +-9 degrees at bin 9 of 31
    assert isinstance(rotate, A.OneOf) and sorted(t.rotate[0] for t in rotate.transforms) == [-9.0, 9.0]
    ta = trivial_augment()
    assert isinstance(ta, A.OneOf) and len(ta.transforms) == 14 and len(ta.transforms[5].transforms) == 31
    aa = auto_augment()
    assert len(aa.transforms) == len(IMAGENET_POLICY) == 25
    assert [t.p for t in aa.transforms[0].transforms] == [0.4, 0.6]  # (Posterize 0.4, 8), (Rotate 0.6, 9)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policies_in_a_config_pipeline_are_reproducible_and_keep_the_sample_contract(name):
    pipe = build_pipeline([{name: {}}], boxes=True, key="augment.train")
    mask = np.zeros((40, 52), np.int64)
    mask[5:25, 8:30] = 1
    sample = {
        "image": RNG.integers(0, 256, (40, 52, 3), dtype=np.uint8),
        "mask": mask,
        "masks": (mask == 1).astype(np.uint8)[None],
        "bboxes": np.array([[8, 5, 30, 25]], np.float32),
        "labels": np.array([0]),
    }
    outs = []
    for _ in range(2):
        pipe.set_random_seed(11)
        outs.append([call_albumentations(pipe, sample) for _ in range(6)])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])
        assert a["image"].shape == (40, 52, 3) and a["mask"].shape == (40, 52)
        assert len(a["bboxes"]) == len(a["labels"]) == len(a["masks"]) <= 1
    assert any(not np.array_equal(o["image"], sample["image"]) for o in outs[0])


def test_bad_policy_arguments_are_one_clear_error():
    with pytest.raises(ValueError, match=r"magnitude is a bin in 0..30"):
        rand_augment(magnitude=31)
    with pytest.raises(ValueError, match="num_ops must be an int >= 1"):
        rand_augment(num_ops=0)
    with pytest.raises(ValueError, match="policy must be 'imagenet'"):
        auto_augment("cifar10")
    with pytest.raises(ValueError, match=r"augment.train\[0\]: RandAugment has no argument 'magnitudes'.*magnitude"):
        build_pipeline([{"RandAugment": {"magnitudes": 9}}], key="augment.train")
    with pytest.raises(ValueError, match=r"augment.train\[0\]: bad arguments for TrivialAugment"):
        build_pipeline([{"TrivialAugment": {"num_magnitude_bins": 1}}], key="augment.train")
