"""Region shapes for CutMix: an axis-aligned rectangle or a low-frequency (FMix) blob.

A region is an ``(H, W)`` bool array, True where the pixel is taken from the partner.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rect_region", "fmix_region"]


def _check(height: int, width: int, lam: float) -> None:
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"region size must be positive, got height={height}, width={width}")
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam is the fraction of primary pixels kept and must lie in [0, 1], got {lam}")


def rect_region(height: int, width: int, lam: float, rng: np.random.Generator) -> np.ndarray:
    """A rectangle covering about ``1 - lam`` of a ``height x width`` image.

    The rectangle has the image's aspect ratio, ``round(height * sqrt(1 - lam))`` rows by
    ``round(width * sqrt(1 - lam))`` columns, and its top-left corner is uniform over every
    position where it fits entirely. Nothing is clipped, so its area does not depend on where
    it lands (a centre drawn uniformly and then clipped shrinks patches near the borders).

    Args:
        height: image rows.
        width: image columns.
        lam: target fraction of the primary kept, in ``[0, 1]``.
        rng: random generator.

    Returns:
        ``(height, width)`` bool, True inside the rectangle.

    Example:
        >>> r = rect_region(30, 40, 0.75, np.random.default_rng(0))
        >>> r.shape, int(r.sum())
        ((30, 40), 300)
    """
    _check(height, width, lam)
    side = np.sqrt(1.0 - float(lam))
    cut_h = int(round(height * side))
    cut_w = int(round(width * side))
    top = int(rng.integers(0, height - cut_h + 1))
    left = int(rng.integers(0, width - cut_w + 1))
    region = np.zeros((height, width), dtype=bool)
    region[top : top + cut_h, left : left + cut_w] = True
    return region


def fmix_region(height: int, width: int, lam: float, rng: np.random.Generator, decay_power: float = 3.0) -> np.ndarray:
    """A low-frequency blob covering ``round((1 - lam) * H * W)`` pixels exactly (FMix).

    Complex Gaussian noise in the Fourier domain is scaled by ``1 / f ** decay_power`` (``f``
    the frequency in cycles per pixel, floored at ``1 / max(H, W)``), transformed back, and
    the ``round((1 - lam) * H * W)`` pixels with the largest values form the region.

    Args:
        height: image rows.
        width: image columns.
        lam: target fraction of the primary kept, in ``[0, 1]``.
        rng: random generator.
        decay_power: larger gives smoother, blobbier regions.

    Returns:
        ``(height, width)`` bool.

    Example:
        >>> r = fmix_region(30, 40, 0.75, np.random.default_rng(0))
        >>> int(r.sum())
        300
    """
    _check(height, width, lam)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.maximum(np.sqrt(fy**2 + fx**2), 1.0 / max(height, width))
    scale = 1.0 / freq ** float(decay_power)
    shape = (height, width // 2 + 1)
    spectrum = scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    field = np.fft.irfft2(spectrum, s=(height, width)).ravel()
    count = int(round((1.0 - float(lam)) * height * width))
    region = np.zeros(height * width, dtype=bool)
    if count >= height * width:
        region[:] = True
    elif count > 0:
        region[np.argpartition(-field, count - 1)[:count]] = True
    return region.reshape(height, width)
