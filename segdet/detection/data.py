"""Datasets of a detection config: the sources, the pipelines, the mixers and their schedule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from torch.utils.data import Dataset

import augment
from augment.sample import normalise_sample
from segdet.data.mixers import build_mixers
from segdet.data.sources import open_sources
from segdet.data.synthetic import boxes_from_masks
from segdet.data.transforms import build_pipeline
from segdet.task import DataSpec

__all__ = ["build_detection_data"]


def build_detection_data(
    data_cfg: Mapping[str, Any],
    augment_cfg: Mapping[str, Any],
    *,
    seed: int,
    epochs: int,
    instance_masks: bool,
) -> tuple[Dataset, Dataset, DataSpec]:
    """Training and validation datasets of a detection config and their :class:`DataSpec`.

    Every source sample is reduced to the detection contract (``image``, ``bboxes``, ``labels``,
    ``image_id`` and, with ``instance_masks``, ``masks``); the training set runs
    ``augment.train``, the mixers of ``augment.mix`` (off for the last
    ``augment.mix_off_last_epochs`` of ``epochs``) and ``augment.post``; the validation set runs
    ``augment.val``. Pipelines keep ``labels`` and MixUp's ``weights`` in step with the boxes.
    With instance masks, each box is made tight to its mask after the pipelines (a crop clips a
    round object's box to the crop, not to what stays visible of it), and an instance whose
    mask a crop emptied is dropped with its box.

    Args:
        data_cfg: the ``data`` section of a validated config.
        augment_cfg: the ``augment`` section.
        seed: the run's seed.
        epochs: ``train.epochs`` (the mixing schedule counts back from it).
        instance_masks: read and keep one instance mask per box (Mask R-CNN, CopyPaste).

    Returns:
        ``(train_dataset, val_dataset, spec)``: the training set has ``set_epoch(epoch)``, and
        its ``source`` and ``train_pipeline`` (the ``augment.train`` pipeline) for the anchor
        check (:mod:`segdet.detection.anchors`).

    Raises:
        ValueError: a bad dataset, transform or mixer, each naming the key or file; a split
            without a single box (no annotations, or every box dropped): training would learn
            background only, and a validation set without ground truth scores every COCO metric
            -1 and would pick ``best.pt`` on nothing.
    """
    sources = open_sources(data_cfg, target="boxes", instance_masks=instance_masks)
    _check_has_boxes(sources.train, data_cfg, "train")
    _check_has_boxes(sources.val, data_cfg, "val")
    fields = ("labels", "weights")

    def pipeline(key: str) -> Any:  # None for an empty list: nothing to run
        steps = augment_cfg[key]
        return build_pipeline(steps, boxes=True, label_fields=fields, key=f"augment.{key}") if steps else None

    mixers = build_mixers(
        augment_cfg["mix"], num_classes=sources.spec.num_classes, ignore_index=data_cfg["ignore_index"]
    )
    train = augment.MixDataset(
        _DetectionSource(sources.train, instance_masks), mixers, pre=pipeline("train"), post=pipeline("post"), seed=seed
    )
    val = augment.MixDataset(_DetectionSource(sources.val, instance_masks), [], pre=pipeline("val"), seed=seed)
    schedule = _MixSchedule(train, epochs - augment_cfg["mix_off_last_epochs"], sources.train, pipeline("train"))
    return schedule, (_TightBoxes(val) if instance_masks else val), sources.spec


#: the config key naming each split's annotations, per data.kind (synthetic data always has boxes)
_SPLIT_KEYS = {
    "coco": {"train": "data.coco.train_json", "val": "data.coco.val_json"},
    "voc": {"train": "data.voc.train", "val": "data.voc.val"},
    "yolo": {"train": "data.yolo.train", "val": "data.yolo.val"},
}


def _check_has_boxes(source: Any, data_cfg: Mapping[str, Any], split: str) -> None:
    """Stop when a split's source holds no box at all (sources that count them: ``num_boxes``)."""
    if getattr(source, "num_boxes", None) != 0:
        return
    kind = data_cfg["kind"]
    key = _SPLIT_KEYS.get(kind, {}).get(split, f"data.{kind}")
    where = data_cfg.get(kind, {}).get(key.rsplit(".", 1)[-1], "")
    why = (
        "training would learn the background only"
        if split == "train"
        else "every COCO metric would be -1 and best.pt would be picked on nothing"
    )
    raise ValueError(
        f"the {split} set {key} = {where} holds no box in its {len(source)} images (no annotations, or every box "
        f"dropped): {why}; point {key} at annotated data"
    )


class _DetectionSource:
    """A dataset's samples reduced to the detection contract, each with its ``image_id``."""

    def __init__(self, dataset: Any, keep_masks: bool) -> None:
        self.dataset = dataset
        self.keep_masks = keep_masks
        self.image_ids = getattr(dataset, "image_ids", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = dict(self.dataset[index])
        s.pop("mask", None)
        if not self.keep_masks:
            s.pop("masks", None)
        s.setdefault("bboxes", np.zeros((0, 4), np.float32))
        s.setdefault("labels", np.zeros(0, np.int64))
        s = normalise_sample(s)
        if "image_id" not in s:
            s["image_id"] = int(self.image_ids[index]) if self.image_ids is not None else int(index)
        return s


class _MixSchedule(Dataset):
    """A :class:`augment.MixDataset` whose mixers are off from epoch ``off_from`` (0-based) on.

    ``source`` is the dataset before any pipeline and ``train_pipeline`` the pipeline run on it
    before mixing (``None`` for none): what the anchor check reads the training boxes through.
    """

    def __init__(self, mix: Any, off_from: int, source: Any = None, train_pipeline: Any = None) -> None:
        self.mix = mix
        self.mixers = list(mix.mixers)
        self.off_from = off_from
        self.source = source
        self.train_pipeline = train_pipeline

    def set_epoch(self, epoch: int) -> None:
        self.mix.set_epoch(epoch)
        self.mix.mixers = [] if epoch >= self.off_from else list(self.mixers)

    def __len__(self) -> int:
        return len(self.mix)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return tight_boxes(self.mix[index])


class _TightBoxes:
    """``dataset[i]`` with :func:`tight_boxes` applied."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return tight_boxes(self.dataset[index])


def tight_boxes(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample with each box the tight box of its instance mask; empty masks dropped with their box.

    A sample without ``masks`` is returned as it is.
    """
    masks = sample.get("masks")
    if masks is None or len(masks) == 0:
        return sample
    keep = masks.reshape(len(masks), -1).any(axis=1)
    out = dict(sample)
    for key in ("masks", "labels", "weights"):
        if key in out:
            out[key] = np.asarray(out[key])[keep]
    out["bboxes"] = boxes_from_masks(masks[keep])
    return out
