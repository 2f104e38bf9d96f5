"""Detection: torchvision detectors by name, VOC/YOLO loaders, collation, COCO evaluation, prediction."""

from segdet.detection.coco_eval import STAT_NAMES, DetectionEvaluator
from segdet.detection.collate import detection_collate
from segdet.detection.models import DETECTORS, Detector, build_detector

__all__ = [
    "DETECTORS",
    "STAT_NAMES",
    "DetectionEvaluator",
    "Detector",
    "build_detector",
    "detection_collate",
]
