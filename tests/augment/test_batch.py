"""Batch CutMix/MixUp against per-sample references (the sample-level numpy mixers and loops)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from augment import cutmix, mixup
from augment._torch_beta import sample_beta
from augment.batch import BatchCutMix, BatchMixUp, batch_cutmix, batch_mixup

IGNORE = 255
SETTINGS = settings(max_examples=25, deadline=None)


def _batch(b, h, w, k, seed, ignore_fraction=0.2):
    """Images with one distinct constant value per sample (so every pixel's source is known)
    and random hard masks with some ``ignore_index`` pixels."""
    g = torch.Generator().manual_seed(seed)
    values = torch.arange(b, dtype=torch.float32) * 10 + 5
    images = values[:, None, None, None].expand(b, 3, h, w) + torch.arange(3.0)[None, :, None, None]
    masks = torch.randint(0, k, (b, h, w), generator=g)
    masks[torch.rand(b, h, w, generator=g) < ignore_fraction] = IGNORE
    return images.contiguous(), masks


def _rect(region):
    """(rows, cols) of a boolean region if it is one filled axis-aligned rectangle, else None."""
    if not region.any():
        return 0, 0
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    box = np.zeros_like(region)
    box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    return (len(rows), len(cols)) if (box == region).all() else None


@SETTINGS
@given(
    st.integers(1, 6),
    st.integers(2, 17),
    st.integers(2, 23),
    st.integers(0, 2**31),
    st.booleans(),
    st.sampled_from([0.3, 1.0, 4.0]),
    st.sampled_from(["permutation", "roll"]),
)
def test_cutmix_matches_per_sample_paste(b, h, w, seed, per_sample, alpha, pairing):
    images, masks = _batch(b, h, w, 4, seed)
    out = batch_cutmix(
        images,
        masks,
        generator=torch.Generator().manual_seed(seed),
        alpha=alpha,
        per_sample=per_sample,
        pairing=pairing,
    )
    assert out.images.shape == images.shape and out.target.shape == masks.shape
    assert out.target.dtype == masks.dtype and out.lam.dtype == torch.float32
    regions = []
    for i in range(b):
        j = int(out.index[i])
        value_i, value_j = images[i, 0, 0, 0], images[j, 0, 0, 0]
        region = (out.images[i, 0] == value_j).numpy() if j != i else None
        if region is None:  # paired with itself: nothing to see, the target must be unchanged
            assert torch.equal(out.target[i], masks[i]) and torch.equal(out.images[i], images[i])
            continue
        assert ((out.images[i, 0] == value_i) | (out.images[i, 0] == value_j)).all()
        shape = _rect(region)
        assert shape is not None, "the pasted region is not one rectangle"
        rows, cols = shape
        # lam is the exact pixel fraction kept.
        assert out.lam[i].item() == pytest.approx(1 - rows * cols / (h * w), abs=1e-7)
        # rows/H and cols/W round the same sqrt(1 - lam): no width/height swap.
        if rows and cols:
            assert max((rows - 0.5) / h, (cols - 0.5) / w) <= min((rows + 0.5) / h, (cols + 0.5) / w) + 1e-9
        # The sample-level CutMix with this region gives the same image, mask and lam.
        ref, ref_lam = cutmix(
            {"image": images[i].permute(1, 2, 0).numpy(), "mask": masks[i].numpy()},
            {"image": images[j].permute(1, 2, 0).numpy(), "mask": masks[j].numpy()},
            region,
        )
        np.testing.assert_array_equal(out.images[i].permute(1, 2, 0).numpy(), ref["image"])
        np.testing.assert_array_equal(out.target[i].numpy(), ref["mask"])
        assert out.lam[i].item() == pytest.approx(ref_lam, abs=1e-7)
        regions.append(shape)
    if not per_sample and regions:
        assert len(set(regions)) == 1 and len(set(out.lam.tolist())) == 1


@SETTINGS
@given(
    st.integers(1, 6),
    st.integers(2, 15),
    st.integers(2, 19),
    st.integers(0, 2**31),
    st.booleans(),
    st.booleans(),
    st.sampled_from([IGNORE, 0]),
)
def test_mixup_matches_sample_level_mixup(b, h, w, seed, per_sample, dominant, ignore):
    """``ignore`` 0 is a value inside the class range that still means unlabelled."""
    k = 4
    images, masks = _batch(b, h, w, k, seed, ignore_fraction=0.3)
    masks[masks == IGNORE] = ignore
    out = batch_mixup(
        images,
        masks,
        generator=torch.Generator().manual_seed(seed),
        num_classes=k,
        ignore_index=ignore,
        per_sample=per_sample,
        primary_dominant=dominant,
    )
    assert out.target.shape == (b, k, h, w) and out.target.dtype == torch.float32
    for i in range(b):
        j, lam = int(out.index[i]), float(out.lam[i])
        if dominant:
            assert lam >= 0.5
        ref = mixup(
            {"image": images[i].permute(1, 2, 0).numpy(), "mask": masks[i].numpy()},
            {"image": images[j].permute(1, 2, 0).numpy(), "mask": masks[j].numpy()},
            lam,
            num_classes=k,
            ignore_index=ignore,
        )
        np.testing.assert_allclose(out.images[i].permute(1, 2, 0).numpy(), ref["image"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out.target[i].permute(1, 2, 0).numpy(), ref["mask"], atol=1e-6)
    # Probabilities sum to 1 where either source is labelled, 0 where both are ignored.
    labelled = (masks != ignore) | (masks[out.index] != ignore)
    sums = out.target.sum(1)
    torch.testing.assert_close(sums[labelled], torch.ones_like(sums[labelled]))
    assert (sums[~labelled] == 0).all()
    if not per_sample:
        assert len(set(out.lam.tolist())) == 1


def test_mixup_soft_targets_follow_the_unlabelled_rule():
    g = torch.Generator().manual_seed(3)
    soft = torch.softmax(torch.randn(4, 3, 5, 7, generator=g), 1)
    soft[0, :, :2] = 0  # unlabelled rows in sample 0
    soft[1, :, :2] = 0
    images = torch.rand(4, 3, 5, 7, generator=g)
    out = batch_mixup(images, soft, generator=torch.Generator().manual_seed(0), pairing="roll")
    for i in range(4):
        j, lam = int(out.index[i]), float(out.lam[i])
        ref = mixup(
            {"image": images[i].permute(1, 2, 0).numpy(), "mask": soft[i].permute(1, 2, 0).numpy()},
            {"image": images[j].permute(1, 2, 0).numpy(), "mask": soft[j].permute(1, 2, 0).numpy()},
            lam,
        )
        np.testing.assert_allclose(out.target[i].permute(1, 2, 0).numpy(), ref["mask"], atol=1e-6)
    # sample 1 pairs with 0 under roll: both unlabelled on rows 0-1 -> all zero.
    assert int(out.index[1]) == 0 and (out.target[1, :, :2] == 0).all()
    # A single-channel (binary) soft target is blended linearly.
    binary = (torch.rand(4, 1, 5, 7, generator=g) > 0.5).float()
    out = batch_mixup(images, binary, generator=torch.Generator().manual_seed(0))
    lam = out.lam[:, None, None, None]
    torch.testing.assert_close(out.target, lam * binary + (1 - lam) * binary[out.index])


def test_cutmix_keeps_ignore_index_and_soft_targets():
    images, masks = _batch(8, 9, 14, 3, 0, ignore_fraction=0.5)
    out = batch_cutmix(images, masks, generator=torch.Generator().manual_seed(1), alpha=1.0)
    partner = masks[out.index]
    from_partner = out.images[:, :1] == images[out.index][:, :1]
    expected = torch.where(from_partner[:, 0], partner, masks)
    assert torch.equal(out.target, expected)
    assert ((out.target == IGNORE) == torch.where(from_partner[:, 0], partner == IGNORE, masks == IGNORE)).all()
    soft = torch.nn.functional.one_hot(masks.clamp_max(2), 3).permute(0, 3, 1, 2).float()
    out_soft = batch_cutmix(images, soft, generator=torch.Generator().manual_seed(1), alpha=1.0)
    assert torch.equal(out_soft.images, out.images)
    assert torch.equal(out_soft.target, torch.where(from_partner, soft[out.index], soft))


def test_p_zero_is_identity_and_p_mixes_some():
    images, masks = _batch(16, 6, 10, 3, 0)
    for mixer in (BatchCutMix(p=0.0), BatchMixUp(p=0.0, num_classes=3)):
        out = mixer(images, masks, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out.images, images)
        assert (out.lam == 1).all()
    out = BatchMixUp(p=0.5, num_classes=3)(images, masks, generator=torch.Generator().manual_seed(0))
    assert 0 < int((out.lam < 1).sum()) < 16


def test_same_generator_seed_same_output():
    images, masks = _batch(6, 12, 20, 3, 0)
    for mixer in (BatchCutMix(p=1.0), BatchMixUp(p=1.0, num_classes=3)):
        a = mixer(images, masks, generator=torch.Generator().manual_seed(7))
        b = mixer(images, masks, generator=torch.Generator().manual_seed(7))
        c = mixer(images, masks, generator=torch.Generator().manual_seed(8))
        for x, y in zip(a, b):
            assert torch.equal(x, y)
        assert not torch.equal(a.lam, c.lam)


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_no_op_reads_a_value_back_to_the_host():
    """``.item()``/``bool(t)`` dispatch to ``_local_scalar_dense``; ``nonzero`` has a
    data-dependent size. Neither may run (each is a host sync on CUDA)."""
    images, masks = _batch(4, 6, 10, 3, 0)
    soft = torch.rand(4, 3, 6, 10)
    with _RecordOps() as rec:
        batch_cutmix(images, masks, generator=torch.Generator().manual_seed(0), per_sample=False)
        batch_cutmix(images, soft, generator=torch.Generator().manual_seed(0))
        batch_mixup(images, masks, generator=torch.Generator().manual_seed(0), num_classes=3, primary_dominant=True)
        batch_mixup(images, soft, generator=torch.Generator().manual_seed(0), p=0.5)
    assert rec.ops, "the recorder saw nothing"
    assert not {op for op in rec.ops if "_local_scalar_dense" in op or "nonzero" in op or "item" in op}


def test_cutmix_placement_is_not_biased_to_small_cuts():
    """With the cut drawn inside the image, the pasted area is exactly 1 - lam for every lam,
    so its mean over many draws is E[1 - lam] = 0.5 for alpha = 1 (clipping would shrink it)."""
    images = torch.zeros(4000, 1, 7, 11)
    masks = torch.zeros(4000, 7, 11, dtype=torch.long)
    out = batch_cutmix(images, masks, generator=torch.Generator().manual_seed(0))
    assert abs(float(1 - out.lam.mean()) - 0.5) < 0.02


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1.0, 4.0])
def test_beta_sampler_matches_the_distribution(alpha):
    stats = pytest.importorskip("scipy.stats")
    lam = sample_beta((20000,), alpha, torch.Generator().manual_seed(1), dtype=torch.float64).numpy()
    assert lam.min() >= 0 and lam.max() <= 1
    assert abs(lam.mean() - 0.5) < 0.01
    assert abs(lam.var() - 1 / (4 * (2 * alpha + 1))) < 0.01
    # The lower half is exact in float64 even for tiny alpha (the upper half piles up within
    # rounding of 1); by symmetry its CDF is 2 F(x).
    low = lam[lam < 0.5]
    assert abs(len(low) / len(lam) - 0.5) < 0.015
    assert stats.kstest(low, lambda x: 2 * stats.beta(alpha, alpha).cdf(x)).pvalue > 1e-3
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sample_beta((7,), alpha, g1), sample_beta((7,), alpha, g2))


def test_bad_inputs_raise():
    images, masks = _batch(2, 4, 6, 3, 0)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="generator"):
        batch_cutmix(images, masks, generator=None)
    with pytest.raises(ValueError, match="num_classes"):
        batch_mixup(images, masks, generator=g)
    with pytest.raises(ValueError, match="does not fit"):
        batch_cutmix(images, masks[:, :, :5], generator=g)
    with pytest.raises(ValueError, match="does not fit"):
        batch_cutmix(images, masks.float(), generator=g)
    with pytest.raises(ValueError, match="alpha"):
        BatchMixUp(alpha=0)
    with pytest.raises(ValueError, match="pairing"):
        BatchCutMix(pairing="shuffle")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runs_without_sync_and_reproduces():
    images, masks = (t.cuda() for t in _batch(8, 32, 48, 5, 0))
    with pytest.raises(ValueError, match="generator"):
        batch_cutmix(images, masks, generator=torch.Generator().manual_seed(0))
    torch.cuda.set_sync_debug_mode("error")
    try:
        a = batch_cutmix(images, masks, generator=torch.Generator(device="cuda").manual_seed(0))
        m = batch_mixup(images, masks, generator=torch.Generator(device="cuda").manual_seed(0), num_classes=5)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    b = batch_cutmix(images, masks, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(a.images, b.images) and torch.equal(a.target, b.target)
    torch.testing.assert_close(
        m.target.sum(1)[(masks != IGNORE) | (masks[m.index] != IGNORE)],
        torch.ones_like(m.target.sum(1)[(masks != IGNORE) | (masks[m.index] != IGNORE)]),
    )


def test_docstring_examples():
    import doctest

    import augment._torch_beta
    import augment.batch

    for module in (augment.batch, augment._torch_beta):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


def test_batch_mixup_unmixed_sample_keeps_its_unlabelled_pixels():
    """p=0 (lam = 1): an ignored pixel stays unlabelled instead of taking the partner's class."""
    g = torch.Generator().manual_seed(0)
    target = torch.tensor([[[255, 1]], [[1, 0]]])  # (2, 1, 2)
    out = batch_mixup(torch.rand(2, 3, 1, 2), target, generator=g, num_classes=2, p=0.0)
    expected = torch.zeros(2, 2, 1, 2)
    expected[0, 1, 0, 1] = 1  # sample 0: pixel 0 unlabelled, pixel 1 class 1
    expected[1, 1, 0, 0] = 1
    expected[1, 0, 0, 1] = 1
    assert torch.equal(out.target, expected)
    soft = torch.nn.functional.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float()
    soft[0, :, 0, 0] = 0  # the same hole as an all-zero soft vector
    out = batch_mixup(torch.rand(2, 3, 1, 2), soft, generator=g, p=0.0)
    assert torch.equal(out.target, expected)
