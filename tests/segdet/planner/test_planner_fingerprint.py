"""Fingerprint figures against naive float64 numpy references and scipy.ndimage.label on generated folders."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PIL import Image
from planner_data import draw_discs, make_folder, random_discs, write_pair

from segdet.planner.fingerprint import MAX_MASK_VALUES, fingerprint, sample_indices
from segdet.planner.layout import find_layout
from segdet.planner.plan import plan_data

ndimage = pytest.importorskip("scipy.ndimage")


def _naive_rgb(path) -> np.ndarray:
    """The image as segdet trains on it, decoded independently: PIL's RGB conversion (alpha dropped)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _naive_diameters(mask: np.ndarray, value: int) -> list[float]:
    labels, count = ndimage.label(mask == value, structure=np.ones((3, 3), int))  # 8-connectivity
    areas = np.bincount(labels.ravel())[1:]
    assert len(areas) == count
    return [math.sqrt(4 * a / math.pi) for a in areas]


def _check_against_naive(fp, images, masks):
    pixels = np.concatenate([im.reshape(-1, 3) for im in images]) / 255.0
    np.testing.assert_allclose(fp.mean, pixels.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fp.std, pixels.std(axis=0), rtol=0, atol=1e-9)
    values = sorted(set(np.concatenate([np.unique(m) for m in masks]).tolist()))
    assert fp.values == values
    for v in values:
        assert fp.value_pixels[v] == sum(int((m == v).sum()) for m in masks)
        assert fp.value_masks[v] == sum(bool((m == v).any()) for m in masks)
        halves = [0, 0, 0, 0]
        for m in masks:
            h, w = m.shape
            for i, part in enumerate((m[: h // 2], m[h - h // 2 :], m[:, : w // 2], m[:, w - w // 2 :])):
                halves[i] += int((part == v).sum())
        assert fp.value_halves[v] == tuple(halves)
        expected = sorted(d for m in masks for d in _naive_diameters(m, v))
        np.testing.assert_allclose(sorted(fp.diameters[v]), expected, rtol=1e-12)
    grey = [im.mean(axis=2) for im in images]
    rows = sum(float(np.square(np.diff(g, axis=0)).sum()) for g in grey) / sum(g[1:].size for g in grey)
    cols = sum(float(np.square(np.diff(g, axis=1)).sum()) for g in grey) / sum(g[:, 1:].size for g in grey)
    np.testing.assert_allclose(fp.edge_energy, (rows, cols), rtol=1e-5)


def test_figures_match_naive_references_on_small_images(tmp_path):
    make_folder(tmp_path / "train", 7, shape=((48, 64), (64, 48), (40, 40)), radii=(2, 7), discs=6, values=(1, 2))
    make_folder(tmp_path / "val", 3, shape=(32, 96), seed=5)
    fp = fingerprint(find_layout(tmp_path))
    lay = fp.layout
    assert fp.read == 7
    assert fp.train_sizes == tuple(np.asarray(Image.open(p)).shape[:2] for p in lay.train_images)
    assert fp.val_sizes == ((32, 96),) * 3
    assert fp.typical_size == (48, 48) and fp.min_size == (32, 40) and fp.max_size == (64, 96)
    assert fp.modes == {"RGB": 10}
    images = [_naive_rgb(p) for p in lay.train_images]
    masks = [np.asarray(Image.open(p)) for p in lay.train_masks]
    _check_against_naive(fp, images, masks)


def test_figures_match_naive_references_at_a_realistic_size(tmp_path):
    rng = np.random.default_rng(3)
    for split, count in (("train", 3), ("val", 1)):
        for i in range(count):
            shape = (520, 696)
            mask = draw_discs(shape, random_discs(rng, shape, 120, (3, 25), values=(255,)))
            image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            write_pair(tmp_path / split, f"{split}{i}", image, mask, mode="RGBA")
    fp = fingerprint(find_layout(tmp_path))
    lay = fp.layout
    assert fp.modes == {"RGBA": 4}
    images = [_naive_rgb(p) for p in lay.train_images]
    masks = [np.asarray(Image.open(p)) for p in lay.train_masks]
    _check_against_naive(fp, images, masks)
    assert len(fp.diameters[255]) > 50  # discs overlap into fewer components; scipy agrees on which


def test_grey_images_are_read_as_rgb(tmp_path):
    make_folder(tmp_path / "train", 3, mode="L")
    make_folder(tmp_path / "val", 1, seed=2, mode="L")
    fp = fingerprint(find_layout(tmp_path))
    assert fp.modes == {"L": 4}
    assert fp.mean[0] == pytest.approx(fp.mean[1]) == pytest.approx(fp.mean[2])
    images = [_naive_rgb(p) for p in fp.layout.train_images]
    np.testing.assert_allclose(fp.mean, np.concatenate([im.reshape(-1, 3) for im in images]).mean(0) / 255, atol=1e-12)


def test_class_frequencies_and_objects_per_class(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    masks = []
    for i in range(4):
        mask = np.zeros((80, 80), np.uint8)
        mask[10:20, 10:30] = 128  # one 10x20 block of class 1
        mask[50:54, 50:54] = 255  # one 4x4 block of class 2
        mask[60:62, 10:12] = 255  # and one 2x2
        masks.append(mask)
        write_pair(root, f"{i}", rng.integers(0, 255, (80, 80, 3), dtype=np.uint8), mask)
    fp = fingerprint(find_layout(root))
    d = plan_data(fp)
    read = [np.asarray(Image.open(p)) for p in fp.layout.train_masks]
    total = sum(m.size for m in read)
    assert d.mask_values == {0: 0, 128: 1, 255: 2}
    for cls, value in enumerate((0, 128, 255)):
        assert d.frequencies[cls] == pytest.approx(sum(int((m == value).sum()) for m in read) / total, abs=1e-12)
    n = len(read)
    assert d.diameters[1][3] == n and d.diameters[1][1] == pytest.approx(math.sqrt(4 * 200 / math.pi))
    # class 2: n squares of 16 px and n of 4 px; the median of 2n values interpolates between them
    assert d.diameters[2][3] == 2 * n
    expected = np.percentile([math.sqrt(4 * a / math.pi) for a in [16] * n + [4] * n], [10, 50, 90])
    np.testing.assert_allclose(d.diameters[2][:3], expected, rtol=1e-12)


def test_a_bounded_sample_is_read_and_reported(tmp_path):
    make_folder(tmp_path / "train", 12, radii=(2, 5))
    make_folder(tmp_path / "val", 2, seed=9)
    layout = find_layout(tmp_path)
    fp = fingerprint(layout, max_files=5)
    assert fp.read == 5 and len(fp.train_sizes) == 12  # every header, five decoded
    chosen = sample_indices(12, 5)
    assert chosen == sample_indices(12, 5) and len(set(chosen)) == 5
    images = [_naive_rgb(layout.train_images[i]) for i in chosen]
    masks = [np.asarray(Image.open(layout.train_masks[i])) for i in chosen]
    _check_against_naive(fp, images, masks)
    again = fingerprint(layout, max_files=5)
    assert dataclasses.replace(again, read_s=0.0) == dataclasses.replace(fp, read_s=0.0)  # reproducible


def test_instance_id_masks_are_refused(tmp_path):
    root = tmp_path / "d"
    mask = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) % (MAX_MASK_VALUES + 6)
    write_pair(root, "a", np.zeros((100, 100, 3), np.uint8), None)
    Image.fromarray(mask).save(root / "masks" / "a.png")
    write_pair(root, "b", np.zeros((100, 100, 3), np.uint8), np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError, match=r"mask .*a.png holds 70 different values; .*instance ids"):
        fingerprint(find_layout(root))
