"""MixUp: two samples blended, with soft semantic targets and weighted boxes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._sample import (
    check_count,
    check_rng,
    check_sources,
    concat_instances,
    is_label_channels,
    labelled,
    mix_label_vectors,
    soft_mask,
    take,
)

__all__ = ["MixUp", "mixup"]


def _blend_hard(
    a: np.ndarray, b: np.ndarray, lam: float, num_classes: int | None, ignore_index: int | None
) -> np.ndarray:
    """The soft-mask rule of :func:`mixup` for two hard masks, without one-hot intermediates."""
    if num_classes is None:
        raise ValueError(
            "MixUp: turning semantic masks into per-class probabilities needs num_classes; pass MixUp(num_classes=...)"
        )
    h, w = a.shape
    out = np.zeros((h * w, num_classes), dtype=np.float32)
    a, b = a.reshape(-1).astype(np.int64, copy=False), b.reshape(-1).astype(np.int64, copy=False)
    valid = [labelled(m, num_classes, ignore_index, f"MixUp source {k}") for k, m in enumerate((a, b))]
    both = valid[0] & valid[1]
    for m, ok, weight in ((a, valid[0], lam), (b, valid[1], 1.0 - lam)):
        pix = np.flatnonzero(ok)
        # pixels labelled in this source only take its label with weight 1
        out[pix, m[pix]] += np.where(both[pix], np.float32(weight), np.float32(1.0))
    return out.reshape(h, w, num_classes)


def _blend_masks(
    a: np.ndarray, b: np.ndarray, lam: float, num_classes: int | None, ignore_index: int | None
) -> np.ndarray:
    if is_label_channels(a) or is_label_channels(b):
        raise ValueError(
            "MixUp: integer (H, W, C) masks hold one 0/1 channel per class (multilabel), which MixUp does not "
            "blend into class probabilities; mix such masks with CutMix or Mosaic"
        )
    if a.ndim == 2 and b.ndim == 2:
        return _blend_hard(a, b, lam, num_classes, ignore_index)
    channels = a.shape[2] if a.ndim == 3 else b.shape[2]
    if num_classes is not None and channels != num_classes:
        raise ValueError(f"MixUp: a soft mask has {channels} channels but num_classes={num_classes}")
    a = soft_mask(a, channels, ignore_index, "MixUp source 0")
    b = soft_mask(b, channels, ignore_index, "MixUp source 1")
    valid_a = a.sum(-1, keepdims=True) > 0
    valid_b = b.sum(-1, keepdims=True) > 0
    both = np.float32(lam) * a + np.float32(1.0 - lam) * b
    return np.where(valid_a & valid_b, both, np.where(valid_a, a, b)).astype(np.float32)


def mixup(
    primary: dict, partner: dict, lam: float, *, num_classes: int | None = None, ignore_index: int | None = None
) -> dict:
    """Blends ``lam * primary + (1 - lam) * partner``.

    - ``image``: float32 on the input's 0..255 scale.
    - ``mask``: (H, W, C) float32 class probabilities (HWC so albumentations treats it as a
      multi-channel mask). A pixel labelled in both sources gets ``lam * onehot_a +
      (1 - lam) * onehot_b``; a pixel ``ignore_index`` in one source takes the other source's
      label with weight 1; a pixel ignored in both is the all-zero vector (losses treat an
      all-zero target as unlabelled). Soft input masks are blended the same way (all-zero
      vector = ignored).
    - ``bboxes``/``labels``/``masks``: both sets kept, the primary's first, with ``weights``
      ``lam`` and ``1 - lam`` (multiplied by any weights the sources already carry).
    - ``label_vector``: ``lam * a + (1 - lam) * b``.

    Args:
        primary: sample dict (see DESIGN.md).
        partner: sample dict of the same size and with the same target keys.
        lam: weight of the primary in [0, 1].
        num_classes: needed when both semantic masks are hard (H, W).
        ignore_index: unlabelled value of hard semantic masks.

    Returns:
        the mixed sample (inputs are not modified).

    Example:
        >>> a = {"image": np.zeros((1, 2, 3), np.uint8), "mask": np.array([[0, 255]])}
        >>> b = {"image": np.full((1, 2, 3), 100, np.uint8), "mask": np.array([[1, 1]])}
        >>> out = mixup(a, b, 0.75, num_classes=2, ignore_index=255)
        >>> out["image"][0, :, 0].tolist(), out["mask"].tolist()
        ([25.0, 25.0], [[[0.75, 0.25], [0.0, 1.0]]])
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"MixUp lam must lie in [0, 1], got {lam}")
    lam = float(lam)
    primary, partner = check_sources([primary, partner], 2, "MixUp")
    h, w = primary["image"].shape[:2]
    out = {k: v for k, v in primary.items() if k != "weights"}
    out["image"] = np.float32(lam) * primary["image"].astype(np.float32) + np.float32(1.0 - lam) * partner[
        "image"
    ].astype(np.float32)
    if "mask" in primary:
        out["mask"] = _blend_masks(primary["mask"], partner["mask"], lam, num_classes, ignore_index)
    if "bboxes" in primary:
        parts = []
        for src, weight in ((primary, lam), (partner, 1.0 - lam)):
            part = take(src, np.ones(len(src["bboxes"]), dtype=bool))
            part["weights"] = (part["weights"] * np.float32(weight)).astype(np.float32)
            parts.append(part)
        out.update(concat_instances(parts, True, h, w))
    if "label_vector" in primary:
        out["label_vector"] = mix_label_vectors(
            [primary["label_vector"], partner["label_vector"]], [lam, 1.0 - lam], "MixUp"
        )
    return out


