"""Region sums at millions of pixels: within 1e-6 of a float64 reference and never negative.

Near-perfect predictions are the hard case: every class sum is millions of probabilities close to
1, where a float32 sum accumulated in order (a scatter-add, a BLAS dot product) drifts by far more
than the loss itself, and a Dice of 1 - 1e-4 came out above 1. The reference takes the float32
logits (or their bf16/fp16 values) to float64 and applies the formula there.
"""

import pytest
import torch
import torch.nn.functional as F
from losses_reference import tversky_mean64

import losses

IGNORE = 255
# (function, alpha, beta, per_image): Dice, Jaccard and Tversky share the sums; the formulas differ.
REGION = [(losses.dice_loss, 0.5, 0.5, False), (losses.jaccard_loss, 1.0, 1.0, True)]


def _near_perfect(labels: torch.Tensor, channels: int, seed: int) -> torch.Tensor:
    """float32 logits whose softmax (or sigmoid) puts about 1 - 1e-4 on the label."""
    g = torch.Generator().manual_seed(seed)
    if channels == 1:
        sign = labels.unsqueeze(1).float() * 2 - 1
        return 9.0 * sign + 0.5 * torch.randn(sign.shape, generator=g)
    onehot = F.one_hot(labels.clamp_max(channels - 1), channels).permute(0, 3, 1, 2).float()
    return 11.0 * onehot + 0.5 * torch.randn(onehot.shape, generator=g)


def test_multiclass_batch_16x4x512x512():
    n, c, h, w = 16, 4, 512, 512
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, c, (n, h, w), generator=g)
    x = _near_perfect(y, c, seed=1)
    y[:, :24] = IGNORE
    prob = torch.softmax(x.double(), 1).reshape(n, c, -1)
    valid = (y != IGNORE).reshape(n, 1, -1).double()
    onehot = F.one_hot(y.clamp_max(c - 1), c).permute(0, 3, 1, 2).reshape(n, c, -1).double()
    for fn, alpha, beta, per_image in REGION:
        ours = fn(x, y, "multiclass", ignore_index=IGNORE, per_image=per_image)
        ref = tversky_mean64(prob, onehot, valid, alpha, beta, 0.0, per_image)
        assert ours.dtype == torch.float32
        assert abs(float(ours) - float(ref)) < 1e-6, (fn.__name__, per_image, float(ours), float(ref))
        assert float(ours) >= 0
    # the same labels as a soft (one-hot float) target: the min(q, t) path
    soft = onehot.reshape(n, c, h, w).float()
    ref = tversky_mean64(prob, onehot, torch.ones_like(valid), 0.3, 0.7, 0.0, False)
    ours = losses.tversky_loss(x, soft, "multiclass", alpha=0.3, beta=0.7)
    assert abs(float(ours) - float(ref)) < 1e-6, (float(ours), float(ref))


def test_one_4096x4096_image():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 2, (1, 4096, 4096), generator=g)
    x = _near_perfect(y, 1, seed=3)
    x64 = x.double().reshape(1, 1, -1)
    prob = torch.sigmoid(x64)
    t = y.reshape(1, 1, -1).double()
    ref_dice = tversky_mean64(prob, t, torch.ones_like(t), 0.5, 0.5, 0.0, False)
    assert 1e-5 < float(ref_dice) < 1e-3  # near-perfect, not perfect
    ours = {
        "hard": losses.dice_loss(x, y, "binary"),
        "soft": losses.dice_loss(x, y.float(), "binary"),
        "multilabel": losses.dice_loss(x, y.unsqueeze(1), "multilabel"),
    }
    for kind, value in ours.items():
        assert value.dtype == torch.float32
        assert abs(float(value) - float(ref_dice)) < 1e-6, (kind, float(value), float(ref_dice))
        assert float(value) >= 0
    # ignored rows (validity weights) and the fused Dice + BCE path
    yi = y.clone()
    yi[:, :100] = IGNORE
    valid = (yi != IGNORE).reshape(1, 1, -1).double()
    ti = t * valid
    bce = (F.binary_cross_entropy_with_logits(x64, ti, reduction="none") * valid).sum() / valid.sum()
    ref = tversky_mean64(prob, ti, valid, 0.5, 0.5, 0.0, False)
    fused = losses.dice_bce_loss(x, yi, "binary", ignore_index=IGNORE)
    assert abs(float(fused) - float(ref + bce)) < 1e-6, (float(fused), float(ref + bce))
    dice = losses.dice_loss(x, yi, "binary", ignore_index=IGNORE)
    assert abs(float(dice) - float(ref)) < 1e-6 and float(dice) >= 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_of_one_4096x4096_image(dtype):
    # the reference takes the rounded bf16/fp16 logits themselves to float64
    g = torch.Generator().manual_seed(5)
    y = torch.randint(0, 2, (1, 4096, 4096), generator=g)
    x = _near_perfect(y, 1, seed=6).to(dtype)
    prob = torch.sigmoid(x.double()).reshape(-1)
    t = y.reshape(-1).double()
    ref = 1 - 2 * (prob * t).sum() / (prob.sum() + t.sum())
    ours = losses.dice_loss(x, y, "binary")
    assert ours.dtype == torch.float32
    assert abs(float(ours) - float(ref)) < 1e-6 and float(ours) >= 0, (float(ours), float(ref))


