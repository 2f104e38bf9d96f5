"""write_preview: grid size, overlay colours, ignore hatching, soft masks, atomic write."""

import cv2
import numpy as np
import pytest

from segdet.data import SyntheticShapes
from segdet.palette import class_palette
from segdet.preview import write_preview


def _read(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_grid_size(tmp_path):
    ds = SyntheticShapes(7, 40, 56)
    out = write_preview(ds, ds.CLASSES, tmp_path / "sub" / "p.png", num=5)
    # 5 tiles -> 3 columns x 2 rows of 40x56 with 4 px gaps, plus a legend of ceil(4 / 3) = 2 rows of 14 px
    assert _read(out).shape == (2 * (40 + 4) + 4 + 2 * 14, 3 * (56 + 4) + 4, 3)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["p.png"]  # no temporary file left
    # more tiles asked than samples: all samples, once
    big = write_preview(ds, ds.CLASSES, tmp_path / "all.png", num=50)
    assert _read(big).shape == (3 * 44 + 4 + 2 * 14, 3 * 60 + 4, 3)


class _One:
    """One hand-made sample with a known mask."""

    def __init__(self, sample):
        self.sample = sample

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.sample


def test_overlay_colours_and_ignore(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 5:15] = 2
    mask[5:25, 25:35] = 255
    out = _read(write_preview(_One({"image": image, "mask": mask}), ["bg", "a", "b"], tmp_path / "p.png"))
    tile = out[4:34, 4:44].astype(np.float64)
    assert np.abs(tile[mask == 0] - image[mask == 0]).max() <= 1  # class 0 transparent
    blend = 0.5 * image[mask == 2] + 0.5 * class_palette(3)[2]
    assert np.abs(tile[mask == 2] - blend).max() <= 1
    ign = tile[mask == 255]
    white = (ign == 255).all(axis=1)
    assert 0.2 < white.mean() < 0.5  # hatched
    assert np.abs(ign[~white] - 0.6 * image[mask == 255][~white]).max() <= 1


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
    a = _read(write_preview(_One(sample), ["bg", "a", "b"], tmp_path / "a.png", box_classes=["x", "y"]))
    b = _read(write_preview(_One(plain), ["bg", "a", "b"], tmp_path / "b.png"))
    assert a.shape == b.shape
    diff = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 0
    ys, xs = np.nonzero(diff)
    assert diff.any() and xs.min() >= 4 + 2 - 1 and ys.max() <= 4 + 25  # only the box and its label changed


def test_bad_arguments(tmp_path):
    ds = SyntheticShapes(2, 32, 32)
    with pytest.raises(ValueError, match="num"):
        write_preview(ds, ds.CLASSES, tmp_path / "p.png", num=0)
    with pytest.raises(ValueError, match="empty"):
        write_preview(SyntheticShapes(0, 32, 32), ds.CLASSES, tmp_path / "p.png")
