"""BCE, balanced BCE, focal, cross-entropy and distillation against smp, torch and naive loops."""

import math

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
import torchvision.ops
from losses_reference import bce_mean, softmax_focal_mean

import losses

N, C, H, W = 2, 3, 5, 6


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _binary(seed=0, c=1):
    g = _gen(seed)
    x = torch.randn(N, c, H, W, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (N, c, H, W), generator=g)
    return x, y


def _multiclass(seed=0):
    g = _gen(seed)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (N, H, W), generator=g)
    return x, y


# ---------------------------------------------------------------- BCE
@pytest.mark.parametrize("smooth_factor", [None, 0.1])
def test_bce_matches_smp_without_ignored_pixels(smooth_factor):
    x, y = _binary(c=C)
    eps = 0.0 if smooth_factor is None else 2 * smooth_factor  # smp's f is segdet's eps / 2
    ours = losses.bce_loss(x, y, "multilabel", label_smoothing=eps)
    ref = smp.losses.SoftBCEWithLogitsLoss(ignore_index=None, smooth_factor=smooth_factor)(x, y.double())
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def test_bce_divides_by_valid_pixels_not_all_pixels():
    # smp #852: SoftBCEWithLogitsLoss zeroes ignored pixels but still divides by all of them.
    # segdet leaves them out of numerator and denominator; the loop reference does the same.
    x, y = _binary()
    y[0, 0, :2] = 255
    valid = (y != 255).double()
    ours = losses.bce_loss(x, y, ignore_index=255)
    ref = bce_mean(x, y.clamp_max(1).double(), valid)
    assert float(ours) == pytest.approx(ref, abs=1e-12)
    smp_value = smp.losses.SoftBCEWithLogitsLoss(ignore_index=255)(x, y.double())
    assert float(smp_value) == pytest.approx(ref * valid.mean().item(), abs=1e-9)


def test_bce_pos_weight_is_per_channel():
    x, y = _binary(c=C)
    pw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    ours = losses.bce_loss(x, y, "multilabel", pos_weight=pw)
    ref = F.binary_cross_entropy_with_logits(x, y.double(), pos_weight=pw.view(1, C, 1, 1))
    assert torch.allclose(ours, ref, atol=1e-12)


def test_balanced_bce_against_naive():
    x, y = _binary(seed=2)
    y[0] = 0
    y[0, 0, 0, :2] = 1  # image 0: 2 positives of 30
    for beta_mode in ("image", "batch", 0.7):
        ours = losses.balanced_bce_loss(x, y, beta=beta_mode, reduction="sum")
        total = 0.0
        for i in range(N):
            yi = y[i].double() if beta_mode == "image" else y.double()
            beta = beta_mode if isinstance(beta_mode, float) else float((1 - yi).mean())
            for xv, tv in zip(x[i].flatten().tolist(), y[i].flatten().tolist()):
                p = 1 / (1 + math.exp(-xv))
                total += -(beta * tv * math.log(p) + (1 - beta) * (1 - tv) * math.log(1 - p))
        assert float(ours) == pytest.approx(total, rel=1e-10)


# ---------------------------------------------------------------- focal
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_sigmoid_focal_matches_smp_and_torchvision(mode, alpha):
    x, y = _binary(seed=4, c=1 if mode == "binary" else C)
    ours = losses.focal_loss(x, y, mode, gamma=2.0, alpha=alpha)
    ref = smp.losses.FocalLoss(mode, gamma=2.0, alpha=alpha)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    if alpha is not None:
        tv = torchvision.ops.sigmoid_focal_loss(x, y.double(), alpha=alpha, gamma=2.0, reduction="mean")
        assert torch.allclose(ours, tv, atol=1e-6, rtol=0)


def test_binary_focal_with_ignore_matches_smp():
    x, y = _binary(seed=5)
    y[1, 0, 2] = 255
    ours = losses.focal_loss(x, y, "binary", ignore_index=255, alpha=0.3)
    ref = smp.losses.FocalLoss("binary", ignore_index=255, alpha=0.3)(x, y)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def test_softmax_focal_against_naive():
    # smp's multiclass focal is one-vs-rest sigmoid (smp #671); segdet's is softmax focal.
    x, y = _multiclass(seed=6)
    y[0, 0] = 255
    alpha = [0.2, 0.5, 1.0]
    ours = losses.focal_loss(x, y, "multiclass", gamma=1.5, alpha=alpha, ignore_index=255)
    assert float(ours) == pytest.approx(softmax_focal_mean(x, y, 1.5, alpha, 255), rel=1e-10)


def test_focal_gamma_zero_is_bce_and_ce():
    xb, yb = _binary(seed=7, c=C)
    assert torch.allclose(
        losses.focal_loss(xb, yb, "multilabel", gamma=0.0), losses.bce_loss(xb, yb, "multilabel"), atol=1e-12
    )
    x, y = _multiclass(seed=7)
    assert torch.allclose(losses.focal_loss(x, y, "multiclass", gamma=0.0), F.cross_entropy(x, y), atol=1e-12)


