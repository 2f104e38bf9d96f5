"""Multilabel batches and the mixers of each data.mode, against per-pixel references written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import augment
from augment.batch import batch_cutmix, batch_mixup
from segdet.data.mixers import build_batch_mixers, build_mixers
from segdet.segmentation.collate import collate_segmentation

IGNORE = 255


def _sample(rng, h, w, k):
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "mask": rng.integers(0, 2, (h, w, k), dtype=np.uint8),
    }


def test_multilabel_collate_pads_every_channel_with_ignore_index():
    rng = np.random.default_rng(0)
    samples = [_sample(rng, 30, 40, 3), _sample(rng, 20, 50, 3)]
    batch = collate_segmentation(samples, ignore_index=IGNORE, num_classes=3, mode="multilabel")
    assert batch["mask"].shape == (2, 3, 32, 64) and batch["mask"].dtype == torch.uint8
    for i, s in enumerate(samples):
        h, w = s["mask"].shape[:2]
        for k in range(3):
            expected = np.full((32, 64), IGNORE, np.uint8)
            expected[:h, :w] = s["mask"][:, :, k]
            assert np.array_equal(batch["mask"][i, k].numpy(), expected)
    assert batch["sizes"].tolist() == [[30, 40], [20, 50]]


def test_multilabel_collate_with_an_ignore_index_outside_uint8():
    rng = np.random.default_rng(1)
    s = {"image": np.zeros((4, 4, 3), np.uint8), "mask": rng.integers(0, 2, (4, 4, 2)).astype(np.int32)}
    batch = collate_segmentation([s], ignore_index=-1, num_classes=2, mode="multilabel", stride=8)
    assert batch["mask"].dtype == torch.int32 and int(batch["mask"][0, :, 4:].unique()) == -1


def test_multilabel_collate_names_bad_values_and_shapes():
    s = {"image": np.zeros((4, 4, 3), np.uint8), "mask": np.zeros((4, 4, 2), np.uint8)}
    s["mask"][0, 0, 1] = 7
    with pytest.raises(ValueError, match=r"sample 0: multilabel mask values \[7\] are neither 0, 1 nor ignore_index"):
        collate_segmentation([s], ignore_index=IGNORE, num_classes=2, mode="multilabel")
    hard = {"image": np.zeros((4, 4, 3), np.uint8), "mask": np.zeros((4, 4), np.uint8)}
    with pytest.raises(ValueError, match=r"sample 0: a multilabel mask is \(H, W, 2\) integer"):
        collate_segmentation([hard], ignore_index=IGNORE, num_classes=2, mode="multilabel")
    soft = {"image": np.zeros((4, 4, 3), np.uint8), "mask": np.zeros((4, 4, 2), np.float32)}
    with pytest.raises(ValueError, match="MixUp's soft masks do not apply"):
        collate_segmentation([soft], ignore_index=IGNORE, num_classes=2, mode="multilabel")


def test_binary_collate_is_the_two_class_collate():
    rng = np.random.default_rng(2)
    s = {"image": rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), "mask": rng.integers(0, 2, (10, 12))}
    a = collate_segmentation([s], ignore_index=IGNORE, num_classes=2, mode="binary")
    b = collate_segmentation([s], ignore_index=IGNORE, num_classes=2)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sample_cutmix_keeps_multilabel_channels_exact():
    rng = np.random.default_rng(3)
    a, b = _sample(rng, 24, 32, 3), _sample(rng, 24, 32, 3)
    a["mask"][:2] = IGNORE
    (mixer,) = build_mixers([{"CutMix": {"p": 1.0}}], num_classes=3, ignore_index=IGNORE, mode="multilabel")
    out, lam = mixer.mix([a, b], np.random.default_rng(0))
    region = np.any(out["image"] != a["image"], axis=2)  # where the partner shows (images differ almost surely)
    expected = np.where(region[:, :, None], b["mask"], a["mask"])
    assert out["mask"].dtype == np.uint8 and np.array_equal(out["mask"], expected)
    assert 0.0 < lam < 1.0


def test_sample_mosaic_fills_empty_canvas_with_ignore_in_every_channel():
    rng = np.random.default_rng(4)
    tiles = [_sample(rng, 16, 16, 2) for _ in range(4)]
    (mosaic,) = build_mixers(
        [{"Mosaic": {"p": 1.0, "size": [32, 32], "fit": "contain"}}],
        num_classes=2,
        ignore_index=IGNORE,
        mode="multilabel",
    )
    placements = mosaic.layout([(16, 16)] * 4, np.random.default_rng(0))
    out = mosaic.apply(tiles, placements)
    assert out["mask"].shape == (32, 32, 2) and out["mask"].dtype == np.uint8
    hard = augment.Mosaic(p=1.0, size=(32, 32), fit="contain", ignore_index=IGNORE)
    for k in range(2):  # each channel is what a class-index mosaic of that channel gives
        channel = hard.apply([{"image": t["image"], "mask": t["mask"][:, :, k]} for t in tiles], placements)
        assert np.array_equal(out["mask"][:, :, k], channel["mask"])
    covered = np.zeros((32, 32), bool)
    for p in placements:
        vy0, vx0, vy1, vx1 = p.visible
        covered[vy0:vy1, vx0:vx1] = True
    assert (~covered).any() and (out["mask"][~covered] == IGNORE).all()
    assert set(np.unique(out["mask"][covered]).tolist()) <= {0, 1}


def test_mixup_is_refused_in_multilabel_mode_naming_the_step():
    with pytest.raises(ValueError, match=r"augment.mix\[1\]: MixUp does not support data.mode multilabel"):
        build_mixers([{"CutMix": {}}, {"MixUp": {}}], num_classes=3, ignore_index=IGNORE, mode="multilabel")
    with pytest.raises(ValueError, match=r"augment.batch_mix\[0\]: MixUp does not support data.mode multilabel"):
        build_batch_mixers([{"MixUp": {}}], num_classes=3, ignore_index=IGNORE, mode="multilabel")
    a = {"image": np.zeros((2, 2, 3), np.uint8), "mask": np.zeros((2, 2, 3), np.uint8)}
    with pytest.raises(ValueError, match="MixUp: integer"):
        augment.mixup(a, a, 0.5, num_classes=3, ignore_index=IGNORE)


def test_binary_mixers_are_the_two_class_mixers():
    mixers = build_mixers(
        [{"CutMix": {}}, {"MixUp": {}}, {"Mosaic": {}}], num_classes=2, ignore_index=IGNORE, mode="binary"
    )
    assert [type(m).__name__ for m in mixers] == ["CutMix", "MixUp", "Mosaic"]
    assert (
        len(build_batch_mixers([{"CutMix": {}}, {"MixUp": {}}], num_classes=2, ignore_index=IGNORE, mode="binary")) == 2
    )


def test_batch_cutmix_copies_integer_channels_exactly():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 16, 20, generator=gen)
    target = torch.randint(0, 2, (4, 3, 16, 20), generator=gen).to(torch.uint8)
    target[0, :, :3] = IGNORE
    out = batch_cutmix(images, target, generator=torch.Generator().manual_seed(1), p=1.0)
    assert out.target.dtype == torch.uint8
    region = (out.images != images).any(1)  # where the partner shows
    region |= out.index[:, None, None] == torch.arange(4)[:, None, None]  # a sample paired with itself
    expected = torch.where(region[:, None], target[out.index], target)
    assert torch.equal(out.target, expected)
    with pytest.raises(ValueError, match="integer .B, K, H, W. channels mix with CutMix only"):
        batch_mixup(images, target, generator=torch.Generator().manual_seed(1), num_classes=3)
