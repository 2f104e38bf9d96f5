"""Batch-level CutMix / MixUp on the device (``augment.batch_mix``), for tasks whose batches allow it.

The sample-level mixers of ``augment.mix`` run in the loader workers on numpy arrays; these run
in the training loop on the batch after it reached the device (``augment.batch``: no host sync,
every random number from a ``torch.Generator`` on the device). The generator of each epoch is
seeded from ``(seed, epoch, rank)``, and a checkpoint written inside an epoch saves its state
(``position["batch_mix_rng"]``), so a resumed run repeats the same mixes from the same batch on.
CutMix keeps hard masks hard; MixUp turns the target into soft (B, C, H, W)
probabilities, which ``losses.ComboLoss`` takes directly.

Config (same spelling as ``augment.mix``; names and options in :func:`segdet.data.mixers.build_batch_mixers`)::

    augment:
      batch_mix:
        - CutMix: {p: 0.5, alpha: 1.0}
        - MixUp: {p: 0.2, alpha: 0.4}

Options: ``p``, ``alpha``, ``per_sample`` (default true), ``pairing`` (permutation | roll); MixUp
also ``primary_dominant``. The class count comes from the data, ``ignore_index`` from ``data``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from segdet.data.mixers import build_batch_mixers
from segdet.task import Task

from ._runtime import epoch_seed

__all__ = ["BatchMixing", "BatchMixSchedule"]


class BatchMixing:
    """Applies mixers in order to a batch (``image`` and ``mask``) already on the device.

    Args:
        mixers: from :func:`~segdet.data.mixers.build_batch_mixers`.
        generator: ``torch.Generator`` on the batch's device.
        channels_last: keep the mixed image in the NHWC memory format.

    Example:
        >>> from segdet.data.mixers import build_batch_mixers
        >>> mix = BatchMixing(build_batch_mixers([{"MixUp": {"p": 1.0}}], num_classes=3, ignore_index=255),
        ...                   torch.Generator().manual_seed(0))
        >>> out = mix({"image": torch.rand(2, 3, 8, 8), "mask": torch.zeros(2, 8, 8, dtype=torch.long)})
        >>> out["mask"].shape                 # soft (B, C, H, W) targets
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, mixers: list[Callable], generator: torch.Generator, channels_last: bool = False) -> None:
        self.mixers = list(mixers)
        self.generator = generator
        self.channels_last = channels_last

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch with ``image`` and ``mask`` mixed; other keys are passed through."""
        images, target = batch["image"], batch["mask"]
        for mixer in self.mixers:
            out = mixer(images, target, generator=self.generator)
            images, target = out.images, out.target
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return {**batch, "image": images, "mask": target}


class BatchMixSchedule:
    """The ``augment.batch_mix`` of a run: mixers built and checked once, a seeded :class:`BatchMixing` per epoch.

    Args:
        steps: the ``augment.batch_mix`` list (empty: no batch mixing).
        task: the run's task; its batches must allow mixing (``task.batch_mixable``).
        num_classes: classes of the data (MixUp's soft targets have this many channels).
        ignore_index: ``data.ignore_index``.
        seed: the run's seed.
        channels_last: ``train.channels_last``.
        mode: the data's segmentation mode (``DataSpec.mode``); multilabel refuses MixUp.

    Raises:
        ValueError: batch mixing configured for a task whose batches it cannot mix, or a bad step
            (unknown name or option, named with its position in ``augment.batch_mix``).
    """

    def __init__(
        self,
        steps: Sequence[Any],
        task: Task,
        *,
        num_classes: int,
        ignore_index: int,
        seed: int,
        channels_last: bool = False,
        mode: str = "multiclass",
    ) -> None:
        steps = list(steps or [])
        if steps and not task.batch_mixable:
            raise ValueError(
                f"augment.batch_mix works on segmentation batches only (task is {task.name!r}); "
                "use augment.mix for detection, or set augment.batch_mix=[]"
            )
        self.mixers = (
            build_batch_mixers(steps, num_classes=num_classes, ignore_index=ignore_index, mode=mode) if steps else []
        )
        self.seed = int(seed)
        self.channels_last = bool(channels_last)

    def for_epoch(self, epoch: int, device: torch.device, rank: int = 0) -> BatchMixing | None:
        """The batch mixing of ``epoch`` on this rank (``None`` without mixers)."""
        if not self.mixers:
            return None
        seed = (epoch_seed(self.seed, epoch) * 31 + 7 + 1_000_003 * rank) % (2**63)
        generator = torch.Generator(device=device).manual_seed(seed)
        return BatchMixing(self.mixers, generator, channels_last=self.channels_last)
