"""Channel-wise distillation (``losses.cwd_loss``) against a naive float64 loop written out here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import losses


def naive_cwd(s: np.ndarray, t: np.ndarray, temperature: float, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, C) values: T^2 * KL(softmax_space(t / T) || softmax_space(s / T)) per image and channel, float64 loops."""
    n, c = s.shape[:2]
    out = np.zeros((n, c))
    for i in range(n):
        keep = np.ones(s.shape[2:], bool) if mask is None else mask[i]
        for k in range(c):
            a = t[i, k][keep].astype(np.float64) / temperature
            b = s[i, k][keep].astype(np.float64) / temperature
            if a.size == 0:
                continue
            q = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
            p = np.exp(b - b.max()) / np.exp(b - b.max()).sum()
            out[i, k] = temperature**2 * float(np.sum(q * (np.log(q) - np.log(p))))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 4, 4), (3, 4, 24, 33)])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_cwd_matches_naive(shape, temperature):
    g = torch.Generator().manual_seed(sum(shape))
    s = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    t = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    ref = naive_cwd(s.numpy(), t.numpy(), temperature)
    got = losses.cwd_loss(s, t, temperature=temperature, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)
    n, c = shape[:2]
    assert float(losses.cwd_loss(s, t, temperature)) == pytest.approx(ref.sum() / (n * c), rel=1e-10)
    assert float(losses.cwd_loss(s, t, temperature, reduction="sum")) == pytest.approx(ref.sum(), rel=1e-10)
    module = losses.CWDLoss(temperature=temperature)
    assert float(module(s, t)) == pytest.approx(ref.sum() / (n * c), rel=1e-10)


def test_cwd_mask_leaves_positions_out_of_the_softmax():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(3, 2, 6, 5, generator=g, dtype=torch.float64), torch.randn(3, 2, 6, 5, generator=g).double()
    mask = torch.rand(3, 6, 5, generator=g) > 0.4
    mask[2] = False  # an image without any position: 0 and out of the mean
    ref = naive_cwd(s.numpy(), t.numpy(), 2.0, mask.numpy())
    got = losses.cwd_loss(s, t, 2.0, mask=mask, reduction="none")
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)
    assert float(losses.cwd_loss(s, t, 2.0, mask=mask)) == pytest.approx(ref[:2].sum() / 4, rel=1e-10)
    # what lies outside the mask cannot change the value
    s2 = torch.where(mask[:, None], s, s + 100.0 * torch.randn(s.shape, generator=g, dtype=torch.float64))
    assert float(losses.cwd_loss(s2, t, 2.0, mask=mask)) == pytest.approx(float(losses.cwd_loss(s, t, 2.0, mask=mask)))


def test_cwd_degenerate_cases():
    s = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert float(losses.cwd_loss(s, s)) == pytest.approx(0.0, abs=1e-12)
    # a constant per channel shifts no spatial distribution
    shift = torch.randn(2, 3, 1, 1, dtype=torch.float64)
    assert float(losses.cwd_loss(s + shift, s)) == pytest.approx(0.0, abs=1e-12)
    s.requires_grad_(True)
    empty = losses.cwd_loss(s, s.detach() * 2, mask=torch.zeros(2, 4, 4, dtype=torch.bool))
    empty.backward()
    assert empty.item() == 0.0 and s.grad is not None and float(s.grad.abs().sum()) == 0.0
    assert losses.cwd_loss(torch.zeros(0, 3, 4, 4), torch.zeros(0, 3, 4, 4)).item() == 0.0


def test_cwd_gradcheck():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 3, 4, generator=g) > 0.3
    assert torch.autograd.gradcheck(lambda x: losses.cwd_loss(x, t, 3.0, mask=mask), (s,))


def test_cwd_under_autocast_reduces_in_float32():
    s, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    ref = losses.cwd_loss(s.double(), t.double(), 2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = losses.cwd_loss(s.bfloat16(), t.bfloat16(), 2.0)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(ref), rel=2e-2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: losses.cwd_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 5)), "student's shape"),
        (lambda: losses.cwd_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), 0.0), "temperature"),
        (lambda: losses.cwd_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), reduction="avg"), "reduction"),
        (lambda: losses.cwd_loss(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), mask=torch.ones(2, 4)), "mask"),
        (lambda: losses.CWDLoss(temperature=-1.0), "temperature"),
    ],
)
def test_cwd_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
