"""Mask- and box-exact mixing augmentations.

CutMix, FMix, ResizeMix, SaliencyMix, PuzzleMix, MixUp, CopyPaste, Mosaic and RICAP.

Every mixer is a class with ``p``, ``num_sources`` and ``__call__(samples, rng) -> sample``;
``MIXERS`` maps config names to those classes and ``MixDataset`` applies them to a dataset.
Samples follow one contract (:mod:`augment.sample`): ``normalise_sample`` brings a sample's
arrays to it and ``call_albumentations`` runs an albumentations pipeline on a sample.
"""

from .box_formats import coco_to_pascal_voc, pascal_voc_to_coco, pascal_voc_to_yolo, yolo_to_pascal_voc
from .copypaste import CopyPaste, copy_paste
from .cutmix import CutMix, cutmix
from .dataset import MixDataset
from .mixup import MixUp, mixup
from .mosaic import Mosaic
from .policies import POLICIES, auto_augment, rand_augment, trivial_augment
from .puzzlemix import PuzzleMix
from .regions import fmix_region, rect_region
from .resizemix import ResizeMix, resizemix
from .ricap import RICAP
from .saliency import block_region, saliency_rect, spectral_residual_saliency
from .saliencymix import SaliencyMix
from .sample import BOX_FORMAT, PER_BOX_KEYS, SAMPLE_KEYS, call_albumentations, normalise_sample

MIXERS = {
    "CutMix": CutMix,
    "MixUp": MixUp,
    "CopyPaste": CopyPaste,
    "Mosaic": Mosaic,
    "ResizeMix": ResizeMix,
    "RICAP": RICAP,
    "SaliencyMix": SaliencyMix,
    "PuzzleMix": PuzzleMix,
}

__all__ = [
    "MIXERS",
    "CutMix",
    "cutmix",
    "MixUp",
    "mixup",
    "CopyPaste",
    "copy_paste",
    "Mosaic",
    "ResizeMix",
    "resizemix",
    "RICAP",
    "SaliencyMix",
    "PuzzleMix",
    "spectral_residual_saliency",
    "saliency_rect",
    "block_region",
    "POLICIES",
    "auto_augment",
    "rand_augment",
    "trivial_augment",
    "MixDataset",
    "rect_region",
    "fmix_region",
    "coco_to_pascal_voc",
    "pascal_voc_to_coco",
    "pascal_voc_to_yolo",
    "yolo_to_pascal_voc",
    "BOX_FORMAT",
    "PER_BOX_KEYS",
    "SAMPLE_KEYS",
    "call_albumentations",
    "normalise_sample",
]