def test_soft_focal_matches_torchvision():
    g = _gen(8)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    t = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    ours = losses.focal_loss(x, t, "multilabel", alpha=0.25)
    tv = torchvision.ops.sigmoid_focal_loss(x, t, reduction="mean")
    assert torch.allclose(ours, tv, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize(
    "opts", [{}, {"label_smoothing": 0.1}, {"class_weights": [0.5, 1.0, 2.0], "label_smoothing": 0.2}]
)
def test_ce_hard_matches_torch(opts):
    x, y = _multiclass(seed=9)
    y[0, 1] = 255
    ours = losses.cross_entropy_loss(x, y, ignore_index=255, **opts)
    torch_opts = {"label_smoothing": opts.get("label_smoothing", 0.0)}
    if "class_weights" in opts:
        torch_opts["weight"] = torch.tensor(opts["class_weights"], dtype=torch.float64)
    ref = F.cross_entropy(x, y, ignore_index=255, **torch_opts)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


def test_ce_with_ignore_and_smoothing_divides_by_valid_pixels_like_torch_not_all_like_smp():
    # torch's rule: the mean runs over the pixels that are not ignore_index, smoothing term
    # included; smp's SoftCrossEntropyLoss zeroes ignored pixels but divides by all of them.
    x, y = _multiclass(seed=12)
    y[0, :2] = 255
    valid = (y != 255).double().mean()
    ours = losses.cross_entropy_loss(x, y, ignore_index=255, label_smoothing=0.1)
    torch_ref = F.cross_entropy(x, y, ignore_index=255, label_smoothing=0.1)
    smp_value = smp.losses.SoftCrossEntropyLoss(smooth_factor=0.1, ignore_index=255)(x, y)
    assert torch.allclose(ours, torch_ref, atol=1e-12)
    assert torch.allclose(smp_value, ours * valid, atol=1e-9)
    assert not torch.allclose(smp_value, ours, atol=1e-3)


def test_ce_soft_matches_torch_and_zero_pixels_are_left_out():
    g = _gen(10)
    x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    t = torch.softmax(torch.randn(N, C, H, W, generator=g, dtype=torch.float64), 1)
    ref = F.cross_entropy(x, t, label_smoothing=0.1)
    assert torch.allclose(losses.cross_entropy_loss(x, t, label_smoothing=0.1), ref, atol=1e-6)
    # MixUp of two unlabelled pixels: an all-zero probability vector is left out entirely.
    t2 = t.clone()
    t2[0, :, 0, 0] = 0
    keep = torch.ones(N, H, W, dtype=torch.bool)
    keep[0, 0, 0] = False
    per_pixel = -(t * torch.log_softmax(x, 1)).sum(1)
    assert torch.allclose(losses.cross_entropy_loss(x, t2), per_pixel[keep].mean(), atol=1e-12)


# ---------------------------------------------------------------- distillation
def test_kd_against_naive():
    g = _gen(11)
    s = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    t = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    temp = 3.0
    ours = losses.kd_loss(s, t, temperature=temp)
    q = torch.softmax(t / temp, 1)
    ref = temp**2 * (q * (q.log() - torch.log_softmax(s / temp, 1))).sum(1).mean()
    assert torch.allclose(ours, ref, atol=1e-12)
    assert float(losses.kd_loss(t, t, temperature=temp)) == pytest.approx(0.0, abs=1e-12)
    sb, tb = s[:, :1], t[:, :1]
    qb = torch.sigmoid(tb / temp)
    pb = torch.sigmoid(sb / temp)
    refb = temp**2 * (qb * (qb / pb).log() + (1 - qb) * ((1 - qb) / (1 - pb)).log()).mean()
    assert torch.allclose(losses.kd_loss(sb, tb, "binary", temperature=temp), refb, atol=1e-12)


# ---------------------------------------------------------------- fused Dice + BCE
def test_dice_bce_equals_separate_terms():
    x, y = _binary(seed=12, c=C)
    y[0, 1, 0] = 255
    for per_image in (False, True):
        kw = dict(ignore_index=255, per_image=per_image, smooth=0.5)
        fused = losses.dice_bce_loss(x, y, "multilabel", dice_weight=0.7, bce_weight=1.3, **kw)
        dice = losses.dice_loss(x, y, "multilabel", **kw)
        bce = losses.bce_loss(x, y, "multilabel", ignore_index=255, per_image=per_image)
        assert torch.allclose(fused, 0.7 * dice + 1.3 * bce, atol=1e-12)
    smp_sum = smp.losses.DiceLoss("multilabel")(x, y.clamp_max(1)) + smp.losses.SoftBCEWithLogitsLoss(
        ignore_index=None
    )(x, y.clamp_max(1).double())
    assert torch.allclose(losses.dice_bce_loss(x, y.clamp_max(1), "multilabel"), smp_sum, atol=1e-6, rtol=0)


def test_ce_and_softmax_focal_per_image_average_images():
    x, y = _multiclass(seed=13)
    y[0, :3] = 255  # image 0 has fewer valid pixels, so per-image and batch means differ
    per_img = torch.stack(
        [F.cross_entropy(x[i : i + 1], y[i : i + 1], ignore_index=255, label_smoothing=0.1) for i in range(N)]
    ).mean()
    ours = losses.cross_entropy_loss(x, y, ignore_index=255, label_smoothing=0.1, per_image=True)
    assert torch.allclose(ours, per_img, atol=1e-12)
    focal = losses.focal_loss(x, y, "multiclass", gamma=0.0, ignore_index=255, per_image=True, reduction="mean")
    plain = torch.stack([F.cross_entropy(x[i : i + 1], y[i : i + 1], ignore_index=255) for i in range(N)]).mean()
    assert torch.allclose(focal, plain, atol=1e-12)
    total = losses.cross_entropy_loss(x, y, ignore_index=255, reduction="sum")
    assert torch.allclose(total, F.cross_entropy(x, y, ignore_index=255, reduction="sum"))


def test_sigmoid_focal_none_map_and_per_channel_alpha():
    x, y = _binary(seed=14, c=C)
    y[0, 2, 1] = 255
    alpha = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    kw = dict(gamma=1.5, alpha=alpha, ignore_index=255)
    full = losses.focal_loss(x, y, "multilabel", reduction="none", **kw)
    assert full.shape == x.shape
    valid = (y != 255).double()
    t = y.clamp_max(1).double() * valid
    p = torch.sigmoid(x)
    pt = p * t + (1 - p) * (1 - t)
    a = alpha.view(1, C, 1, 1)
    ref = -(a * t + (1 - a) * (1 - t)) * (1 - pt) ** 1.5 * torch.log(pt) * valid
    assert torch.allclose(full, ref, atol=1e-12)
    assert torch.allclose(losses.focal_loss(x, y, "multilabel", **kw), ref.sum() / valid.sum())


def _naive_probability_focal(prob, t, valid, gamma, alpha):
    """Mean over valid elements of -a_t (1 - p_t)^gamma [t log p + (1 - t) log(1 - p)], one by one."""

    def log(v):
        return max(math.log(v), -100.0) if v > 0 else -100.0

    num = den = 0.0
    for p, y, w in zip(prob.flatten().tolist(), t.flatten().tolist(), valid.flatten().tolist()):
        if w == 0:
            continue
        pt = p * y + (1 - p) * (1 - y)
        a = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
        num += -a * (1 - pt) ** gamma * (y * log(p) + (1 - y) * log(1 - p))
        den += 1
    return num / den


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("soft", [False, True])
def test_focal_on_probabilities_against_a_naive_formula(mode, soft):
    c = 1 if mode == "binary" else C
    x, y = _binary(seed=13, c=c)
    prob = torch.sigmoid(x)
    prob[0, 0, 0, 0] = 0.0  # a saturated probability: the log is floored at -100, as torch's BCE
    if soft:
        y = torch.rand(y.shape, generator=_gen(14), dtype=torch.float64)
        valid = torch.ones_like(y)
        ii = None
    else:
        y[1, 0, 2] = 255
        valid = (y != 255).double()
        ii = 255
    for gamma, alpha in ((2.0, 0.25), (0.5, None)):
        ours = losses.focal_loss(prob, y, mode, gamma=gamma, alpha=alpha, ignore_index=ii, from_logits=False)
        ref = _naive_probability_focal(prob, y.clamp_max(1).double(), valid, gamma, alpha)
        assert float(ours) == pytest.approx(ref, abs=1e-12)
    # away from saturation, probabilities give the loss of their logits
    prob[0, 0, 0, 0] = 0.5
    x = torch.logit(prob)
    a = losses.FocalLoss(mode, alpha=0.25, ignore_index=ii, from_logits=False)(prob, y)
    assert torch.allclose(a, losses.FocalLoss(mode, alpha=0.25, ignore_index=ii)(x, y), atol=1e-12)


def test_softmax_focal_on_probabilities_against_naive():
    x, y = _multiclass(seed=15)
    y[0, 1, :3] = 255
    prob = torch.softmax(x, 1)
    ours = losses.focal_loss(
        prob, y, "multiclass", gamma=2.0, alpha=[0.2, 0.3, 0.5], ignore_index=255, from_logits=False
    )
    ref = softmax_focal_mean(x, y, 2.0, [0.2, 0.3, 0.5], 255)
    assert float(ours) == pytest.approx(ref, abs=1e-12)
    xg = prob.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: losses.focal_loss(z, y, "multiclass", ignore_index=255, from_logits=False), (xg,)
    )
