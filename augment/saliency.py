"""Spectral-residual saliency (Hou & Zhang, CVPR 2007) and the regions the saliency mixers paste.

The saliency of an image is computed from its picture alone, in the mixer (no network):

    g  = the image resized to ``size x size`` (area average when shrinking, bilinear when
         enlarging), in grey (ITU-R 601 luma for 3 channels, the channel mean otherwise)
    F  = DFT(g),  L = log |F| (floored at 1e-9 of the largest amplitude),  P = arg F
    R  = L - mean3x3(L)                          (the spectral residual; replicated borders)
    S  = gauss_sigma( |IDFT(exp(R + i P))|^2 )   (kernel 2 ceil(3 sigma) + 1, reflected borders)

``S`` is scaled to [0, 1] and resized back to the image (bilinear). A grey image without
contrast has no residual and gets the all-zero map. OpenCV has the same method in its contrib
``saliency`` module, which segdet does not depend on (it is not in ``opencv-python``), so the four
lines above are written here with numpy's FFT and OpenCV's filters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["spectral_residual_saliency", "saliency_rect", "block_region"]

_LUMA = np.array([0.299, 0.587, 0.114])


def _grey(image: np.ndarray) -> np.ndarray:
    """(H, W) float64 grey of an (H, W) or (H, W, C) image (luma for RGB, channel mean otherwise)."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        return image
    if image.shape[2] == 3:
        return image @ _LUMA
    return image.mean(axis=2)