def test_a_perfect_prediction_scores_exactly_zero_and_keeps_a_gradient():
    y = torch.randint(0, 2, (1, 1024, 1024), generator=torch.Generator().manual_seed(4))
    x = (y.unsqueeze(1).float() * 2 - 1).mul(30.0).requires_grad_(True)  # sigmoid is 0 or 1 in float32
    loss = losses.jaccard_loss(x, y, "binary")
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("length", [1, 255, 256, 1000, 4 * 256])
def test_sum64_matches_a_float64_sum_at_every_length(length):
    from losses._sums import sum64

    a = torch.rand(3, 2, length, generator=torch.Generator().manual_seed(length)) * 1e3
    out = sum64(a)
    assert out.dtype == torch.float64 and out.shape == (3, 2)
    assert torch.allclose(out, a.double().sum(-1), rtol=2e-7, atol=0)  # float32 rounding of each block
    strided = a.transpose(0, 1)  # not contiguous outside the last axis
    assert torch.allclose(sum64(strided), strided.double().sum(-1), rtol=2e-7, atol=0)


@pytest.mark.parametrize(
    "fn,mode", [(losses.dice_loss, "multiclass"), (losses.tversky_loss, "multilabel"), (losses.dice_bce_loss, "binary")]
)
def test_float32_gradient_equals_the_float64_one_past_one_block(fn, mode):
    # the float64 sums hand their gradient back in float32; compare at 2 x 300 x 301 pixels
    g = torch.Generator().manual_seed(7)
    c = 1 if mode == "binary" else 3
    x64 = torch.randn(2, c, 300, 301, generator=g, dtype=torch.float64)
    if mode == "multiclass":
        y = torch.randint(0, c, (2, 300, 301), generator=g)
    else:
        y = torch.randint(0, 2, (2, c, 300, 301), generator=g)
    y[0, ..., :10, :] = IGNORE
    grads = []
    for x in (x64, x64.float()):
        x = x.clone().requires_grad_(True)
        fn(x, y, mode, ignore_index=IGNORE).backward()
        grads.append(x.grad)
    assert grads[1].dtype == torch.float32
    assert torch.allclose(grads[1].double(), grads[0], rtol=1e-4, atol=1e-10)


@pytest.mark.parametrize(
    "opts",
    [
        {"gamma": 0.75, "per_image": True, "smooth": 0.5},
        {"gamma": 2.0, "log_loss": True, "alpha": 0.2, "beta": 0.9},
        {"log_loss": True, "per_image": True, "alpha": 1.0, "beta": 1.0, "class_weights": [1.0, 0.0, 2.0]},
        {"smooth": 1.0, "alpha": 0.0, "beta": 1.0, "reduction": "sum"},
    ],
)
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_full_gradcheck_of_the_hand_written_tversky_backward(mode, opts):
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    if mode == "multiclass":
        y = torch.randint(0, 3, (2, 2, 3), generator=g)
        y[1] = 0  # classes 1 and 2 absent from image 1: empty terms per image
    else:
        y = torch.randint(0, 2, (2, 3, 2, 3), generator=g)
        y[0, 2] = 0
    y[0, ..., 0, :2] = IGNORE
    assert torch.autograd.gradcheck(lambda z: losses.tversky_loss(z, y, mode, ignore_index=IGNORE, **opts), (x,))
