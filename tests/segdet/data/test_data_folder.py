"""FolderSegmentation on tiny generated folders: loading, value mapping and every bad-input message."""

import re

import numpy as np
import pytest
from PIL import Image

from segdet.data import FolderSegmentation


def _write(root, stem, image, mask, image_ext=".png", mask_ext=".png"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    if image is not None:
        Image.fromarray(image).save(root / "images" / f"{stem}{image_ext}")
    if mask is not None:
        Image.fromarray(mask).save(root / "masks" / f"{stem}{mask_ext}")


def _pair(rng, h=12, w=16, values=(0, 255)):
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.asarray(values, np.uint8)[rng.integers(0, len(values), (h, w))]
    return image, mask


def test_loads_and_maps_values(tmp_path):
    rng = np.random.default_rng(0)
    pairs = {"b": _pair(rng), "a": _pair(rng, 10, 14)}
    for stem, (im, m) in pairs.items():
        _write(tmp_path, stem, im, m)
    ds = FolderSegmentation(tmp_path, classes=["bg", "fg"], mask_values={0: 0, 255: 1})
    assert len(ds) == 2 and ds.classes == ("bg", "fg")
    for i, stem in enumerate(["a", "b"]):  # sorted by stem
        s = ds[i]
        im, m = pairs[stem]
        np.testing.assert_array_equal(s["image"], im)
        ref = np.zeros(m.shape, np.int64)
        for y in range(m.shape[0]):
            for x in range(m.shape[1]):
                ref[y, x] = {0: 0, 255: 1}[int(m[y, x])]
        np.testing.assert_array_equal(s["mask"], ref)
        assert s["bboxes"].shape == (0, 4) and s["labels"].shape == (0,)


def test_jpeg_image_png_mask_and_ignore_and_rgb_grey_mask(tmp_path):
    rng = np.random.default_rng(1)
    im, _ = _pair(rng)
    mask = np.zeros((12, 16), np.uint8)
    mask[:3] = 255  # ignore
    mask[5:, 4:] = 2
    _write(tmp_path, "x", im, np.repeat(mask[:, :, None], 3, axis=2), image_ext=".JPG")
    ds = FolderSegmentation(tmp_path, classes=["a", "b", "c"])
    s = ds[0]
    assert s["image"].shape == (12, 16, 3)
    np.testing.assert_array_equal(s["mask"], mask)


def test_classes_inferred_from_contiguous_masks(tmp_path):
    rng = np.random.default_rng(2)
    _write(tmp_path, "a", *_pair(rng, values=(0, 1, 2)))
    assert FolderSegmentation(tmp_path).classes == ("class_0", "class_1", "class_2")
    assert FolderSegmentation(tmp_path, mask_values={7: 4}).classes == tuple(f"class_{i}" for i in range(5))


def test_non_contiguous_values_without_mapping(tmp_path):
    _write(tmp_path, "a", *_pair(np.random.default_rng(3), values=(0, 128)))
    with pytest.raises(ValueError, match=r"\[0, 128\].*mask_values"):
        FolderSegmentation(tmp_path)


def test_missing_dirs(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "nope"))):
        FolderSegmentation(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "masks")) + ".*does not exist"):
        FolderSegmentation(tmp_path)


def test_image_without_mask_and_mask_without_image(tmp_path):
    rng = np.random.default_rng(4)
    im, m = _pair(rng)
    _write(tmp_path, "a", im, m)
    _write(tmp_path, "lonely", im, None)
    with pytest.raises(ValueError, match=r"image .*lonely\.png has no mask"):
        FolderSegmentation(tmp_path, mask_values={255: 1})
    (tmp_path / "images" / "lonely.png").unlink()
    _write(tmp_path, "orphan", None, m)
    with pytest.raises(ValueError, match=r"mask .*orphan\.png has no image"):
        FolderSegmentation(tmp_path, mask_values={255: 1})


def test_duplicate_stems(tmp_path):
    rng = np.random.default_rng(5)
    im, m = _pair(rng)
    _write(tmp_path, "a", im, m)
    _write(tmp_path, "a", im, None, image_ext=".jpg")
    with pytest.raises(ValueError, match="share the stem 'a'"):
        FolderSegmentation(tmp_path, mask_values={255: 1})