def spectral_residual_saliency(image: np.ndarray, size: int = 64, sigma: float = 2.5) -> np.ndarray:
    """Spectral-residual saliency map of ``image``, (H, W) float32 in [0, 1] (module docstring).

    Args:
        image: (H, W) or (H, W, C) array, uint8 or float.
        size: side of the square grid the saliency is computed on (Hou & Zhang use 64).
        sigma: standard deviation in grid pixels of the final Gaussian smoothing (2.5, as the
            authors' published MATLAB code).

    Returns:
        (H, W) float32; all zero for an image without contrast.

    Raises:
        ValueError: an empty image, ``size < 1`` or ``sigma <= 0``.

    Example:
        >>> image = np.random.default_rng(0).normal(100, 4, (96, 128)).clip(0, 255).astype(np.uint8)
        >>> yy, xx = np.mgrid[:96, :128]; image[(yy - 30) ** 2 + (xx - 90) ** 2 < 64] = 230  # a disk
        >>> s = spectral_residual_saliency(image)
        >>> py, px = np.unravel_index(s.argmax(), s.shape)
        >>> s.shape, bool((py - 30) ** 2 + (px - 90) ** 2 < 64)
        ((96, 128), True)
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"spectral_residual_saliency: image must be (H, W) or (H, W, C), got shape {image.shape}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"spectral_residual_saliency: size must be an integer >= 1, got {size!r}")
    if not float(sigma) > 0:
        raise ValueError(f"spectral_residual_saliency: sigma must be > 0, got {sigma!r}")
    h, w = image.shape[:2]
    # Resizing and the grey weights are both linear, so the small grid is resized first (in float32).
    interpolation = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    small = image.astype(np.float32, copy=False)
    if small.ndim == 3 and small.shape[2] > 4:  # cv2.resize takes at most 4 channels at once
        small = np.stack(
            [cv2.resize(c, (size, size), interpolation=interpolation) for c in small.transpose(2, 0, 1)], -1
        )
    else:
        small = cv2.resize(small, (size, size), interpolation=interpolation)
    small = _grey(small.reshape(size, size, *image.shape[2:]))
    if not small.max() > small.min():
        return np.zeros((h, w), np.float32)
    spectrum = np.fft.fft2(small)
    amplitude = np.abs(spectrum)
    log_amplitude = np.log(np.maximum(amplitude, amplitude.max() * 1e-9))
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REPLICATE)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    k = 2 * math.ceil(3 * float(sigma)) + 1
    saliency = cv2.GaussianBlur(saliency, (k, k), float(sigma), borderType=cv2.BORDER_REFLECT_101)
    saliency -= saliency.min()
    top = saliency.max()
    if not top > 0:
        return np.zeros((h, w), np.float32)
    saliency /= top
    saliency = saliency.astype(np.float32)
    if (h, w) != (size, size):
        saliency = cv2.resize(saliency, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(saliency, 0.0, 1.0, out=saliency)  # bilinear weights may round past 1 by an ulp


def saliency_rect(saliency: np.ndarray, lam: float, rng: np.random.Generator) -> np.ndarray:
    """SaliencyMix's region: a rectangle of about ``1 - lam`` of the image around the saliency peak.

    The rectangle has ``round(H sqrt(1 - lam))`` rows and ``round(W sqrt(1 - lam))`` columns (the
    image's aspect, as :func:`augment.rect_region`), is centred on the peak (``top = py -
    rows // 2``) and shifted inside the image where it would cross a border, so its area does
    not depend on where the peak lies and it always holds the peak. The peak is a pixel of
    maximum saliency, drawn uniformly among ties (an all-zero map: any pixel). Uddin et al.'s
    code clips the rectangle at the border instead, which shrinks it near the edges; here the
    area is the drawn one and the mixers' ``lam`` is the exact pixel fraction either way.

    Args:
        saliency: (H, W) saliency map of the partner (the image the rectangle is taken from).
        lam: target fraction of the primary kept, in [0, 1].
        rng: random generator (one draw for the peak).

    Returns:
        (H, W) bool, True inside the rectangle.

    Raises:
        ValueError: a map that is not (H, W) with finite values, or ``lam`` outside [0, 1].

    Example:
        >>> s = np.zeros((8, 10)); s[1, 9] = 1.0
        >>> r = saliency_rect(s, 0.75, np.random.default_rng(0))
        >>> np.argwhere(r)[[0, -1]].tolist()
        [[0, 5], [3, 9]]
    """
    saliency = np.asarray(saliency)
    if saliency.ndim != 2 or saliency.size == 0 or not np.isfinite(saliency).all():
        raise ValueError(f"saliency_rect: saliency must be a finite (H, W) map, got shape {saliency.shape}")
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"saliency_rect: lam is the fraction of primary pixels kept and must lie in [0, 1], got {lam}")
    h, w = saliency.shape
    peaks = np.flatnonzero(saliency == saliency.max())
    py, px = divmod(int(peaks[rng.integers(len(peaks))]), w)
    side = math.sqrt(1.0 - float(lam))
    rows, cols = int(round(h * side)), int(round(w * side))
    top = min(max(py - rows // 2, 0), h - rows)
    left = min(max(px - cols // 2, 0), w - cols)
    region = np.zeros((h, w), dtype=bool)
    region[top : top + rows, left : left + cols] = True
    return region


def _edges(n: int, blocks: int) -> np.ndarray:
    """Block edges ``floor(i n / blocks)``, i = 0..blocks (every block at least one pixel when blocks <= n)."""
    return (np.arange(blocks + 1) * n) // blocks


def _block_means(saliency: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(len(ys) - 1, len(xs) - 1) float64 mean saliency of each block, scaled to sum 1 (all zero stays zero)."""
    sums = np.add.reduceat(np.add.reduceat(saliency.astype(np.float64), ys[:-1], axis=0), xs[:-1], axis=1)
    means = sums / np.outer(np.diff(ys), np.diff(xs))
    total = means.sum()
    return means / total if total > 0 else means


def block_region(
    primary_saliency: np.ndarray,
    partner_saliency: np.ndarray,
    grid: int | Sequence[int],
    lam: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """PuzzleMix's region, simplified: the ``k`` grid blocks where the partner is most salient relative to the primary.

    The image is cut into ``gy x gx`` blocks (``g`` per axis, at most the image's rows and
    columns; block edges at ``floor(i H / gy)``, ``floor(j W / gx)``). Each saliency map is
    averaged per block and the block means are scaled to sum 1 per image (PuzzleMix normalises
    its saliency the same way). The region is the ``k = round((1 - lam) gy gx)`` blocks with the
    largest ``s_partner - s_primary``, taken at the same position in both images (no transport).
    That choice maximises the saliency the mix shows, ``sum_(b in K) s_partner(b) +
    sum_(b not in K) s_primary(b)``, over every set of ``k`` blocks; ties (e.g. two all-zero
    maps) are broken by a random permutation from ``rng``.

    Args:
        primary_saliency: (H, W) saliency of the primary.
        partner_saliency: (H, W) saliency of the partner, same shape.
        grid: blocks per axis, ``>= 1``.
        lam: target fraction of the primary kept, in [0, 1].
        rng: random generator (one permutation).

    Returns:
        (H, W) bool, True on the partner's blocks.

    Raises:
        ValueError: maps of different or non-2-D shapes, non-finite values, ``grid < 1`` or
            ``lam`` outside [0, 1].

    Example:
        >>> a = np.zeros((4, 4)); b = np.zeros((4, 4)); b[2:, 2:] = 1.0
        >>> block_region(a, b, 2, 0.75, np.random.default_rng(0)).astype(int).tolist()
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    a, b = np.asarray(primary_saliency), np.asarray(partner_saliency)
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"block_region: the saliency maps must be (H, W) of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("block_region: the saliency maps hold NaN or inf")
    if isinstance(grid, bool) or int(grid) != grid or grid < 1:
        raise ValueError(
            f"block_region: grid is the number of blocks per axis and must be an integer >= 1, got {grid!r}"
        )
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"block_region: lam is the fraction of primary pixels kept and must lie in [0, 1], got {lam}")
    h, w = a.shape
    ys, xs = _edges(h, min(int(grid), h)), _edges(w, min(int(grid), w))
    gain = (_block_means(b, ys, xs) - _block_means(a, ys, xs)).ravel()
    k = int(round((1.0 - float(lam)) * gain.size))
    order = rng.permutation(gain.size)
    chosen = order[np.argsort(-gain[order], kind="stable")[:k]]
    blocks = np.zeros(gain.size, dtype=bool)
    blocks[chosen] = True
    blocks = blocks.reshape(len(ys) - 1, len(xs) - 1)
    return np.repeat(np.repeat(blocks, np.diff(ys), axis=0), np.diff(xs), axis=1)
