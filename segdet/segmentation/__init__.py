"""Semantic segmentation: the task and its datasets, batching, model, evaluator and predictor.

One module per job, named as in :mod:`segdet.detection`: ``task.py`` (the
:class:`~segdet.task.Task`), ``data.py``, ``collate.py``, ``model.py``, ``evaluator.py`` and
``predict.py``.

Example:
    >>> from segdet.segmentation import SegmentationEvaluator
    >>> ev = SegmentationEvaluator(num_classes=3, ignore_index=255, classes=["bg", "a", "b"], device="cpu")
"""

from ._confusion import AVERAGING, confusion_matrix, labels_from_logits, logit_threshold, scores_from_confusion
from ._multilabel import AVERAGING_MULTILABEL, multilabel_counts, present_from_logits, scores_from_multilabel
from .collate import collate_segmentation
from .data import build_segmentation_data
from .evaluator import SegmentationEvaluator
from .model import IMAGENET_MEAN, IMAGENET_STD, SegmentationModel, build_segmentation_model, check_model_names
from .predict import pad_to_stride, predict_segmentation
from .task import SegmentationTask

__all__ = [
    "AVERAGING",
    "AVERAGING_MULTILABEL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SegmentationEvaluator",
    "SegmentationModel",
    "SegmentationTask",
    "build_segmentation_data",
    "build_segmentation_model",
    "check_model_names",
    "collate_segmentation",
    "confusion_matrix",
    "labels_from_logits",
    "logit_threshold",
    "multilabel_counts",
    "pad_to_stride",
    "predict_segmentation",
    "present_from_logits",
    "scores_from_confusion",
    "scores_from_multilabel",
]
