"""Datasets of a segmentation config: the dataset kind, the pipelines and the mixers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segdet._suggest import did_you_mean
from segdet.data.coco import CocoDataset
from segdet.data.folder import FolderSegmentation
from segdet.data.mixers import build_mixers
from segdet.data.synthetic import SyntheticShapes
from segdet.data.transforms import build_pipeline
from segdet.data.wrappers import TransformedDataset


def build_segmentation_data(cfg: Mapping[str, Any]) -> tuple[Any, Any, tuple[str, ...]]:
    """Training and validation datasets and the class names of a validated config.

    The training set is ``augment.MixDataset(base, mixers, pre=augment.train, post=augment.post,
    seed=cfg["seed"])``: every source runs through ``augment.train``, then the mixers of
    ``augment.mix`` (``augment.MIXERS[name](**args)``, given ``num_classes`` and
    ``ignore_index`` when they take them), then ``augment.post``. The validation set is the base
    dataset of the validation split through ``augment.val``. Both have a ``classes`` attribute.

    Pipelines are box-aware (``bboxes``, ``labels``, ``weights`` and instance ``masks`` stay
    in step with the image), so previews show correct boxes; segmentation only reads ``mask``.

    Args:
        cfg: the validated config dict (``data``, ``augment``, ``seed``).

    Returns:
        ``(train_dataset, val_dataset, classes)``; ``classes[0]`` is class index 0.

    Raises:
        ValueError: an unknown dataset kind, transform or mixer (with did-you-mean), a class
            list that does not fit the data, or any dataset error (missing files, bad masks).

    Example:
        >>> train, val, classes = build_segmentation_data(cfg)  # doctest: +SKIP
        >>> classes
        ('background', 'circle', 'square', 'triangle')
    """
    data, aug = cfg["data"], cfg["augment"]
    ignore = int(data["ignore_index"])
    train_base, val_base, classes = _base_datasets(data, ignore)
    train_pipe = build_pipeline(aug.get("train") or [], boxes=True, key="augment.train")
    post_pipe = build_pipeline(
        aug.get("post") or [], boxes=True, label_fields=("labels", "weights"), key="augment.post"
    )
    val_pipe = build_pipeline(aug.get("val") or [], boxes=True, key="augment.val")
    mixers = build_mixers(aug.get("mix") or [], num_classes=len(classes), ignore_index=ignore)

    import augment

    train = augment.MixDataset(
        train_base,
        mixers,
        pre=train_pipe if train_pipe.transforms else None,
        post=post_pipe if post_pipe.transforms else None,
        seed=int(cfg.get("seed", 0)),
    )
    val = TransformedDataset(val_base, val_pipe, seed=int(cfg.get("seed", 0)))
    for ds in (train_base, val_base, train, val):
        ds.classes = classes
    return train, val, classes


def _base_datasets(data: Mapping[str, Any], ignore: int):
    kind = data["kind"]
    names = data.get("classes")
    if kind == "synthetic":
        s = data["synthetic"]
        common = {"height": s["height"], "width": s["width"], "seed": s["seed"]}
        train = SyntheticShapes(s["train_size"], split="train", **common)
        val = SyntheticShapes(s["val_size"], split="val", **common)
        return train, val, _named(names, SyntheticShapes.CLASSES, "synthetic data")
    if kind == "folder":
        f = data["folder"]
        train = FolderSegmentation(f["train"], classes=names, mask_values=f.get("mask_values"), ignore_index=ignore)
        val = FolderSegmentation(f["val"], classes=train.classes, mask_values=f.get("mask_values"), ignore_index=ignore)
        return train, val, tuple(train.classes)
    if kind == "coco":
        c = data["coco"]
        train = CocoDataset(c["train_json"], c["train_images"], with_mask=True, ignore_index=ignore)
        val = CocoDataset(c["val_json"], c["val_images"], with_mask=True, ignore_index=ignore)
        if val.cat_ids != train.cat_ids:
            raise ValueError(
                f"data.coco: {c['val_json']} has category ids {val.cat_ids} but {c['train_json']} has "
                f"{train.cat_ids}; both splits must list the same categories"
            )
        return train, val, _named(names, train.seg_classes, f"{c['train_json']} (background + categories)")
    raise ValueError(
        f"data.kind {kind!r} is not a segmentation dataset kind{did_you_mean(str(kind), ('synthetic', 'folder', 'coco'))}; "
        f"use synthetic, folder or coco (voc and yolo are detection only)"
    )


def _named(names, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    if names is None:
        return tuple(default)
    if len(names) != len(default):
        raise ValueError(
            f"data.classes has {len(names)} names but {what} has {len(default)} classes "
            f"{list(default)}; list {len(default)} names or set data.classes: null"
        )
    return tuple(str(n) for n in names)
