"""CopyPaste: instances of a partner pasted onto the primary by their instance masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._paste import paste
from ._sample import check_count, check_rng, check_sources
from .cutmix import _check_filter

__all__ = ["CopyPaste", "copy_paste"]


def copy_paste(
    primary: dict,
    partner: dict,
    instances: np.ndarray,
    *,
    min_visibility: float = 0.0,
    min_area: float = 0.0,
    num_classes: int | None = None,
    ignore_index: int | None = None,
) -> dict:
    """Pastes the chosen partner instances (by instance mask) onto the primary.

    The pasted pixels (the union of the chosen instance masks) take the partner's image and
    semantic mask. The primary's instances lose the pixels pasted over them: their masks are
    cut, their boxes become the bounding box of what remains visible, and an instance is dropped
    when it vanishes or falls under ``min_visibility`` (of its mask pixels before pasting) or
    ``min_area`` (visible pixels). The pasted instances follow with boxes tight to their masks.
    Both samples need ``masks``.

    Args:
        primary: sample dict with ``bboxes``, ``labels`` and ``masks``.
        partner: sample dict of the same size and with the same target keys.
        instances: (N_partner,) bool, which partner instances to paste.
        min_visibility: fraction in [0, 1].
        min_area: pixels.
        num_classes: checked against soft masks; needed only to one-hot a hard mask.
        ignore_index: unlabelled value of hard semantic masks.

    Returns:
        the mixed sample (inputs are not modified).

    Example:
        >>> a = {"image": np.zeros((3, 3, 3), np.uint8), "bboxes": [[0, 0, 3, 3]], "labels": [1],
        ...      "masks": np.ones((1, 3, 3), np.uint8)}
        >>> b = {"image": np.ones((3, 3, 3), np.uint8), "bboxes": [[2, 0, 3, 3]], "labels": [2],
        ...      "masks": np.pad(np.ones((1, 3, 1), np.uint8), ((0, 0), (0, 0), (2, 0)))}
        >>> out = copy_paste(a, b, np.array([True]))
        >>> out["bboxes"].tolist(), out["labels"].tolist()
        ([[0.0, 0.0, 2.0, 3.0], [2.0, 0.0, 3.0, 3.0]], [1, 2])
    """
    _check_filter("CopyPaste", min_visibility, min_area)
    primary, partner = check_sources([primary, partner], 2, "CopyPaste")
    if "masks" not in primary:
        raise ValueError(
            "CopyPaste pastes by instance mask: give the samples a 'masks' key (K, H, W), one mask per box"
        )
    instances = np.asarray(instances, dtype=bool).reshape(-1)
    if len(instances) != len(partner["masks"]):
        raise ValueError(
            f"CopyPaste: instances has {len(instances)} entries but the partner has {len(partner['masks'])} instances"
        )
    chosen = partner["masks"][instances]
    region = (chosen != 0).any(0) if len(chosen) else np.zeros(primary["image"].shape[:2], bool)
    out, _ = paste(
        primary,
        partner,
        region,
        min_visibility=min_visibility,
        min_area=min_area,
        num_classes=num_classes,
        ignore_index=ignore_index,
        name="CopyPaste",
        partner_instances=instances,
    )
    return out


class CopyPaste:
    """Simple Copy-Paste: a random subset of a partner's instances pasted onto the primary.

    Each call pastes ``k`` instances chosen uniformly among the partner's non-empty instance
    masks, ``k`` uniform in ``[1, min(available, max_instances)]``. See :func:`copy_paste`.

    Args:
        p: probability that :class:`augment.MixDataset` applies it (a call always mixes).
        max_instances: cap on pasted instances per call (``None``: no cap).
        min_visibility: keep an occluded instance when this fraction of its mask stays visible.
        min_area: keep an occluded instance when this many pixels stay visible.
        num_classes: number of semantic classes (checked against soft masks).
        ignore_index: unlabelled value of hard semantic masks.
    """

    num_sources = 2

    def __init__(
        self,
        p: float = 0.5,
        max_instances: int | None = None,
        min_visibility: float = 0.0,
        min_area: float = 0.0,
        num_classes: int | None = None,
        ignore_index: int | None = None,
    ):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"CopyPaste p must lie in [0, 1], got {p}")
        if max_instances is not None and int(max_instances) < 1:
            raise ValueError(f"CopyPaste max_instances must be >= 1 or None, got {max_instances}")
        _check_filter("CopyPaste", min_visibility, min_area)
        self.p = float(p)
        self.max_instances = None if max_instances is None else int(max_instances)
        self.min_visibility = float(min_visibility)
        self.min_area = float(min_area)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def __call__(self, samples: Sequence[dict], rng: np.random.Generator) -> dict:
        """Mixes ``samples = [primary, partner]``; returns a new sample, inputs are untouched.

        Raises:
            TypeError: ``rng`` is not a ``numpy.random.Generator``.
            ValueError: not 2 samples, or samples outside the contract (see :mod:`augment.sample`).
        """
        check_count(samples, 2, "CopyPaste")
        check_rng(rng, "CopyPaste")
        partner = samples[1]
        masks = np.asarray(partner.get("masks", np.zeros((0, 1, 1)))) if isinstance(partner, dict) else None
        if masks is None or masks.ndim != 3:
            instances = np.zeros(0, dtype=bool)  # copy_paste reports the problem
        else:
            instances = np.zeros(len(masks), dtype=bool)
            available = np.flatnonzero((masks != 0).any(axis=(1, 2)))
            if len(available):
                cap = len(available) if self.max_instances is None else min(len(available), self.max_instances)
                k = int(rng.integers(1, cap + 1))
                instances[rng.choice(available, size=k, replace=False)] = True
        return copy_paste(
            samples[0],
            partner,
            instances,
            min_visibility=self.min_visibility,
            min_area=self.min_area,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
        )

    def __repr__(self) -> str:
        return (
            f"CopyPaste(p={self.p}, max_instances={self.max_instances}, "
            f"min_visibility={self.min_visibility}, min_area={self.min_area})"
        )
