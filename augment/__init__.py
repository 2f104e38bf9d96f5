"""Mask- and box-exact mixing augmentations (CutMix, FMix, MixUp, CopyPaste, Mosaic).

Every mixer is a class with ``p``, ``num_sources`` and ``__call__(samples, rng) -> sample``;
``MIXERS`` maps config names to those classes and ``MixDataset`` applies them to a dataset.
"""

from .box_formats import coco_to_pascal_voc, pascal_voc_to_coco, pascal_voc_to_yolo, yolo_to_pascal_voc

MIXERS = {
}

__all__ = [
    "MIXERS",
    "coco_to_pascal_voc",
    "pascal_voc_to_coco",
    "pascal_voc_to_yolo",
    "yolo_to_pascal_voc",
]