class MixUp:
    """MixUp with ``lam ~ Beta(alpha, alpha)``; see :func:`mixup` for every target.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        alpha: Beta distribution parameter, > 0.
        primary_dominant: use ``max(lam, 1 - lam)`` so the primary always weighs most.
        num_classes: number of semantic classes; needed when samples carry hard masks.
        ignore_index: unlabelled value of hard semantic masks.

    Example:
        >>> a = {"image": np.zeros((4, 6, 3), np.uint8), "mask": np.zeros((4, 6), np.int64)}
        >>> out = MixUp(num_classes=3)([a, a], np.random.default_rng(0))
        >>> out["image"].dtype, out["mask"].shape
        (dtype('float32'), (4, 6, 3))
    """

    num_sources = 2

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 1.0,
        primary_dominant: bool = False,
        num_classes: int | None = None,
        ignore_index: int | None = None,
    ):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"MixUp p must lie in [0, 1], got {p}")
        if not float(alpha) > 0:
            raise ValueError(f"MixUp alpha must be > 0, got {alpha}")
        if num_classes is not None and int(num_classes) < 1:
            raise ValueError(f"MixUp num_classes must be >= 1, got {num_classes}")
        self.p = float(p)
        self.alpha = float(alpha)
        self.primary_dominant = bool(primary_dominant)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.ignore_index = ignore_index

    def mix(self, samples: Sequence[dict], rng: np.random.Generator) -> tuple[dict, float]:
        """Like ``__call__`` but also returns ``lam``."""
        check_count(samples, 2, "MixUp")
        check_rng(rng, "MixUp")
        lam = float(rng.beta(self.alpha, self.alpha))
        if self.primary_dominant:
            lam = max(lam, 1.0 - lam)
        return mixup(samples[0], samples[1], lam, num_classes=self.num_classes, ignore_index=self.ignore_index), lam

    def __call__(self, samples: Sequence[dict], rng: np.random.Generator) -> dict:
        """Mixes ``samples = [primary, partner]``; returns a new sample, inputs are untouched.

        Raises:
            TypeError: ``rng`` is not a ``numpy.random.Generator``.
            ValueError: not 2 samples, or samples outside the contract (see :mod:`augment.sample`).
        """
        return self.mix(samples, rng)[0]

    def __repr__(self) -> str:
        return (
            f"MixUp(p={self.p}, alpha={self.alpha}, primary_dominant={self.primary_dominant}, "
            f"num_classes={self.num_classes}, ignore_index={self.ignore_index})"
        )
