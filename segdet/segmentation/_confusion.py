"""Dataset-level confusion matrix of semantic segmentation, accumulated on the device.

Rows are ground-truth classes, columns predicted classes: ``cm[t, p]`` counts pixels whose
target is ``t`` and prediction is ``p``. Pixels whose target is ``ignore_index`` (or any value
outside ``[0, num_classes)``, or, for soft targets, an all-zero probability vector) are not
counted.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: how every score of this module averages; written beside the numbers in reports
AVERAGING = (
    "Scores come from one confusion matrix summed over every valid pixel of the whole dataset "
    "(pixels whose target is ignore_index are excluded): IoU_c = TP/(TP+FP+FN), "
    "Dice_c = 2TP/(2TP+FP+FN), pixel accuracy = trace/total. A class absent from both the ground "
    "truth and the predictions has no score (n/a) and is left out of mIoU and mDice, which are "
    "the unweighted means over the remaining classes."
)


def logit_threshold(threshold: float) -> float:
    """The float32 logit ``c`` with ``x > c`` exactly where ``sigmoid(x) > t``, for float32 ``x`` and ``t`` in (0, 1).

    ``c`` is ``log(t / (1 - t))`` rounded down to a float32 (no float32 lies between the two),
    so comparing float32 logits with it gives the float64 answer. Comparing logits is exact
    where comparing ``sigmoid(logit)`` in float32 is not: the sigmoid of a logit of 1e-10
    rounds to 0.5, so ``sigmoid > 0.5`` would miss it, while ``logit > 0`` (the value for
    ``t = 0.5``) agrees with the argmax of the two-class logits ``[0, logit]``.

    Raises:
        ValueError: ``threshold`` is not strictly between 0 and 1.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1 (data.threshold), got {threshold!r}")
    if threshold == 0.5:
        return 0.0
    exact = math.log(threshold / (1.0 - threshold))
    cut = np.float32(exact)
    if float(cut) > exact:
        cut = np.nextafter(cut, np.float32(-np.inf))
    return float(cut)


def labels_from_logits(logits: torch.Tensor, num_classes: int, threshold: float = 0.5) -> torch.Tensor:
    """Turn model output into class indices.

    Args:
        logits: (B, num_classes, H, W) scores of any float dtype (fp16/bf16 under AMP are fine),
            or (B, 1, H, W) logits of a binary model when ``num_classes == 2`` (class 1 where
            ``sigmoid(logit) > threshold``, compared as ``logit > logit_threshold(threshold)``).
        num_classes: number of classes the evaluator expects.
        threshold: the binary model's threshold (``data.threshold``).

    Returns:
        (B, H, W) int64 class indices in ``[0, num_classes)``.

    Raises:
        TypeError: ``logits`` is not a tensor.
        ValueError: ``logits`` is not 4-D or its channel count does not match ``num_classes``.

    Example:
        >>> labels_from_logits(torch.randn(2, 3, 32, 32), 3).shape
        torch.Size([2, 32, 32])
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"the model returned {type(logits).__name__}; segmentation evaluation needs a "
            "(B, num_classes, H, W) logits tensor"
        )
    if logits.ndim != 4:
        raise ValueError(f"model output has shape {tuple(logits.shape)}; expected (B, num_classes, H, W)")
    channels = logits.shape[1]
    if channels == num_classes:
        return logits.argmax(dim=1)
    if channels == 1 and num_classes == 2:
        cut = logit_threshold(threshold)
        return ((logits[:, 0] if cut == 0.0 else logits[:, 0].float()) > cut).long()
    raise ValueError(
        f"model output has {channels} channels but num_classes={num_classes}; build the model "
        "with one output channel per class name"
    )


def _hard_target(
    target: torch.Tensor, num_classes: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class indices, the valid-pixel mask and the invalid-pixel mask of a target tensor."""
    if target.ndim == 4:
        if not torch.is_floating_point(target):
            raise TypeError(f"a 4-D target must be soft probabilities (float), got dtype {target.dtype}")
        if target.shape[1] != num_classes:
            raise ValueError(f"soft target has {target.shape[1]} channels but num_classes={num_classes}")
        labels = target.argmax(dim=1)
        valid = (target != 0).any(dim=1)
        return labels, valid, torch.zeros_like(valid)
    if target.ndim != 3:
        raise ValueError(
            f"target has shape {tuple(target.shape)}; expected (B, H, W) class indices or "
            "(B, C, H, W) soft probabilities"
        )
    if torch.is_floating_point(target) or target.dtype == torch.bool:
        raise TypeError(f"a (B, H, W) target must hold integer class indices, got dtype {target.dtype}")
    labels = target.long()
    in_range = (labels >= 0) & (labels < num_classes)
    is_ignored = labels == ignore_index
    return labels, in_range & ~is_ignored, ~in_range & ~is_ignored


