"""Spectral-residual saliency and the saliency regions against naive float64 references."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augment import block_region, saliency_rect, spectral_residual_saliency


def naive_dft(a: np.ndarray, inverse: bool = False) -> np.ndarray:
    """The 2-D DFT by its definition, sum_{y,x} a[y, x] exp(-+2 pi i (u y / H + v x / W))."""
    h, w = a.shape
    sign = 1.0 if inverse else -1.0
    out = np.zeros((h, w), complex)
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    for u in range(h):
        for v in range(w):
            out[u, v] = (a * np.exp(sign * 2j * np.pi * (u * ys / h + v * xs / w))).sum()
    return out / (h * w) if inverse else out


def naive_filter(a: np.ndarray, kernel: np.ndarray, border: str) -> np.ndarray:
    """Correlation with ``kernel`` pixel by pixel; border "replicate" (edge repeated) or "reflect101"."""
    h, w = a.shape
    r = kernel.shape[0] // 2

    def index(i, n):
        if border == "replicate":
            return min(max(i, 0), n - 1)
        while i < 0 or i >= n:  # reflect101: ... 2 1 | 0 1 2 ... n-1 | n-2 ...
            i = -i if i < 0 else 2 * (n - 1) - i
        return i

    out = np.zeros_like(a, dtype=float)
    for y in range(h):
        for x in range(w):
            out[y, x] = sum(
                kernel[dy + r, dx + r] * a[index(y + dy, h), index(x + dx, w)]
                for dy in range(-r, r + 1)
                for dx in range(-r, r + 1)
            )
    return out


def naive_saliency(image: np.ndarray, sigma: float) -> np.ndarray:
    """Hou & Zhang's four lines in float64, on an image already ``size x size`` (no resize)."""
    grey = image.astype(float) @ [0.299, 0.587, 0.114] if image.ndim == 3 else image.astype(float)
    spectrum = naive_dft(grey)
    amplitude = np.abs(spectrum)
    log_amplitude = np.log(np.maximum(amplitude, amplitude.max() * 1e-9))
    residual = log_amplitude - naive_filter(log_amplitude, np.full((3, 3), 1 / 9), "replicate")
    s = np.abs(naive_dft(np.exp(residual + 1j * np.angle(spectrum)), inverse=True)) ** 2
    r = math.ceil(3 * sigma)
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    g /= g.sum()
    s = naive_filter(s, np.outer(g, g), "reflect101")
    s -= s.min()
    return s / s.max()


@pytest.mark.parametrize("size,channels,sigma", [(8, 3, 1.0), (12, 0, 2.5), (16, 3, 0.7)])
def test_saliency_equals_the_naive_float64_definition(size, channels, sigma):
    rng = np.random.default_rng(size)
    shape = (size, size, channels) if channels else (size, size)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    ours = spectral_residual_saliency(image, size=size, sigma=sigma)
    np.testing.assert_allclose(ours, naive_saliency(image, sigma), rtol=0, atol=2e-6)


def test_saliency_resizes_then_greys_and_back():
    image = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    ours = spectral_residual_saliency(image, size=16)
    # the small grid is the area average of each 3x5 cell; its saliency is the naive one
    small = image.astype(float).reshape(16, 3, 16, 5, 3).mean((1, 3))
    ref = naive_saliency(small, 2.5).astype(np.float32)
    import cv2

    np.testing.assert_allclose(ours, cv2.resize(ref, (80, 48), interpolation=cv2.INTER_LINEAR), atol=2e-5)
    assert ours.dtype == np.float32 and ours.shape == (48, 80) and 0 <= ours.min() and ours.max() <= 1


