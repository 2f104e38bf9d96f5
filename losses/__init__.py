"""segdet's loss zoo; depends on torch alone, so any project can ``from losses import DiceLoss``.

Segmentation losses take ``(logits, target)`` with the modes and shapes of
:mod:`losses.constants`; detection losses take matched boxes or dense-head logits.
"""

from ._deferred import check_deferred
from .bce import BalancedBCELoss, BCELoss, balanced_bce_loss, bce_loss
from .ce import CrossEntropyLoss, cross_entropy_loss
from .combo import ComboLoss
from .constants import BINARY_MODE, MODES, MULTICLASS_MODE, MULTILABEL_MODE
from .detection import (
    BoxIoULoss,
    SigmoidFocalLoss,
    box_iou_loss,
    sigmoid_focal_loss,
)
from .dice_bce import DiceBCELoss, dice_bce_loss
from .focal import FocalLoss, focal_loss
from .kd import CWDLoss, KDLoss, cwd_loss, kd_loss
from .lovasz import LovaszLoss, lovasz_loss
from .mcc import MCCLoss, mcc_loss
from .region import (
    DiceLoss,
    JaccardLoss,
    TverskyLoss,
    dice_loss,
    jaccard_loss,
    tversky_loss,
)
from .registry import LOSSES

__all__ = [
    "BINARY_MODE",
    "MULTICLASS_MODE",
    "MULTILABEL_MODE",
    "MODES",
    "LOSSES",
    "check_deferred",
    "ComboLoss",
    "DiceLoss",
    "JaccardLoss",
    "TverskyLoss",
    "BCELoss",
    "BalancedBCELoss",
    "FocalLoss",
    "LovaszLoss",
    "MCCLoss",
    "CrossEntropyLoss",
    "KDLoss",
    "CWDLoss",
    "DiceBCELoss",
    "BoxIoULoss",
    "SigmoidFocalLoss",
    "dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "bce_loss",
    "balanced_bce_loss",
    "focal_loss",
    "lovasz_loss",
    "mcc_loss",
    "cross_entropy_loss",
    "kd_loss",
    "cwd_loss",
    "dice_bce_loss",
    "box_iou_loss",
    "sigmoid_focal_loss",
]
