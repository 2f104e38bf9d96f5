"""Name -> loss class registry used by :class:`losses.ComboLoss` and configs."""

from __future__ import annotations

from losses.bce import BalancedBCELoss, BCELoss
from losses.ce import CrossEntropyLoss
from losses.dice_bce import DiceBCELoss
from losses.focal import FocalLoss
from losses.lovasz import LovaszLoss
from losses.region import DiceLoss, JaccardLoss, TverskyLoss

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
}