def test_saliency_finds_a_small_object_on_a_noisy_background():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(10):
        image = rng.normal(100, 4, (120, 160, 3)).clip(0, 255).astype(np.uint8)
        cy, cx = rng.integers(15, 105), rng.integers(15, 145)
        yy, xx = np.mgrid[:120, :160]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = (240, 220, 60)  # bright in grey (luma 208 on 100)
        s = spectral_residual_saliency(image)
        py, px = np.unravel_index(s.argmax(), s.shape)
        hits += (py - cy) ** 2 + (px - cx) ** 2 < 100
    assert hits == 10


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7), (3, 2, 3), (5, 5, 1), (4, 6, 5)])
def test_degenerate_images(shape):
    flat = np.full(shape, 77, np.uint8)
    assert not spectral_residual_saliency(flat).any()  # no contrast: the all-zero map
    noisy = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    s = spectral_residual_saliency(noisy)
    assert s.shape == shape[:2] and s.dtype == np.float32 and np.isfinite(s).all()
    assert (s >= 0).all() and (s <= 1).all()


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0, 1), st.integers(0, 2**32 - 1), st.booleans())
def test_saliency_rect_holds_the_peak_at_the_drawn_size(h, w, lam, seed, flat):
    rng = np.random.default_rng(seed)
    s = np.zeros((h, w)) if flat else rng.random((h, w))
    region = saliency_rect(s, lam, np.random.default_rng(seed + 1))
    rows, cols = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
    assert region.sum() == rows * cols
    if rows and cols:
        ys, xs = np.nonzero(region)
        assert ys.max() - ys.min() + 1 == rows and xs.max() - xs.min() + 1 == cols  # one rectangle
        if not flat:
            py, px = np.unravel_index(s.argmax(), s.shape)
            assert region[py, px]
            top, left = py - rows // 2, px - cols // 2  # centred on the peak unless a border is in the way
            if 0 <= top <= h - rows and 0 <= left <= w - cols:
                assert ys.min() == top and xs.min() == left


def test_saliency_rect_on_a_flat_map_draws_the_peak_uniformly():
    tops = {
        int(np.argwhere(saliency_rect(np.zeros((20, 20)), 0.96, np.random.default_rng(i)))[0, 0]) for i in range(60)
    }
    assert len(tops) > 8  # every pixel is a peak: the rectangle lands anywhere


def _blocks(h, w, g):
    ys, xs = (np.arange(g + 1) * h) // g, (np.arange(g + 1) * w) // g
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(g) for j in range(g)]


def _shown(a, b, h, w, g, chosen):
    """Saliency the mix shows: block means scaled to sum 1 per map, partner on ``chosen``, primary elsewhere."""
    blocks = _blocks(h, w, g)
    ma = np.array([a[y0:y1, x0:x1].mean() for y0, y1, x0, x1 in blocks])
    mb = np.array([b[y0:y1, x0:x1].mean() for y0, y1, x0, x1 in blocks])
    ma, mb = ma / ma.sum(), mb / mb.sum()
    return sum(mb[i] if i in chosen else ma[i] for i in range(len(blocks)))


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 17), st.integers(3, 17), st.sampled_from([1, 2, 3]), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_block_region_shows_the_most_saliency_of_every_mask_with_k_blocks(h, w, g, lam, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((h, w)) + 1e-3, rng.random((h, w)) + 1e-3
    region = block_region(a, b, g, lam, np.random.default_rng(seed))
    blocks = _blocks(h, w, g)
    k = round((1 - lam) * g * g)
    chosen = set()
    for i, (y0, y1, x0, x1) in enumerate(blocks):
        cell = region[y0:y1, x0:x1]
        assert cell.all() or not cell.any()  # a union of whole blocks
        if cell.all():
            chosen.add(i)
    assert len(chosen) == k
    best = max(_shown(a, b, h, w, g, set(c)) for c in itertools.combinations(range(g * g), k))  # brute force
    assert _shown(a, b, h, w, g, chosen) == pytest.approx(best, rel=1e-12)


def test_block_region_degenerate_inputs():
    zero = np.zeros((6, 6))
    picks = {block_region(zero, zero, 2, 0.5, np.random.default_rng(i)).tobytes() for i in range(30)}
    assert len(picks) == 6  # all-zero saliency: every pair of the 4 blocks can be drawn
    tiny = block_region(np.zeros((1, 3)), np.ones((1, 3)), 16, 0.0, np.random.default_rng(0))
    assert tiny.all()  # a grid finer than the image is capped at its pixels
    assert not block_region(zero, zero, 4, 1.0, np.random.default_rng(0)).any()


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: spectral_residual_saliency(np.zeros((0, 4))), r"\(H, W\) or \(H, W, C\)"),
        (lambda: spectral_residual_saliency(np.zeros((4, 4)), size=0), "size must be an integer >= 1"),
        (lambda: spectral_residual_saliency(np.zeros((4, 4)), sigma=0), "sigma must be > 0"),
        (lambda: saliency_rect(np.zeros((4, 4)), 1.5, np.random.default_rng(0)), r"lam .* \[0, 1\], got 1.5"),
        (lambda: saliency_rect(np.full((4, 4), np.nan), 0.5, np.random.default_rng(0)), "finite"),
        (lambda: block_region(np.zeros((4, 4)), np.zeros((4, 5)), 2, 0.5, np.random.default_rng(0)), "one shape"),
        (lambda: block_region(np.zeros((4, 4)), np.zeros((4, 4)), 0, 0.5, np.random.default_rng(0)), "grid"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
