"""Evaluation of segmentation models: a dataset-level confusion matrix kept on the device.

Example:
    >>> from segdet.segmentation import SegmentationEvaluator
    >>> ev = SegmentationEvaluator(num_classes=3, ignore_index=255, classes=["bg", "a", "b"], device="cpu")
"""

from segdet.segmentation._confusion import AVERAGING, confusion_matrix, labels_from_logits, scores_from_confusion
from segdet.segmentation.evaluator import SegmentationEvaluator

__all__ = [
    "AVERAGING",
    "SegmentationEvaluator",
    "confusion_matrix",
    "labels_from_logits",
    "scores_from_confusion",
]
