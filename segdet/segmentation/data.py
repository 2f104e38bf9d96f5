"""Datasets of a segmentation config: the sources, the pipelines and the mixers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import augment
from segdet.data.mixers import build_mixers
from segdet.data.sources import open_sources
from segdet.data.transforms import build_pipeline
from segdet.data.wrappers import TransformedDataset
from segdet.task import DataSpec


def build_segmentation_data(
    data_cfg: Mapping[str, Any], augment_cfg: Mapping[str, Any], seed: int = 0
) -> tuple[Any, Any, DataSpec]:
    """Training and validation datasets of a segmentation config and their :class:`DataSpec`.

    The training set is ``augment.MixDataset(source, mixers, pre=augment.train, post=augment.post,
    seed=seed)``: every source runs through ``augment.train``, then the mixers of
    ``augment.mix`` (``augment.MIXERS[name](**args)``, given ``num_classes`` and
    ``ignore_index`` when they take them), then ``augment.post``. The validation set is the
    validation source through ``augment.val``. Both have a ``classes`` attribute. Masks follow
    ``data.mode`` (:mod:`segdet.data.sources`): class indices, or in ``multilabel`` mode one 0/1
    channel per class, (H, W, K).

    Pipelines are box-aware (``bboxes``, ``labels``, ``weights`` and instance ``masks`` stay
    in step with the image), so previews show correct boxes; segmentation only reads ``mask``.

    Args:
        data_cfg: the ``data`` section of a validated config.
        augment_cfg: the ``augment`` section.
        seed: the run's seed (``seed`` of the config).

    Returns:
        ``(train_dataset, val_dataset, spec)``; ``spec.classes[0]`` is class index 0.

    Raises:
        ValueError: an unknown dataset kind, transform or mixer (with did-you-mean), a class
            list that does not fit the data, or any dataset error (missing files, bad masks).

    Example:
        >>> train, val, spec = build_segmentation_data(cfg["data"], cfg["augment"], cfg["seed"])  # doctest: +SKIP
        >>> spec.classes  # doctest: +SKIP
        ('background', 'circle', 'square', 'triangle')
    """
    aug = augment_cfg
    ignore = int(data_cfg["ignore_index"])
    sources = open_sources(data_cfg, target="mask")
    classes = sources.spec.classes
    train_pipe = build_pipeline(aug.get("train") or [], boxes=True, key="augment.train")
    post_pipe = build_pipeline(
        aug.get("post") or [], boxes=True, label_fields=("labels", "weights"), key="augment.post"
    )
    val_pipe = build_pipeline(aug.get("val") or [], boxes=True, key="augment.val")
    mixers = build_mixers(aug.get("mix") or [], num_classes=len(classes), ignore_index=ignore, mode=sources.spec.mode)

    train = augment.MixDataset(
        sources.train,
        mixers,
        pre=train_pipe if train_pipe.transforms else None,
        post=post_pipe if post_pipe.transforms else None,
        seed=int(seed),
    )
    val = TransformedDataset(sources.val, val_pipe, seed=int(seed))
    for ds in (sources.train, sources.val, train, val):
        ds.classes = classes
    return train, val, sources.spec
