"""Mask- and box-exact mixing augmentations (CutMix, FMix, MixUp, CopyPaste, Mosaic).

Every mixer is a class with ``p``, ``num_sources`` and ``__call__(samples, rng) -> sample``;
``MIXERS`` maps config names to those classes and ``MixDataset`` applies them to a dataset.
"""

from .cutmix import CutMix, cutmix
from .box_formats import coco_to_pascal_voc, pascal_voc_to_coco, pascal_voc_to_yolo, yolo_to_pascal_voc

MIXERS = {
    "CutMix": CutMix,
}

__all__ = [
    "MIXERS",
    "CutMix",
    "cutmix",
    "coco_to_pascal_voc",
    "pascal_voc_to_coco",
    "pascal_voc_to_yolo",
    "yolo_to_pascal_voc",
]