def _histogram(index: torch.Tensor, bins: int, sync_free: bool | None = None) -> torch.Tensor:
    """Counts of each value of a 1-D int64 tensor with values in ``[0, bins)``.

    On CUDA ``torch.bincount`` reads the input's min and max back to the host (two
    synchronisations per call, seen with ``torch.cuda.set_sync_debug_mode``), so there
    (``sync_free=None`` picks by device) the counts are a ``scatter_add_`` into a fixed-size
    buffer instead: no synchronisation, and exact and deterministic since the values are int64.
    """
    if sync_free is None:
        sync_free = index.is_cuda
    if sync_free:
        counts = torch.zeros(bins, dtype=torch.int64, device=index.device)
        return counts.scatter_add_(0, index, torch.ones_like(index))
    return torch.bincount(index, minlength=bins)


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Confusion matrix of one batch, computed on the tensors' device without host copies.

    Args:
        pred: (B, H, W) integer predicted classes in ``[0, num_classes)``.
        target: (B, H, W) integer classes with ``ignore_index`` where unlabeled, or soft
            (B, num_classes, H, W) float probabilities (the argmax is the class; an all-zero
            vector marks an ignored pixel).
        num_classes: number of classes ``C``.
        ignore_index: target value that is not scored; may lie inside or outside ``[0, C)``.

    Returns:
        ``(cm, invalid)``: (C, C) int64 counts, rows = ground truth, columns = prediction; and a
        0-d int64 tensor counting target pixels that are neither a class nor ``ignore_index``
        (not scored; callers report them).

    Example:
        >>> pred = torch.tensor([[[0, 1], [1, 1]]])
        >>> target = torch.tensor([[[0, 1], [255, 0]]])
        >>> confusion_matrix(pred, target, 2)[0]
        tensor([[1, 1],
                [0, 1]])
    """
    labels, valid, invalid = _hard_target(target, num_classes, ignore_index)
    if pred.shape != labels.shape:
        raise ValueError(
            f"prediction has shape {tuple(pred.shape)} but target has {tuple(labels.shape)} "
            "(batch, height, width must match; pad images and masks alike)"
        )
    pred = pred.long()
    # Invalid pixels go to one extra bin, dropped afterwards: no boolean indexing, so no
    # data-dependent shape and no device-to-host synchronisation.
    size = num_classes * num_classes
    index = torch.where(valid, labels * num_classes + pred, size).reshape(-1)
    counts = _histogram(index, size + 1)[:size]
    return counts.reshape(num_classes, num_classes), invalid.sum()


def scores_from_confusion(cm: np.ndarray | torch.Tensor) -> dict[str, np.ndarray | float]:
    """Per-class and mean scores of a dataset-level confusion matrix.

    IoU_c = TP/(TP+FP+FN), Dice_c = 2TP/(2TP+FP+FN). A class with TP+FP+FN = 0 (absent from both
    ground truth and prediction) gets NaN and is left out of ``miou``/``mdice``; when every
    class is NaN (e.g. every pixel ignored) the means and ``pixel_acc`` are NaN too.

    Args:
        cm: (C, C) counts, rows = ground truth, columns = prediction.

    Returns:
        dict with ``iou``, ``dice`` (C,) float64 arrays, ``gt_pixels``, ``pred_pixels`` (C,)
        int64 arrays, and floats ``miou``, ``mdice``, ``pixel_acc``.

    Example:
        >>> scores_from_confusion(np.array([[3, 1], [0, 4]]))["iou"]
        array([0.75, 0.8 ])
    """
    if isinstance(cm, torch.Tensor):
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    gt = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    union = gt + predicted - tp  # TP + FP + FN
    present = union > 0
    iou = np.full(len(tp), np.nan)
    dice = np.full(len(tp), np.nan)
    iou[present] = tp[present] / union[present]
    dice[present] = 2 * tp[present] / (gt[present] + predicted[present])
    total = int(cm.sum())
    return {
        "iou": iou,
        "dice": dice,
        "gt_pixels": gt,
        "pred_pixels": predicted,
        "miou": float(iou[present].mean()) if present.any() else math.nan,
        "mdice": float(dice[present].mean()) if present.any() else math.nan,
        "pixel_acc": float(tp.sum() / total) if total > 0 else math.nan,
    }