def test_size_mismatch_up_front(tmp_path):
    rng = np.random.default_rng(6)
    im, _ = _pair(rng, 12, 16)
    _, m = _pair(rng, 12, 15)
    _write(tmp_path, "a", im, m)
    with pytest.raises(ValueError, match=r"mask .*a\.png is 12x15 but image .*a\.png is 12x16"):
        FolderSegmentation(tmp_path, mask_values={255: 1})


def test_bad_mask_value_up_front_and_at_load(tmp_path):
    rng = np.random.default_rng(7)
    _write(tmp_path, "a", *_pair(rng, values=(0, 1)))
    _write(tmp_path, "b", *_pair(rng, values=(0, 1, 7)))
    pattern = r"mask .*b\.png has values \[7\].*0\.\.1.*ignore_index 255.*data\.folder\.mask_values"
    with pytest.raises(ValueError, match=pattern):
        FolderSegmentation(tmp_path, classes=["bg", "fg"])
    ds = FolderSegmentation(tmp_path, classes=["bg", "fg"], scan_masks=False)  # checked at load only
    ds[0]
    with pytest.raises(ValueError, match=pattern):
        ds[1]
    # mapping the stray value fixes it, mapping to ignore_index too
    assert FolderSegmentation(tmp_path, classes=["bg", "fg"], mask_values={7: 255})[1]["mask"].max() == 255


def test_colour_mask_rejected(tmp_path):
    rng = np.random.default_rng(8)
    im, _ = _pair(rng)
    _write(tmp_path, "a", im, rng.integers(0, 3, (12, 16, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"a\.png is a colour"):
        FolderSegmentation(tmp_path, classes=["a", "b", "c"])


def test_unreadable_image(tmp_path):
    rng = np.random.default_rng(9)
    _write(tmp_path, "a", *_pair(rng))
    (tmp_path / "images" / "a.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"cannot read image file .*a\.png"):
        FolderSegmentation(tmp_path, mask_values={255: 1})
    # valid header, truncated pixel data: passes the header check, fails at load
    _write(tmp_path, "a", *_pair(rng, 64, 64))
    data = (tmp_path / "images" / "a.png").read_bytes()
    (tmp_path / "images" / "a.png").write_bytes(data[: len(data) // 2])
    ds = FolderSegmentation(tmp_path, mask_values={255: 1})
    with pytest.raises(ValueError, match=r"cannot read image file .*a\.png.*re-export"):
        ds[0]


def test_bad_mapping_types(tmp_path):
    _write(tmp_path, "a", *_pair(np.random.default_rng(10)))
    with pytest.raises(TypeError, match="data.folder.mask_values"):
        FolderSegmentation(tmp_path, mask_values={"x": 1})
    with pytest.raises(TypeError, match="data.folder.mask_values"):
        FolderSegmentation(tmp_path, mask_values=[0, 255])


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"classes": ["bg", "fg"]}, {"mode": "binary"}, {"classes": ["bg", "fg"], "scan_masks": False}],
    ids=["inferred", "named", "binary", "not-scanned"],
)
def test_zero_255_masks_without_mapping_stop_with_the_mapping(tmp_path, kwargs):
    rng = np.random.default_rng(11)
    for stem in ("a", "b"):
        _write(tmp_path, stem, *_pair(rng, values=(0, 255)))
    pattern = r"masks .*hold only 0 and 255.*data\.folder\.mask_values=\{0: 0, 255: 1\}"
    with pytest.raises(ValueError, match=pattern):
        FolderSegmentation(tmp_path, **kwargs)
    # the proposed mapping trains the objects; naming 255 as ignored is a deliberate choice
    assert FolderSegmentation(tmp_path, mask_values={0: 0, 255: 1}, **kwargs)[0]["mask"].max() == 1
    assert FolderSegmentation(tmp_path, classes=["bg"], mask_values={255: 255})[0]["mask"].max() == 255


def test_255_as_a_border_next_to_classes_is_ignore(tmp_path):
    rng = np.random.default_rng(12)
    _write(tmp_path, "a", *_pair(rng, values=(0, 1, 2, 255)))
    _write(tmp_path, "b", *_pair(rng, values=(0, 255)))  # one image with background and border only
    ds = FolderSegmentation(tmp_path)
    assert ds.classes == ("class_0", "class_1", "class_2") and ds[1]["mask"].max() == 255
