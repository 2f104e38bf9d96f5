"""Dice / Jaccard / Tversky against smp and against a naive loop reference."""

import inspect

import pytest
import segmentation_models_pytorch as smp
import torch
from losses_reference import onehot_valid, tversky_terms

import losses

N, C, H, W = 2, 3, 6, 7


def _data(mode, seed=0, ignore=False):
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else C
    x = torch.randn(N, c, H, W, generator=g, dtype=torch.float64)
    if mode == "multiclass":
        y = torch.randint(0, C, (N, H, W), generator=g)
        y[0, 0, 0], y[1, 0, 1], y[1, 2, 3] = 0, 1, 2  # every class present in every image
    else:
        y = torch.randint(0, 2, (N, c, H, W), generator=g)
        y[:, :, 0, 0] = 1
    if ignore:
        yy = y if mode == "multiclass" else y[:, -1]  # dense targets: ignore in one channel
        yy[0, 1, :3] = 255
        yy[1, 4, 2:5] = 255
    return x, y


SMP = {"dice": smp.losses.DiceLoss, "jaccard": smp.losses.JaccardLoss}
OURS = {"dice": losses.DiceLoss, "jaccard": losses.JaccardLoss}


@pytest.mark.parametrize("name", ["dice", "jaccard"])
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("opts", [{}, {"log_loss": True}, {"classes": [0, 2]}, {"class_weights": [1.0, 2.0, 0.5]}])
def test_region_matches_smp(name, mode, ignore, opts):
    if mode == "binary" and opts.keys() & {"classes", "class_weights"}:
        pytest.skip("single channel")
    missing = ({"ignore_index"} | opts.keys()) - set(inspect.signature(SMP[name]).parameters)
    if missing:  # smp < 0.6: the reference has no such option (segdet's own tests still run)
        pytest.skip(f"smp {smp.__version__} {SMP[name].__name__} has no {sorted(missing)}")
    x, y = _data(mode, ignore=ignore)
    ii = 255 if ignore else None
    ours = OURS[name](mode, ignore_index=ii, **opts)(x, y)
    ref = SMP[name](mode, ignore_index=ii, **opts)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0), (ours, ref)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_tversky_matches_smp_with_gamma_one(mode):
    x, y = _data(mode, ignore=True)
    ours = losses.TverskyLoss(mode, alpha=0.3, beta=0.7, smooth=0.5, ignore_index=255)(x, y)
    ref = smp.losses.TverskyLoss(mode, alpha=0.3, beta=0.7, smooth=0.5, ignore_index=255)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def _ref_terms(mode, x, y, alpha, beta, smooth, per_image, gamma=1.0, ignore_index=None):
    if mode == "multiclass":
        t, valid = onehot_valid(y, x.shape[1], ignore_index)
        prob = torch.softmax(x, 1).reshape(N, x.shape[1], -1)
        valid = valid.unsqueeze(1)
    else:
        t = y.reshape(N, x.shape[1], -1).double()
        valid = torch.ones_like(t) if ignore_index is None else (t != ignore_index).double()
        t = t * valid
        prob = torch.sigmoid(x).reshape(N, x.shape[1], -1)
    return tversky_terms(prob, t, valid, alpha, beta, smooth, per_image, gamma)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("per_image", [False, True])
def test_per_image_and_focal_tversky_against_naive(mode, per_image):
    # smp has no per_image for Dice, and it raises the class *mean* to gamma; segdet raises each
    # term to gamma (focal Tversky focuses on the hard classes/images, not on the average).
    x, y = _data(mode, seed=3, ignore=True)
    ours = losses.tversky_loss(
        x, y, mode, alpha=0.4, beta=0.6, gamma=0.75, smooth=1.0, per_image=per_image, ignore_index=255, reduction="none"
    )
    ref = _ref_terms(mode, x, y, 0.4, 0.6, 1.0, per_image, 0.75, 255)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-9)


def test_empty_target_with_smooth_penalises_false_positives():
    # smp zeroes every empty-target term; segdet scores it by the formula when smooth > 0:
    # T = s / (0.5 * Sp + s), so a confident false positive costs more than a quiet prediction.
    y = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    quiet = torch.full((1, 1, 4, 4), -8.0, dtype=torch.float64)
    loud = torch.full((1, 1, 4, 4), 8.0, dtype=torch.float64)
    lq = losses.dice_loss(quiet, y, "binary", smooth=1.0)
    ll = losses.dice_loss(loud, y, "binary", smooth=1.0)
    sp = torch.sigmoid(loud).sum()
    assert torch.allclose(ll, 1 - 1.0 / (0.5 * sp + 1.0))
    assert lq < 0.01 < 0.8 < ll
    assert float(smp.losses.DiceLoss("binary", smooth=1.0)(loud, y)) == 0.0
    # with smooth == 0 an empty term scores 0 (smp's rule), for any prediction
    assert float(losses.dice_loss(loud, y, "binary")) == 0.0


@pytest.mark.parametrize("fn", [losses.dice_loss, losses.jaccard_loss, losses.tversky_loss])
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_soft_target_minimum_is_at_prediction(fn, mode):
    g = torch.Generator().manual_seed(1)
    c = 1 if mode == "binary" else C
    t = torch.rand(N, c, H, W, generator=g, dtype=torch.float64)
    if mode == "multiclass":
        t = t / t.sum(1, keepdim=True)
    at_target = fn(t, t, mode, from_logits=False)
    for _ in range(5):
        other = (t + 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        assert fn(other, t, mode, from_logits=False) > at_target
    assert float(at_target) == pytest.approx(0.0, abs=1e-12)


def test_hard_and_soft_targets_agree_on_0_1_values():
    x, y = _data("multiclass", ignore=False)
    soft = torch.nn.functional.one_hot(y, C).permute(0, 3, 1, 2).double()
    for fn in (losses.dice_loss, losses.jaccard_loss, losses.tversky_loss):
        assert torch.allclose(fn(x, y, "multiclass"), fn(x, soft, "multiclass"), atol=1e-12)
    xb, yb = _data("multilabel")
    assert torch.allclose(
        losses.dice_loss(xb, yb, "multilabel"), losses.dice_loss(xb, yb.double(), "multilabel"), atol=1e-12
    )


def test_reduction_sum_and_none():
    x, y = _data("multiclass")
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    terms = losses.dice_loss(x, y, "multiclass", reduction="none")
    assert terms.shape == (C,)
    assert torch.allclose(losses.dice_loss(x, y, "multiclass", reduction="sum", class_weights=w), (terms * w).sum())
    assert torch.allclose(losses.dice_loss(x, y, "multiclass", class_weights=w), (terms * w).sum() / w.sum())
    assert losses.dice_loss(x, y, "multiclass", reduction="none", per_image=True).shape == (N, C)
