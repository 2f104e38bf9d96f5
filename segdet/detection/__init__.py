"""Detection: torchvision detectors by name, collation, COCO evaluation, prediction.

Example:
    >>> from segdet.detection import build_detector, DetectionEvaluator
    >>> det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, min_size=96, max_size=128)
    >>> ev = DetectionEvaluator(["circle", "square", "triangle"])
"""

from segdet.detection.collate import detection_collate
from segdet.detection.evaluator import STAT_NAMES, DetectionEvaluator
from segdet.detection.model import DETECTORS, Detector, build_detector, needs_masks
from segdet.detection.predict import draw_detections, predict_images

__all__ = [
    "DETECTORS",
    "STAT_NAMES",
    "DetectionEvaluator",
    "Detector",
    "build_detector",
    "detection_collate",
    "draw_detections",
    "needs_masks",
    "predict_images",
]
