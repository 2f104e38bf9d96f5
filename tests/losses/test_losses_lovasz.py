"""Lovász hinge / softmax against smp (float32: smp's Lovász fails on float64) and a loop."""

import pytest
import segmentation_models_pytorch as smp
import torch
from losses_reference import lovasz_hinge_flat

import losses


def _data(seed, c):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, c, 5, 6, generator=g)
    y = torch.randint(0, max(c, 2), (3, 5, 6), generator=g)
    y[0, 0, :4] = 255
    return x, y


@pytest.mark.parametrize("per_image", [False, True])
def test_binary_hinge_matches_smp(per_image):
    x, y = _data(0, 1)
    ours = losses.lovasz_loss(x, y, "binary", per_image=per_image, ignore_index=255)
    ref = smp.losses.LovaszLoss("binary", per_image=per_image, ignore_index=255)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("per_image", [False, True])
def test_softmax_matches_smp(per_image):
    x, y = _data(1, 4)
    y[1][y[1] == 2] = 3  # class 2 absent from image 1: 'present' averaging must agree
    ours = losses.lovasz_loss(x, y, "multiclass", per_image=per_image, ignore_index=255)
    ref = smp.losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=255)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def test_multilabel_is_mean_of_channel_hinges():
    # smp flattens all channels into one binary problem; segdet scores each channel (class)
    # separately and averages, like every other multilabel loss here.
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (2, 3, 4, 5), generator=g)
    ours = losses.lovasz_loss(x, y, "multilabel")
    ref = sum(lovasz_hinge_flat(x[:, k].flatten(), y[:, k].flatten().double()) for k in range(3)) / 3
    assert float(ours) == pytest.approx(float(ref), abs=1e-10)


def test_every_pixel_ignored_gives_zero():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.full((2, 4, 4), 255)
    for mode, target in (("multiclass", y), ("multilabel", y[:, None].expand(2, 3, 4, 4))):
        loss = losses.lovasz_loss(x, target, mode, ignore_index=255)
        loss.backward()
        assert loss.item() == 0.0 and torch.count_nonzero(x.grad) == 0
        x.grad = None
