"""MCC loss against smp's MCCLoss (binary) and a naive float64 loop over terms (every mode)."""

import math

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

import losses

N, C, H, W = 2, 3, 5, 6


def _naive(prob, t, valid, eps, per_image):
    """1 - MCC per term from (N, C, P) float64 probabilities, targets and validity, with loops."""
    n, c, _ = prob.shape
    scopes = [[i] for i in range(n)] if per_image else [list(range(n))]
    out = []
    for imgs in scopes:
        row = []
        for k in range(c):
            tp = fp = fn = tn = 0.0
            for i in imgs:
                vv = valid[i, k if valid.shape[1] > 1 else 0]
                for q, y, w in zip(prob[i, k].tolist(), t[i, k].tolist(), vv.tolist()):
                    q, y = q * w, y * w
                    tp += min(q, y)
                    fp += q - min(q, y)
                    fn += y - min(q, y)
                    tn += w - max(q, y)
            tp, fp, fn, tn = tp + eps, fp + eps, fn + eps, tn + eps
            mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
            row.append(1 - mcc)
        out.append(row)
    ref = torch.tensor(out, dtype=torch.float64)
    return ref if per_image else ref[0]


def test_binary_matches_smp_on_the_sigmoid():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (4, 1, 16, 16), generator=g)
    ours = losses.MCCLoss("binary")(x, y)
    ref = smp.losses.MCCLoss()(torch.sigmoid(x), y.double())  # smp takes probabilities
    assert torch.allclose(ours, ref, atol=1e-9, rtol=0), (ours, ref)
    prob = torch.sigmoid(x)
    assert torch.allclose(losses.mcc_loss(prob, y, "binary", from_logits=False), ref, atol=1e-9)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_every_mode_against_the_naive_loop(mode, per_image, soft):
    g = torch.Generator().manual_seed(1)
    c = 1 if mode == "binary" else C
    x = torch.randn(N, c, H, W, generator=g, dtype=torch.float64)
    if mode == "multiclass":
        prob = torch.softmax(x, 1).reshape(N, c, -1)
        if soft:
            y = torch.softmax(2 * torch.randn(N, c, H, W, generator=g, dtype=torch.float64), 1)
            t, valid = y.reshape(N, c, -1), torch.ones(N, 1, H * W, dtype=torch.float64)
        else:
            y = torch.randint(0, c, (N, H, W), generator=g)
            y[0, :2] = 255
            valid = (y != 255).reshape(N, 1, -1).double()
            t = F.one_hot(y.clamp_max(c - 1), c).permute(0, 3, 1, 2).reshape(N, c, -1).double()
    else:
        prob = torch.sigmoid(x).reshape(N, c, -1)
        if soft:
            y = torch.rand(N, c, H, W, generator=g, dtype=torch.float64)
            t, valid = y.reshape(N, c, -1), torch.ones(N, c, H * W, dtype=torch.float64)
        else:
            y = torch.randint(0, 2, (N, c, H, W), generator=g)
            y[1, -1, 1:3] = 255
            valid = (y != 255).reshape(N, c, -1).double()
            t = y.clamp_max(1).reshape(N, c, -1).double()
    ii = None if soft else 255
    ours = losses.mcc_loss(x, y, mode, per_image=per_image, ignore_index=ii, reduction="none")
    ref = _naive(prob, t, valid, 1e-5, per_image)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-9), (ours, ref)
    weights = torch.tensor([1.0, 0.0, 2.0][:c], dtype=torch.float64) if c > 1 else None
    if weights is not None:
        mean = losses.mcc_loss(x, y, mode, per_image=per_image, ignore_index=ii, class_weights=weights.tolist())
        assert torch.allclose(mean, (ref * weights).sum() / (weights.sum() * (N if per_image else 1)), atol=1e-9)


def test_soft_minimum_is_at_the_target_and_degenerate_terms():
    g = torch.Generator().manual_seed(2)
    t = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    at_target = losses.mcc_loss(t, t, "multilabel", from_logits=False, eps=1e-12)
    assert float(at_target) == pytest.approx(0.0, abs=1e-9)
    other = (t + 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert losses.mcc_loss(other, t, "multilabel", from_logits=False, eps=1e-12) > at_target
    # an empty target predicted empty: smp's eps formula gives about 0.5 for both
    empty = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    quiet = torch.full((1, 1, 4, 4), -30.0, dtype=torch.float64)
    ours = losses.mcc_loss(quiet, empty, "binary")
    assert torch.allclose(ours, smp.losses.MCCLoss()(torch.sigmoid(quiet), empty.double()), atol=1e-9)
    assert 0.4 < float(ours) < 0.6
    with pytest.raises(ValueError, match=r"eps=0"):
        losses.MCCLoss("binary", eps=0)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("per_image", [False, True])
def test_full_gradcheck_of_the_hand_written_mcc_backward(mode, per_image):
    g = torch.Generator().manual_seed(3)
    c = 1 if mode == "binary" else C
    x = torch.randn(2, c, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    if mode == "multiclass":
        y = torch.randint(0, c, (2, 2, 3), generator=g)
    else:
        y = torch.randint(0, 2, (2, c, 2, 3), generator=g)
    y[0, ..., 0, :2] = 255
    fn = lambda z: losses.mcc_loss(z, y, mode, per_image=per_image, ignore_index=255, eps=1e-3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
