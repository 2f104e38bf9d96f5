"""Batch-level CutMix / MixUp on the device (``augment.batch_mix``), segmentation only.

The sample-level mixers of ``augment.mix`` run in the loader workers on numpy arrays; these run
in the training loop on the batch after it reached the device (``augment.batch``: no host sync,
every random number from a ``torch.Generator`` on the device). The generator of each epoch is
seeded from ``(seed, epoch, rank)``, so a resumed run (which restarts at an epoch boundary)
repeats the same mixes. CutMix keeps hard masks hard; MixUp turns the target into soft (B, C, H, W)
probabilities, which ``losses.ComboLoss`` takes directly.

Config (same spelling as ``augment.mix``)::

    augment:
      batch_mix:
        - CutMix: {p: 0.5, alpha: 1.0}
        - MixUp: {p: 0.2, alpha: 0.4}

Options: ``p``, ``alpha``, ``per_sample`` (default true), ``pairing`` (permutation | roll); MixUp
also ``primary_dominant``. The class count and ``ignore_index`` come from the data section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..config.steps import parse_step

__all__ = ["BATCH_MIXERS", "build_batch_mixers", "BatchMixing", "batch_mixing_for_epoch"]

BATCH_MIXERS = ("CutMix", "MixUp")


def build_batch_mixers(
    steps: list, *, num_classes: int, ignore_index: int, key: str = "augment.batch_mix"
) -> list[Callable]:
    """Mixers from ``[{Name: {options}}, ...]`` (names in :data:`BATCH_MIXERS`).

    Raises:
        ValueError / TypeError: an unknown name or option, named with its position in ``key``.

    Example:
        >>> build_batch_mixers([{"CutMix": {"p": 0.5}}], num_classes=4, ignore_index=255)
        [BatchCutMix(p=0.5, alpha=1.0, per_sample=True, pairing='permutation')]
    """
    from augment.batch import BatchCutMix, BatchMixUp

    if not isinstance(steps, list):
        raise TypeError(f"{key} must be a list of {{Name: {{options}}}}, got {type(steps).__name__}")
    mixers: list[Callable] = []
    for i, step in enumerate(steps):
        name, options = parse_step(step, f"{key}[{i}]", "{CutMix: {p: 0.5}}")
        if name not in BATCH_MIXERS:
            raise ValueError(f"{key}[{i}]: unknown batch mixer {name!r}; choose one of {', '.join(BATCH_MIXERS)}")
        try:
            if name == "CutMix":
                mixers.append(BatchCutMix(**options))
            else:
                mixers.append(BatchMixUp(num_classes=num_classes, ignore_index=ignore_index, **options))
        except TypeError as exc:
            raise ValueError(f"{key}[{i}].{name}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{key}[{i}].{name}: {exc}") from None
    return mixers


class BatchMixing:
    """Applies mixers in order to a segmentation batch already on the device.

    Args:
        mixers: from :func:`build_batch_mixers`.
        generator: ``torch.Generator`` on the batch's device.
        channels_last: keep the mixed image in the NHWC memory format.

    Example:
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
        images, target = batch["image"], batch["mask"]
        for mixer in self.mixers:
            out = mixer(images, target, generator=self.generator)
            images, target = out.images, out.target
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return {**batch, "image": images, "mask": target}


def batch_mixing_for_epoch(
    cfg: dict[str, Any], task: Any, device: torch.device, epoch: int, rank: int = 0
) -> BatchMixing | None:
    """The batch mixing of ``epoch`` (``None`` when ``augment.batch_mix`` is empty).

    Raises:
        ValueError: batch mixing configured for a task other than segmentation.
    """
    steps = cfg["augment"].get("batch_mix") or []
    if not steps:
        return None
    if getattr(task, "name", "") != "segmentation":
        raise ValueError(
            f"augment.batch_mix works on segmentation batches only (task is {task.name!r}); "
            "use augment.mix for detection, or set augment.batch_mix=[]"
        )
    mixers = build_batch_mixers(steps, num_classes=task.num_classes, ignore_index=cfg["data"]["ignore_index"])
    from ._runtime import epoch_seed

    seed = (epoch_seed(cfg["seed"], epoch) * 31 + 7 + 1_000_003 * rank) % (2**63)
    generator = torch.Generator(device=device).manual_seed(seed)
    return BatchMixing(mixers, generator, channels_last=cfg["train"]["channels_last"])
