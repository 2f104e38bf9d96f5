"""Object detection: the task and its datasets, batching, model, evaluator and predictor.

One module per job, named as in :mod:`segdet.segmentation`: ``task.py`` (the
:class:`~segdet.task.Task`), ``data.py``, ``collate.py``, ``model.py`` (torchvision detectors by
name), ``evaluator.py`` (COCO box and mask mAP), ``masks_rle.py`` (instance masks as COCO RLE) and
``predict.py``.

Example:
    >>> from segdet.detection import build_detector, DetectionEvaluator
    >>> det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", num_classes=3, min_size=96, max_size=128)
    >>> ev = DetectionEvaluator(["circle", "square", "triangle"])
"""

from .collate import detection_collate
from .data import build_detection_data
from .evaluator import MASK_STAT_NAMES, STAT_NAMES, DetectionEvaluator
from .model import DETECTORS, Detector, build_detector, needs_masks
from .predict import draw_detections, instance_ids, predict_images
from .task import DetectionTask

__all__ = [
    "DETECTORS",
    "MASK_STAT_NAMES",
    "STAT_NAMES",
    "DetectionEvaluator",
    "DetectionTask",
    "Detector",
    "build_detection_data",
    "build_detector",
    "detection_collate",
    "draw_detections",
    "instance_ids",
    "needs_masks",
    "predict_images",
]
