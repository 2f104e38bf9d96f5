"""Name -> loss class registry used by :class:`losses.ComboLoss` and configs."""

from __future__ import annotations

from .bce import BalancedBCELoss, BCELoss
from .ce import CrossEntropyLoss
from .dice_bce import DiceBCELoss
from .focal import FocalLoss
from .lovasz import LovaszLoss
from .mcc import MCCLoss
from .region import DiceLoss, JaccardLoss, TverskyLoss

#: Lowercase registry name -> segmentation loss class; every class is built as
#: ``cls(mode=..., ignore_index=..., **options)`` and called as ``loss(logits, target)``.
LOSSES = {
    "dice": DiceLoss,
    "jaccard": JaccardLoss,
    "tversky": TverskyLoss,
    "bce": BCELoss,
    "balanced_bce": BalancedBCELoss,
    "focal": FocalLoss,
    "lovasz": LovaszLoss,
    "ce": CrossEntropyLoss,
    "dice_bce": DiceBCELoss,
    "mcc": MCCLoss,
}
