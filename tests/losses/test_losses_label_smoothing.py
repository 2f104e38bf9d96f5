"""Label smoothing of every BCE term (bce, balanced_bce, dice_bce) against float64 loops, in every sigmoid mode.

Smoothing is torch's / Keras' for binary targets: t' = t (1 - eps) + eps / 2, ignored elements
left out, soft targets smoothed the same way.
"""

import math

import pytest
import torch
from losses_reference import bce_mean

import losses
from segdet.segmentation.task import loss_spec

N, C, H, W, IGNORE = 2, 3, 5, 7, 255


def _case(mode, soft, seed=0, dtype=torch.float64):
    """(logits, target, t as float64 per element (N, C', H, W), valid (N, C', H, W)) for ``mode``."""
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else C
    x = (3 * torch.randn(N, c, H, W, generator=g, dtype=torch.float64)).to(dtype)
    if mode == "multiclass":
        y = torch.randint(0, C, (N, H, W), generator=g)
        y[0, :2, :3] = IGNORE
        valid = (y != IGNORE).unsqueeze(1).expand(N, C, H, W).double()
        t = torch.zeros(N, C, H, W, dtype=torch.float64)
        for n in range(N):
            for i in range(H):
                for j in range(W):
                    if y[n, i, j] != IGNORE:
                        t[n, y[n, i, j], i, j] = 1.0
        return x, y, t, valid
    if soft:
        y = torch.rand(N, c, H, W, generator=g, dtype=torch.float64)
    else:
        y = torch.randint(0, 2, (N, c, H, W), generator=g)
    y[0, 0, :2, :3] = IGNORE
    valid = (y != IGNORE).double()
    t = torch.where(y == IGNORE, 0, y).double()
    target = y.squeeze(1) if mode == "binary" and not soft else y
    return x, target.to(dtype) if soft else target, t, valid


def _smoothed(t, eps):
    return t * (1 - eps) + eps / 2


CASES = [("binary", False), ("binary", True), ("multilabel", False), ("multilabel", True), ("multiclass", False)]


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("mode,soft", CASES)
def test_bce_equals_the_float64_loop_with_smoothed_targets(mode, soft, eps):
    x, y, t, valid = _case(mode, soft)
    ours = losses.bce_loss(x, y, mode, label_smoothing=eps, ignore_index=IGNORE)
    assert float(ours) == pytest.approx(bce_mean(x, _smoothed(t, eps), valid), abs=1e-12)
    x32 = x.float()
    assert float(losses.BCELoss(mode, label_smoothing=eps, ignore_index=IGNORE)(x32, y)) == pytest.approx(
        bce_mean(x32.double(), _smoothed(t, eps), valid), rel=1e-6
    )


