"""The dataset sources of a config's ``data`` section: one kind switch for every task.

A task asks for its training and validation sources by what it reads from them: semantic masks
(``target="mask"``: synthetic, folder, coco) or boxes (``target="boxes"``: synthetic, folder
(``instances/`` id PNGs), coco, voc, yolo; with ``instance_masks`` for Mask R-CNN and CopyPaste:
every kind but voc, whose xml holds boxes only, and yolo folders of polygon labels). :func:`open_sources` builds both
splits, checks that COCO splits share their categories, that ``data.classes`` fits the data and
that ``data.ignore_index`` is no class index, stops on a COCO segmentation training file without
annotations (an empty validation file only warns: all-background images are a plausible test
set; detection checks the boxes of both splits, :mod:`segdet.detection.data`), and returns the
class names (and COCO category ids) as a :class:`~segdet.task.DataSpec`.

Semantic masks follow ``data.mode``: ``multiclass`` and ``binary`` read one class index per pixel
(binary: two classes, values 0, 1 and ``ignore_index``; synthetic data merges its shapes into one
foreground class), ``multilabel`` one 0/1 channel per class, (H, W, K) (folder:
``masks/<class>/<stem>.png``; COCO: one channel per category; synthetic data has none).

Example:
    >>> sources = open_sources(cfg["data"], target="mask")  # doctest: +SKIP
    >>> sources.spec.classes  # doctest: +SKIP
    ('background', 'circle', 'square', 'triangle')
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from segdet._suggest import did_you_mean
from segdet.data.coco import CocoDataset
from segdet.data.folder import FolderSegmentation
from segdet.data.folder_instances import FolderInstances
from segdet.data.folder_multilabel import FolderMultilabel
from segdet.data.synthetic import SyntheticShapes
from segdet.data.voc import VocDataset
from segdet.data.wrappers import ForegroundMask
from segdet.data.yolo import YoloDataset
from segdet.task import DataSpec

__all__ = ["KINDS", "Sources", "open_sources"]

#: dataset kinds by what the task reads from them
KINDS: dict[str, tuple[str, ...]] = {
    "mask": ("synthetic", "folder", "coco"),
    "boxes": ("synthetic", "folder", "coco", "voc", "yolo"),
}
#: the kinds whose boxes come without instance masks
_BOXES_ONLY = ("voc",)
_TASK_OF = {"mask": "segmentation", "boxes": "detection"}


@dataclass(frozen=True)
class Sources:
    """The two splits of a dataset, before any pipeline, and what they tell the model."""

    train: Any
    val: Any
    spec: DataSpec


def open_sources(data_cfg: Mapping[str, Any], *, target: str, instance_masks: bool = False) -> Sources:
    """Training and validation sources of ``data_cfg["kind"]``.

    Args:
        data_cfg: the ``data`` section of a validated config (``kind``, ``classes``,
            ``ignore_index`` and the kind's own section).
        target: ``"mask"`` (semantic masks; class 0 is the background) or ``"boxes"`` (boxes
            with 0-based labels).
        instance_masks: with ``target="boxes"``, also read one instance mask per box (a mask
            head, or CopyPaste, needs them).

    Returns:
        The splits and their :class:`DataSpec` (``data.classes`` when set, else the names the
        data holds; COCO category ids for COCO boxes).

    Raises:
        ValueError: a kind the target has no loader for, COCO splits with different categories,
            a ``data.classes`` list of the wrong length, a ``data.ignore_index`` that is a class
            index of a class-index mask, instance masks asked of a kind without them, or any
            dataset error (missing files, bad masks), each naming the key or file.
    """
    if target not in KINDS:
        raise ValueError(f"target must be one of {', '.join(KINDS)}, got {target!r}")
    kind = data_cfg["kind"]
    if kind not in KINDS[target]:
        other = next(t for t in KINDS if t != target)
        only = [k for k in KINDS[other] if k not in KINDS[target]]
        raise ValueError(
            f"data.kind {kind!r} is not a {_TASK_OF[target]} dataset kind{did_you_mean(str(kind), KINDS[target])}; "
            f"use {', '.join(KINDS[target])} ({', '.join(only)}: {_TASK_OF[other]} only)"
        )
    mode = data_cfg.get("mode") or "multiclass"
    if target == "boxes" and mode != "multiclass":
        raise ValueError(
            f"data.mode is {mode} but data.mode is a segmentation setting (detection boxes carry one label "
            "each); remove it or set data.mode: multiclass"
        )
    if target == "mask" and mode != "multilabel" and data_cfg.get("classes"):  # before any file is read
        _check_ignore_index(int(data_cfg["ignore_index"]), tuple(data_cfg["classes"]))
    if target == "boxes" and instance_masks and kind in _BOXES_ONLY:
        raise ValueError(
            f"the model's mask head (Mask R-CNN) or CopyPaste needs instance masks, but data.kind {kind} holds "
            "boxes only; use data with masks (data.kind coco with segmentation, folder with instances/, or yolo "
            "with polygon labels), or a box-only detector (model.arch fasterrcnn_..., retinanet_...) without CopyPaste"
        )
    train, val, names, cat_ids, what = _OPENERS[kind](data_cfg, target, instance_masks)
    classes = _named(data_cfg.get("classes"), names, what)
    if target == "boxes":
        return Sources(train, val, DataSpec(classes, cat_ids))
    if mode != "multilabel":
        _check_ignore_index(int(data_cfg["ignore_index"]), classes)
    if mode == "binary" and len(classes) != 2:
        raise ValueError(
            f"data.mode is binary but {what} has {len(classes)} classes {list(classes)}; binary segmentation "
            "has two (background, then the foreground): map the mask values to 0 and 1 (data.folder.mask_values), "
            "keep one COCO category, or use data.mode: multiclass or multilabel"
        )
    return Sources(train, val, DataSpec(classes, cat_ids, mode=mode, threshold=data_cfg.get("threshold", 0.5)))


def _synthetic(data: Mapping[str, Any], target: str, instance_masks: bool):
    s = data["synthetic"]
    common = {"height": s["height"], "width": s["width"], "seed": s["seed"]}
    train = SyntheticShapes(s["train_size"], split="train", **common)
    val = SyntheticShapes(s["val_size"], split="val", **common)
    names = SyntheticShapes.CLASSES if target == "mask" else SyntheticShapes.BOX_CLASSES
    mode = data.get("mode") or "multiclass"
    if target == "mask" and mode == "multilabel":
        raise ValueError(
            "data.kind synthetic has no multilabel masks (its shapes never share a pixel); use data.kind folder "
            "(masks/<class>/<stem>.png) or coco for data.mode multilabel, or data.mode binary on synthetic data"
        )
    if target == "mask" and mode == "binary":  # every shape is the foreground
        names = ("background", "shape")
        ignore = int(data["ignore_index"])
        train, val = (ForegroundMask(ds, names, ignore_index=ignore) for ds in (train, val))
        return train, val, names, None, "synthetic data (binary: background and shape)"
    return train, val, names, None, "synthetic data"


def _folder(data: Mapping[str, Any], target: str, instance_masks: bool):
    f, ignore = data["folder"], int(data["ignore_index"])
    if target == "boxes":
        return _folder_instances(f, data.get("classes"), instance_masks)
    mode = data.get("mode") or "multiclass"
    if mode == "multilabel":
        if f.get("mask_values"):
            raise ValueError(
                "data.folder.mask_values does not apply to data.mode multilabel: each masks/<class>/<stem>.png "
                "is read as nonzero = class present; remove data.folder.mask_values"
            )
        if f.get("train_split") or f.get("val_split"):
            raise ValueError(
                "data.folder.train_split / val_split select class-index masks; with data.mode multilabel "
                "give data.folder.train and data.folder.val as separate folders"
            )
        train = FolderMultilabel(f["train"], classes=data.get("classes"), ignore_index=ignore)
        val = FolderMultilabel(f["val"], classes=train.classes, ignore_index=ignore)
        return train, val, tuple(train.classes), None, f"the folder {f['train']} (one masks/<class>/ per class)"
    common = {"mask_values": f.get("mask_values"), "ignore_index": ignore, "mode": mode}
    train = FolderSegmentation(
        f["train"],
        split=f.get("train_split"),
        classes=data.get("classes"),
        split_key="data.folder.train_split",
        **common,
    )
    val = FolderSegmentation(  # the training masks passed the 0 / ignore_index check: the same values are fine here
        f["val"],
        split=f.get("val_split"),
        classes=train.classes,
        split_key="data.folder.val_split",
        refuse_ignore_only=False,
        **common,
    )
    return train, val, tuple(train.classes), None, f"the folder {f['train']}"


def _folder_instances(f: Mapping[str, Any], classes, instance_masks: bool):
    common = {"class_map": f.get("class_map"), "with_masks": instance_masks}
    train = FolderInstances(
        f["train"], split=f.get("train_split"), classes=classes, split_key="data.folder.train_split", **common
    )
    val = FolderInstances(
        f["val"], split=f.get("val_split"), classes=train.classes, split_key="data.folder.val_split", **common
    )
    return train, val, tuple(train.classes), None, f"the instance folder {f['train']}"


def _coco(data: Mapping[str, Any], target: str, instance_masks: bool):
    c = data["coco"]
    multilabel = target == "mask" and (data.get("mode") or "multiclass") == "multilabel"
    if target == "mask":
        opts = {"with_mask": True, "multilabel": multilabel}
    else:
        opts = {"with_mask": False, "with_boxes": True, "with_instance_masks": instance_masks}
    train = CocoDataset(c["train_json"], c["train_images"], ignore_index=int(data["ignore_index"]), **opts)
    val = CocoDataset(c["val_json"], c["val_images"], ignore_index=int(data["ignore_index"]), **opts)
    if target == "mask":  # detection checks its boxes in both splits (segdet.detection.data)
        if train.num_annotations == 0:
            raise ValueError(
                f"data.coco.train_json {c['train_json']} has no annotations: training would see the background "
                "alone; point data.coco.train_json at an annotated file"
            )
        if val.num_annotations == 0:
            warnings.warn(
                f"data.coco.val_json {c['val_json']} has no annotations: its {len(val)} images are scored as all "
                "background (the class scores show only false positives)",
                stacklevel=4,
            )
    if val.cat_ids != train.cat_ids:
        raise ValueError(
            f"data.coco: {c['val_json']} has category ids {val.cat_ids} but {c['train_json']} has "
            f"{train.cat_ids}; both splits must list the same categories"
        )
    if multilabel:
        return train, val, train.category_names, None, f"{c['train_json']} (one channel per category)"
    if target == "mask":
        return train, val, train.seg_classes, None, f"{c['train_json']} (background + categories)"
    return train, val, train.box_classes, tuple(train.cat_ids), f"{c['train_json']}"


def _voc(data: Mapping[str, Any], target: str, instance_masks: bool):
    v = data["voc"]
    train = VocDataset(v["train"], v["train_split"], data.get("classes"), v["keep_difficult"])
    val = VocDataset(v["val"], v["val_split"], train.classes, v["keep_difficult"])
    return train, val, tuple(train.classes), None, f"the VOC folder {v['train']}"


def _yolo(data: Mapping[str, Any], target: str, instance_masks: bool):
    y = data["yolo"]
    train = YoloDataset(y["train"], data.get("classes"), instance_masks=instance_masks)
    val = YoloDataset(y["val"], train.classes, instance_masks=instance_masks)
    return train, val, tuple(train.classes), None, f"the YOLO folder {y['train']}"


_OPENERS: dict[str, Callable[..., tuple]] = {
    "synthetic": _synthetic,
    "folder": _folder,
    "coco": _coco,
    "voc": _voc,
    "yolo": _yolo,
}


def _named(names, default: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``data.classes`` when set (it must have one name per class of the data), else the data's names."""
    if names is None:
        return tuple(default)
    if len(names) != len(default):
        raise ValueError(
            f"data.classes has {len(names)} names but {what} has {len(default)} classes "
            f"{list(default)}; list {len(default)} names or set data.classes: null"
        )
    return tuple(str(n) for n in names)


def _check_ignore_index(ignore: int, classes: tuple[str, ...]) -> None:
    """Stop when ``ignore`` is one of the class indices ``0..len(classes)-1`` of a class-index mask."""
    if 0 <= ignore < len(classes):
        raise ValueError(
            f"data.ignore_index = {ignore} is class {ignore} ({classes[ignore]!r}) of the {len(classes)} classes "
            f"{list(classes)}: its pixels would be left out of the loss and the metrics; set data.ignore_index to a "
            f"value outside 0..{len(classes) - 1}, e.g. 255 (the default)"
        )
