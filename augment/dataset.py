"""MixDataset: a dataset wrapper that runs a pipeline on every source and then the mixers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .sample import _is_albumentations, call_albumentations, normalise_sample

__all__ = ["MixDataset"]


def apply_transform(transform: Callable | None, sample: dict, rng: np.random.Generator) -> dict:
    """Runs ``transform`` on ``sample`` with randomness drawn from ``rng``.

    An albumentations transform/Compose is seeded from ``rng`` (its numpy and Python generators
    are replaced) and run by :func:`augment.call_albumentations`, which keeps the per-box
    arrays on one keep-index; any other callable is called as ``transform(sample)``. ``None``
    returns a copy. The result is normalised by :func:`augment.normalise_sample`.

    Args:
        transform: ``A.Compose``, another albumentations transform, a callable
            ``sample -> sample`` or ``None``.
        sample: dict following the sample contract; it is not modified.
        rng: generator the albumentations transform is seeded from (two draws).

    Returns:
        The transformed, normalised sample.

    Raises:
        TypeError: a callable returned something other than a dict.
        ValueError: see :func:`augment.call_albumentations`.
    """
    if transform is None:
        return normalise_sample(sample)  # a copy: the caller may edit it without touching the dataset
    if _is_albumentations(transform):
        seeds = rng.integers(0, 2**63, size=2)
        if hasattr(transform, "set_random_state"):
            transform.set_random_state(np.random.default_rng(int(seeds[0])), random.Random(int(seeds[1])))
        return call_albumentations(transform, sample)
    out = transform(sample)
    if not isinstance(out, dict):
        raise TypeError(f"transform {transform!r} returned {type(out).__name__}; it must return the sample dict")
    return normalise_sample(out)


class MixDataset:
    """Wraps an indexable dataset of sample dicts with a pipeline and a chain of mixers.

    For item ``i``: a generator is derived from ``(seed, epoch, i)``; sample ``i`` is read and
    ``pre`` runs on it; then for each mixer in order a uniform draw decides whether it fires
    (probability ``mixer.p``), and if so ``mixer.num_sources - 1`` partners are drawn uniformly
    from the same dataset, each run through ``pre``, and the mixer is applied to
    ``[current, *partners]``; finally ``post`` runs. The result depends only on
    ``(seed, epoch, i)``, never on the worker that computes it; call :meth:`set_epoch` each
    epoch so epochs differ.

    Args:
        dataset: anything with ``len()`` and ``__getitem__`` returning sample dicts.
        mixers: a list of mixers (objects with ``p``, ``num_sources`` and ``__call__(samples,
            rng)``); a single mixer or a mixer class is a ``TypeError`` that says to wrap it.
        pre: transform run on every source before mixing (``A.Compose`` or callable).
        post: transform run on the mixed sample.
        seed: base seed.

    Example:
        >>> from augment import CutMix
        >>> data = [{"image": np.full((8, 12, 3), v, np.uint8)} for v in range(4)]
        >>> ds = MixDataset(data, [CutMix(p=1.0)], seed=1)
        >>> ds[0]["image"].shape, len(ds)
        ((8, 12, 3), 4)
    """

    def __init__(
        self,
        dataset: Any,
        mixers: Sequence[Any] = (),
        pre: Callable | None = None,
        post: Callable | None = None,
        seed: int = 0,
    ):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"MixDataset needs an indexable dataset (len + getitem), got {type(dataset).__name__}")
        mixers = _mixer_list(mixers)
        for k, m in enumerate(mixers):
            if not callable(m) or not hasattr(m, "p") or not hasattr(m, "num_sources"):
                raise TypeError(
                    f"mixers[{k}] = {m!r} is not a mixer: it needs attributes p and "
                    "num_sources and __call__(samples, rng)"
                )
            if int(m.num_sources) < 1:
                raise ValueError(f"mixers[{k}] has num_sources={m.num_sources}; it must be >= 1")
        for name, t in (("pre", pre), ("post", post)):
            if t is not None and not callable(t):
                raise TypeError(f"MixDataset {name} must be callable or None, got {type(t).__name__}")
        self.dataset = dataset
        self.mixers = mixers
        self.pre = pre
        self.post = post
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch, so the same index gives a different mix in each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _source(self, index: int, rng: np.random.Generator) -> dict:
        sample = self.dataset[index]
        if not isinstance(sample, dict):
            raise TypeError(
                f"dataset[{index}] is a {type(sample).__name__}; MixDataset needs sample dicts with an 'image' key"
            )
        return apply_transform(self.pre, sample, rng)

    def __getitem__(self, index: int) -> dict:
        n = len(self.dataset)
        if not -n <= int(index) < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        index = int(index) % n
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self._source(index, rng)
        for mixer in self.mixers:
            if rng.random() >= mixer.p:
                continue
            partners = [self._source(int(rng.integers(n)), rng) for _ in range(int(mixer.num_sources) - 1)]
            sample = mixer([sample, *partners], rng)
        return apply_transform(self.post, sample, rng)


def _mixer_list(mixers: Any) -> list:
    """``mixers`` as a list; one mixer, a mixer class or a non-sequence is a ``TypeError`` saying what to pass."""
    if isinstance(mixers, type):
        raise TypeError(
            f"MixDataset mixers must be a list of mixer instances, got the class {mixers.__name__}; "
            f"pass [{mixers.__name__}(...)]"
        )
    if callable(mixers) and hasattr(mixers, "num_sources"):
        name = type(mixers).__name__
        raise TypeError(f"MixDataset mixers must be a list of mixers, got one {name}; wrap it: [{name}(...)]")
    if isinstance(mixers, (str, bytes, dict)) or not hasattr(mixers, "__iter__"):
        raise TypeError(f"MixDataset mixers must be a list of mixers, got {type(mixers).__name__} {mixers!r}")
    return list(mixers)