@pytest.mark.parametrize("mode,soft", CASES)
def test_balanced_bce_smooths_the_target_but_not_beta(mode, soft):
    x, y, t, valid = _case(mode, soft, seed=1)
    eps = 0.2
    ts = _smoothed(t, eps)
    num = den = 0.0
    for n in range(N):  # beta per image and channel from the unsmoothed target, element by element
        for k in range(t.shape[1]):
            v, tk, tsk, xk = valid[n, k].flatten(), t[n, k].flatten(), ts[n, k].flatten(), x[n, k].flatten()
            total = float(v.sum())
            beta = float(((1 - tk) * v).sum()) / total if total else 0.5
            for j in range(len(v)):
                if v[j]:
                    sp_neg, sp_pos = math.log1p(math.exp(-float(xk[j]))), math.log1p(math.exp(float(xk[j])))
                    num += beta * float(tsk[j]) * sp_neg + (1 - beta) * (1 - float(tsk[j])) * sp_pos
                    den += 1
    ours = losses.balanced_bce_loss(x, y, mode, label_smoothing=eps, ignore_index=IGNORE)
    assert float(ours) == pytest.approx(num / den, abs=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("mode,soft", [c for c in CASES if c[0] != "multiclass"])
@pytest.mark.parametrize("per_image", [False, True])
def test_dice_bce_smooths_its_bce_term_only(mode, soft, eps, per_image):
    x, y, t, valid = _case(mode, soft, seed=2)
    ours = losses.dice_bce_loss(
        x, y, mode, dice_weight=0.7, bce_weight=1.3, per_image=per_image, ignore_index=IGNORE, label_smoothing=eps
    )
    dice = losses.dice_loss(x, y, mode, per_image=per_image, ignore_index=IGNORE)
    if per_image:
        bce = sum(bce_mean(x[n], _smoothed(t[n], eps), valid[n]) for n in range(N)) / N
    else:
        bce = bce_mean(x, _smoothed(t, eps), valid)
    assert float(ours) == pytest.approx(0.7 * float(dice) + 1.3 * bce, abs=1e-12)


@pytest.mark.parametrize("mode,soft", [("binary", True), ("multilabel", False)])
def test_dice_bce_gradient_is_that_of_the_separate_terms(mode, soft):
    x, y, _, _ = _case(mode, soft, seed=3)
    x.requires_grad_(True)
    fused = losses.DiceBCELoss(mode, ignore_index=IGNORE, label_smoothing=0.3)(x, y)
    (g_fused,) = torch.autograd.grad(fused, x)
    split = losses.dice_loss(x, y, mode, ignore_index=IGNORE) + losses.bce_loss(
        x, y, mode, label_smoothing=0.3, ignore_index=IGNORE
    )
    (g_split,) = torch.autograd.grad(split, x)
    torch.testing.assert_close(g_fused, g_split, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda z: losses.dice_bce_loss(z, y, mode, ignore_index=IGNORE, label_smoothing=0.3),
        (x.detach().requires_grad_(),),
    )


@pytest.mark.parametrize("name", ["bce", "balanced_bce", "dice_bce"])
def test_every_pixel_ignored_scores_zero_with_zero_gradient(name):
    x = torch.randn(N, 1, H, W, dtype=torch.float64, requires_grad=True)
    y = torch.full((N, H, W), IGNORE)
    value = losses.LOSSES[name](mode="binary", ignore_index=IGNORE, label_smoothing=0.4)(x, y)
    (grad,) = torch.autograd.grad(value, x)
    assert float(value.detach()) == 0.0 and not grad.any()


@pytest.mark.parametrize("mode", ["binary", "multilabel", "multiclass"])
def test_the_config_reaches_it_in_every_mode_under_the_ce_key(mode):
    # data.mode binary/multilabel read `ce` as `bce` with the same options, so one key smooths every mode
    spec = loss_spec({"ce": {"label_smoothing": 0.2}, "dice": 1.0}, mode)
    loss = losses.ComboLoss(spec, mode, ignore_index=IGNORE)
    x, y, t, valid = _case(mode, soft=False, seed=4)
    loss(x, y)
    if mode == "multiclass":  # torch's CE with label_smoothing: the reference of the softmax term
        ref = torch.nn.functional.cross_entropy(x, y, ignore_index=IGNORE, label_smoothing=0.2)
        assert float(loss.last_terms["ce"]) == pytest.approx(float(ref), abs=1e-12)
    else:
        assert float(loss.last_terms["bce"]) == pytest.approx(bce_mean(x, _smoothed(t, 0.2), valid), abs=1e-12)
    if mode != "multiclass":
        fused = losses.ComboLoss({"dice_bce": {"label_smoothing": 0.2}}, mode, ignore_index=IGNORE)
        assert float(fused(x, y)) == pytest.approx(float(loss(x, y)), abs=1e-12)


@pytest.mark.parametrize("cls", [losses.BCELoss, losses.BalancedBCELoss, losses.DiceBCELoss])
@pytest.mark.parametrize("eps", [1.5, -0.1, math.nan])
def test_out_of_range_is_one_clear_error(cls, eps):
    with pytest.raises(
        ValueError, match=rf"{cls.__name__}: label_smoothing=.*\[0, 1\]|{cls.__name__}.*label_smoothing"
    ):
        cls("binary", label_smoothing=eps)
    with pytest.raises(ValueError, match=r"ComboLoss: loss 'dice_bce'.*label_smoothing"):
        losses.ComboLoss({"dice_bce": {"label_smoothing": 2.0}}, "binary")
