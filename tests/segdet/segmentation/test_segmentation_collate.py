"""collate_segmentation against a naive per-pixel padding loop."""

import numpy as np
import pytest
import torch

from segdet.segmentation.collate import collate_segmentation


def _naive(samples, ignore, num_classes, stride):
    hp = -(-max(s["image"].shape[0] for s in samples) // stride) * stride
    wp = -(-max(s["image"].shape[1] for s in samples) // stride) * stride
    soft = any(s["mask"].ndim == 3 for s in samples)
    image = np.zeros((len(samples), 3, hp, wp), np.float32)
    mask = (
        np.zeros((len(samples), num_classes, hp, wp), np.float32) if soft else np.full((len(samples), hp, wp), ignore)
    )
    for b, s in enumerate(samples):
        h, w = s["image"].shape[:2]
        for y in range(h):
            for x in range(w):
                for c in range(3):
                    image[b, c, y, x] = float(s["image"][y, x, c]) / 255.0
                m = s["mask"]
                if soft and m.ndim == 3:
                    mask[b, :, y, x] = m[y, x]
                elif soft:
                    if m[y, x] != ignore:
                        mask[b, int(m[y, x]), y, x] = 1.0
                else:
                    mask[b, y, x] = m[y, x]
    return image, mask


def _hard(rng, h, w, ignore=255):
    m = rng.integers(0, 3, (h, w)).astype(np.uint8)
    m[0, :3] = ignore
    return {"image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "mask": m}


def test_hard_masks_padded_to_stride():
    rng = np.random.default_rng(0)
    samples = [_hard(rng, 30, 40), _hard(rng, 20, 50)]
    out = collate_segmentation(samples, ignore_index=255, num_classes=3, stride=32)
    assert out["image"].shape == (2, 3, 32, 64) and out["image"].dtype == torch.float32
    assert out["mask"].shape == (2, 32, 64) and out["mask"].dtype == torch.int64
    ref_img, ref_mask = _naive(samples, 255, 3, 32)
    np.testing.assert_allclose(out["image"].numpy(), ref_img, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(out["mask"].numpy(), ref_mask)
    assert out["sizes"].tolist() == [[30, 40], [20, 50]]
    exact = collate_segmentation(samples, ignore_index=255, num_classes=3, stride=1)
    assert exact["image"].shape == (2, 3, 30, 50)


def test_soft_and_hard_mixed_batch():
    rng = np.random.default_rng(1)
    hard = _hard(rng, 17, 21)
    soft = {
        "image": rng.uniform(0, 255, (19, 16, 3)).astype(np.float32),  # MixUp: float on 0..255
        "mask": rng.dirichlet(np.ones(3), size=(19, 16)).astype(np.float32),
    }
    out = collate_segmentation([hard, soft], ignore_index=255, num_classes=3, stride=8)
    assert out["mask"].shape == (2, 3, 24, 24) and out["mask"].dtype == torch.float32
    ref_img, ref_mask = _naive([hard, soft], 255, 3, 8)
    np.testing.assert_allclose(out["image"].numpy(), ref_img, atol=1e-6)
    np.testing.assert_allclose(out["mask"].numpy(), ref_mask, atol=1e-7)
    assert out["mask"][0, :, 0, 0].sum() == 0  # ignored pixel: zero vector
    same = collate_segmentation([hard, soft], ignore_index=255, stride=8)  # classes from the soft mask
    torch.testing.assert_close(same["mask"], out["mask"])


def test_bad_values_and_shapes():
    rng = np.random.default_rng(2)
    s = _hard(rng, 8, 8)
    s["mask"][2, 2] = 7
    with pytest.raises(
        ValueError, match=r"sample 0: mask values \[7\] are neither a class 0\.\.2 nor ignore_index 255"
    ):
        collate_segmentation([s], ignore_index=255, num_classes=3)
    soft = {"image": np.zeros((8, 8, 3), np.uint8), "mask": np.zeros((8, 8, 4), np.float32)}
    with pytest.raises(ValueError, match="soft mask has 4 channels but num_classes is 3"):
        collate_segmentation([soft], ignore_index=255, num_classes=3)
    with pytest.raises(ValueError, match="mask is 8x7 but image is 8x8"):
        collate_segmentation(
            [{"image": np.zeros((8, 8, 3), np.uint8), "mask": np.zeros((8, 7), np.uint8)}],
            ignore_index=255,
            num_classes=3,
        )
    with pytest.raises(ValueError, match="empty"):
        collate_segmentation([], ignore_index=255, num_classes=3)
