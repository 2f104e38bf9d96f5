"""Mixers keep instance masks exact on instance data: synthetic id maps always, DSB 2018 nuclei when present.

Mosaic with four equal tiles on a canvas twice their size places each tile unscaled in its
quadrant, so every output mask must be a source mask shifted there, pixel for pixel; CopyPaste of
every partner instance must give the primary's masks cut by the pasted region, then the partner's.
Both are compared against that naive construction. DSB also checks that its COCO json and its
``instances/`` PNGs give the same objects.
"""

from pathlib import Path

import numpy as np
import pytest

import augment
from segdet.data.coco import CocoDataset
from segdet.data.folder_instances import FolderInstances
from segdet.data.synthetic import boxes_from_masks

DSB = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "dsb2018"
needs_dsb = pytest.mark.skipif(not (DSB / "val" / "instances").is_dir(), reason="shared DSB 2018 dataset not present")


def _synthetic_samples(n=4, h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        ids = np.zeros((h, w), np.uint16)
        for k in range(1, 4 + i):
            y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
            ids[y : y + rng.integers(2, 7), x : x + rng.integers(2, 7)] = k  # later objects occlude earlier ones
        found = np.unique(ids[ids > 0])
        masks = (ids[None] == found[:, None, None]).astype(np.uint8)
        samples.append(
            {
                "image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
                "masks": masks,
                "bboxes": boxes_from_masks(masks),
                "labels": np.zeros(len(found), np.int64),
            }
        )
    return samples


def _key(mask):
    return mask.astype(np.uint8).tobytes()


def _check_mosaic_exact(samples):
    h, w = samples[0]["image"].shape[:2]
    mosaic = augment.Mosaic(size=(2 * h, 2 * w), center_range=(0.5, 0.5), shuffle=False)
    out = mosaic(samples, np.random.default_rng(0))
    expected = []
    for cell, s in enumerate(samples):
        y, x = (cell // 2) * h, (cell % 2) * w
        for m in s["masks"]:
            canvas = np.zeros((2 * h, 2 * w), np.uint8)
            canvas[y : y + h, x : x + w] = m
            expected.append(canvas)
    assert out["masks"].dtype == np.uint8 and out["masks"].shape == (len(expected), 2 * h, 2 * w)
    assert len(out["bboxes"]) == len(out["labels"]) == len(expected)
    assert sorted(map(_key, out["masks"])) == sorted(map(_key, expected))
    np.testing.assert_array_equal(out["bboxes"], boxes_from_masks(out["masks"]))


def _check_copy_paste_exact(primary, partner):
    out = augment.copy_paste(primary, partner, np.ones(len(partner["masks"]), bool))
    region = partner["masks"].any(0)
    cut = [m & ~region for m in primary["masks"].astype(bool)]
    expected = [m for m in cut if m.any()] + list(partner["masks"].astype(bool))
    assert out["masks"].dtype == np.uint8 and len(out["masks"]) == len(out["bboxes"]) == len(expected)
    np.testing.assert_array_equal(out["masks"].astype(bool), np.stack(expected))
    np.testing.assert_array_equal(out["bboxes"], boxes_from_masks(out["masks"]))
    np.testing.assert_array_equal(out["image"][region], partner["image"][region])
    np.testing.assert_array_equal(out["image"][~region], primary["image"][~region])


def test_mixers_keep_synthetic_instance_masks_exact():
    samples = _synthetic_samples()
    _check_mosaic_exact(samples)
    _check_copy_paste_exact(samples[0], samples[3])


def _dsb_val_of_size(size=(256, 256), n=4):
    ds = FolderInstances(DSB / "val", classes=["nucleus"])
    picked = [i for i, (hw, _) in enumerate(ds.box_table()) if hw == size][:n]
    return ds, picked


@needs_dsb
def test_mixers_keep_dsb_instance_masks_exact():
    ds, picked = _dsb_val_of_size()
    samples = [ds[i] for i in picked]
    assert all(len(s["masks"]) > 0 for s in samples)
    _check_mosaic_exact(samples)
    _check_copy_paste_exact(samples[0], samples[1])


@needs_dsb
def test_dsb_coco_json_and_instance_pngs_give_the_same_objects():
    coco = CocoDataset(
        DSB / "annotations" / "instances_val.json",
        DSB / "val" / "images",
        with_mask=False,
        with_boxes=True,
        with_instance_masks=True,
    )
    folder, picked = _dsb_val_of_size(n=3)
    by_name = {name: i for i, name in enumerate(coco.names)}
    for i in picked:
        a, b = folder[i], coco[by_name[folder.names[i]]]
        assert len(a["masks"]) == len(b["masks"]) > 0
        assert sorted(map(_key, a["masks"])) == sorted(map(_key, b["masks"]))
        np.testing.assert_array_equal(np.sort(a["bboxes"], axis=0), np.sort(b["bboxes"], axis=0))
        np.testing.assert_array_equal(a["image"], b["image"])
