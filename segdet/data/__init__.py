"""Datasets, augmentation pipelines and batching for segdet.

Datasets return the sample contract of DESIGN.md (``image``, ``mask``, ``masks``, ``bboxes``,
``labels``) and carry their class names in ``classes``.
"""

from segdet.data.build import build_mixers, build_segmentation_data
from segdet.data.coco import CocoDataset, segmentation_to_mask
from segdet.data.collate import collate_segmentation
from segdet.data.folder import FolderSegmentation
from segdet.data.synthetic import SyntheticShapes, boxes_from_masks
from segdet.data.transforms import build_pipeline, transform_names
from segdet.data.wrappers import TransformedDataset

__all__ = [
    "CocoDataset",
    "FolderSegmentation",
    "SyntheticShapes",
    "TransformedDataset",
    "boxes_from_masks",
    "build_mixers",
    "build_pipeline",
    "build_segmentation_data",
    "collate_segmentation",
    "segmentation_to_mask",
    "transform_names",
]
