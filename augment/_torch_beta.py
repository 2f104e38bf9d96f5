"""Beta(alpha, alpha) samples on any device from a ``torch.Generator``, without host sync (private).

``torch.distributions.Beta`` takes no generator, so runs are not reproducible with it. The ATen
sampler behind ``torch.distributions.Gamma`` (``torch._standard_gamma``) does take one; two
float64 Gamma draws give ``Beta = Ga / (Ga + Gb)`` in two kernels (few launches matter on the
device: this runs every training step). float64 keeps tiny ``alpha`` from underflowing: the
sampler clamps at the smallest normal number, which a Gamma(0.05) draw falls below with
probability about 1e-15.
"""

from __future__ import annotations

import torch


def sample_beta(
    shape: tuple[int, ...],
    alpha: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``Beta(alpha, alpha)`` samples of ``shape`` and ``dtype`` on ``device``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> lam = sample_beta((4,), 1.0, g)
        >>> lam.shape, bool(((lam >= 0) & (lam <= 1)).all())
        (torch.Size([4]), True)
    """
    concentration = torch.full((2,) + tuple(shape), float(alpha), dtype=torch.float64, device=device)
    gammas = torch._standard_gamma(concentration, generator=generator)
    return (gammas[0] / (gammas[0] + gammas[1])).to(dtype)
