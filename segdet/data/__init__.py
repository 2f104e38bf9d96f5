"""Dataset sources (synthetic, folder, COCO, VOC, YOLO), the albumentations pipeline builder and the mixers.

Datasets return the sample contract of :mod:`augment.sample` (``image``, ``mask``, ``masks``,
``bboxes``, ``labels``) and carry their class names in ``classes``.
"""

from segdet.data._io import read_mask
from segdet.data.coco import CocoDataset, segmentation_to_mask
from segdet.data.folder import FolderSegmentation
from segdet.data.folder_multilabel import FolderMultilabel
from segdet.data.mixers import build_mixers
from segdet.data.synthetic import SyntheticShapes, boxes_from_masks
from segdet.data.transforms import build_pipeline, transform_names
from segdet.data.voc import VocDataset, parse_voc_xml
from segdet.data.wrappers import ForegroundMask, TransformedDataset
from segdet.data.yolo import YoloDataset, parse_yolo_labels

__all__ = [
    "CocoDataset",
    "FolderMultilabel",
    "FolderSegmentation",
    "ForegroundMask",
    "SyntheticShapes",
    "TransformedDataset",
    "VocDataset",
    "YoloDataset",
    "boxes_from_masks",
    "build_mixers",
    "build_pipeline",
    "parse_voc_xml",
    "parse_yolo_labels",
    "read_mask",
    "segmentation_to_mask",
    "transform_names",
]
