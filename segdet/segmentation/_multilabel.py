"""Multilabel segmentation counts: one 2x2 confusion matrix per class for the whole dataset, on the device.

Class ``k`` is its own binary problem: over every element (pixel, class ``k``) of the dataset
whose target is 0 or 1 (``ignore_index`` is excluded, per class), ``counts[k, t, p]`` counts the
elements with target ``t`` and prediction ``p`` (1 where ``sigmoid(logit_k) > threshold``)::

    TN = counts[k, 0, 0]   FP = counts[k, 0, 1]
    FN = counts[k, 1, 0]   TP = counts[k, 1, 1]
    IoU_k  = TP / (TP + FP + FN)
    Dice_k = 2 TP / (2 TP + FP + FN)

A class with TP + FP + FN = 0 (never present and never predicted) has no score (NaN) and is left
out of ``miou`` and ``mdice``, the unweighted means over the classes that have one; pixel
accuracy is sum_k (TP + TN) / sum_k (valid elements of k). Counts are int64 sums on the device,
so nothing is read back until the scores are computed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._confusion import logit_threshold

#: how the multilabel scores average; written beside the numbers in reports
AVERAGING_MULTILABEL = (
    "Multilabel: each class is scored on its own, from a 2x2 count summed over every pixel of the "
    "whole dataset whose target for that class is 0 or 1 (ignore_index is excluded per class); the "
    "prediction is sigmoid(logit) > threshold. IoU_c = TP/(TP+FP+FN), Dice_c = 2TP/(2TP+FP+FN); "
    "pixel accuracy = (TP+TN)/valid, summed over the classes. A class never present and never "
    "predicted has no score (n/a) and is left out of mIoU and mDice, the unweighted means over the "
    "remaining classes."
)


def present_from_logits(logits: torch.Tensor, num_classes: int, threshold: float = 0.5) -> torch.Tensor:
    """(B, K, H, W) bool: class ``k`` predicted where ``sigmoid(logit_k) > threshold``.

    Compared as ``logit > log(t / (1 - t))`` (:func:`~segdet.segmentation._confusion.logit_threshold`).

    Raises:
        TypeError: ``logits`` is not a tensor.
        ValueError: ``logits`` is not (B, num_classes, H, W).

    Example:
        >>> present_from_logits(torch.tensor([[[[0.3]], [[-2.0]]]]), 2).flatten().tolist()
        [True, False]
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"the model returned {type(logits).__name__}; multilabel evaluation needs a "
            "(B, num_classes, H, W) logits tensor"
        )
    if logits.ndim != 4 or logits.shape[1] != num_classes:
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}; a multilabel model returns (B, {num_classes}, H, W), "
            "one sigmoid channel per class name"
        )
    cut = logit_threshold(threshold)
    return (logits if cut == 0.0 else logits.float()) > cut


def multilabel_counts(
    present: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class 2x2 counts of one batch, computed on the tensors' device without host copies.

    Args:
        present: (B, K, H, W) bool predictions.
        target: (B, K, H, W) integer 0/1 with ``ignore_index`` where unlabelled.
        ignore_index: target value that is not scored.

    Returns:
        ``(counts, invalid)``: (K, 2, 2) int64, ``counts[k, target, prediction]``; and a 0-d int64
        tensor counting target elements that are neither 0, 1 nor ``ignore_index`` (not scored;
        callers report them).

    Raises:
        TypeError: a floating or bool target.
        ValueError: shapes that differ.

    Example:
        >>> pred = torch.tensor([[[[True, False]], [[True, True]]]])
        >>> target = torch.tensor([[[[1, 255]], [[0, 1]]]])
        >>> multilabel_counts(pred, target)[0].tolist()
        [[[0, 0], [0, 1]], [[0, 1], [0, 1]]]
    """
    if target.ndim != 4 or torch.is_floating_point(target) or target.dtype == torch.bool:
        raise TypeError(
            f"a multilabel target is (B, K, H, W) integer 0/1 (ignore_index where unlabelled), got "
            f"{tuple(target.shape)} {target.dtype}"
        )
    if present.shape != target.shape:
        raise ValueError(
            f"prediction has shape {tuple(present.shape)} but target has {tuple(target.shape)} "
            "(batch, classes, height, width must match; pad images and masks alike)"
        )
    present = present.bool()
    dims = (0, 2, 3)
    neg, pos = target == 0, target == 1
    if 0 <= ignore_index <= 1:  # a class value that is ignored is not scored
        (neg if ignore_index == 0 else pos).zero_()
    tp = (pos & present).sum(dims)
    fp = (neg & present).sum(dims)
    fn = pos.sum(dims) - tp
    tn = neg.sum(dims) - fp
    counts = torch.stack([torch.stack([tn, fp], 1), torch.stack([fn, tp], 1)], 1)
    invalid = (~(neg | pos) & (target != ignore_index)).sum()
    return counts.to(torch.int64), invalid.to(torch.int64)


def scores_from_multilabel(counts: np.ndarray | torch.Tensor) -> dict[str, np.ndarray | float]:
    """Per-class and mean scores of dataset-level per-class 2x2 counts (module docstring formulas).

    Args:
        counts: (K, 2, 2) counts, ``counts[k, target, prediction]``.

    Returns:
        dict with ``iou``, ``dice`` (K,) float64 arrays (NaN where TP + FP + FN = 0),
        ``gt_pixels`` (TP + FN) and ``pred_pixels`` (TP + FP) (K,) int64 arrays, and floats
        ``miou``, ``mdice``, ``pixel_acc``.

    Example:
        >>> scores_from_multilabel(np.array([[[5, 1], [0, 3]], [[9, 0], [0, 0]]]))["iou"]
        array([0.75,  nan])
    """
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    counts = np.asarray(counts, dtype=np.int64)
    tn, fp, fn, tp = counts[:, 0, 0], counts[:, 0, 1], counts[:, 1, 0], counts[:, 1, 1]
    union = tp + fp + fn
    present = union > 0
    iou = np.full(len(tp), np.nan)
    dice = np.full(len(tp), np.nan)
    iou[present] = tp[present] / union[present]
    dice[present] = 2 * tp[present] / (union[present] + tp[present])
    total = int(counts.sum())
    return {
        "iou": iou,
        "dice": dice,
        "gt_pixels": tp + fn,
        "pred_pixels": tp + fp,
        "miou": float(iou[present].mean()) if present.any() else math.nan,
        "mdice": float(dice[present].mean()) if present.any() else math.nan,
        "pixel_acc": float((tp + tn).sum() / total) if total > 0 else math.nan,
    }
