"""Detection losses: IoU-family box regression losses and the dense-head sigmoid focal loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import InputTypeError, check_reduction
from ._deferred import verify
from ._options import number
from ._precision import no_autocast

BOX_IOU_KINDS = ("iou", "giou", "diou", "ciou")


def _box_iou_terms(pred: torch.Tensor, target: torch.Tensor, kind: str, eps: float):
    x1, y1, x2, y2 = pred.unbind(-1)
    x1g, y1g, x2g, y2g = target.unbind(-1)
    w, h = (x2 - x1).clamp_min(0), (y2 - y1).clamp_min(0)
    wg, hg = (x2g - x1g).clamp_min(0), (y2g - y1g).clamp_min(0)
    iw = (torch.minimum(x2, x2g) - torch.maximum(x1, x1g)).clamp_min(0)
    ih = (torch.minimum(y2, y2g) - torch.maximum(y1, y1g)).clamp_min(0)
    inter = iw * ih
    union = w * h + wg * hg - inter
    # Two zero-area boxes: IoU 1 if they coincide, else 0 (torchvision gives 0 for both).
    same = (pred == target).all(-1).to(pred.dtype)
    iou = torch.where(union > 0, inter / (union + eps), same)
    loss = 1 - iou
    if kind == "iou":
        return loss
    cw = torch.maximum(x2, x2g) - torch.minimum(x1, x1g)
    ch = torch.maximum(y2, y2g) - torch.minimum(y1, y1g)
    if kind == "giou":
        area_c = cw * ch
        return loss + (area_c - union) / (area_c + eps)
    diag = cw**2 + ch**2 + eps
    centre = ((x1 + x2 - x1g - x2g) ** 2 + (y1 + y2 - y1g - y2g) ** 2) / 4
    loss = loss + centre / diag
    if kind == "diou":
        return loss
    # Aspect term; clamping w and h at eps keeps zero-size boxes finite (no gradient there).
    v = (4 / math.pi**2) * (
        torch.atan(wg.clamp_min(eps) / hg.clamp_min(eps)) - torch.atan(w.clamp_min(eps) / h.clamp_min(eps))
    ) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return loss + alpha * v


def box_iou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: str = "giou",
    reduction: str = "mean",
    eps: float = 1e-7,
) -> torch.Tensor:
    """IoU-family loss between matched boxes in (x1, y1, x2, y2) pixels.

        iou:  1 - IoU,                        IoU = I / (U + eps)
        giou: 1 - IoU + (C - U) / (C + eps)   C = area of the smallest enclosing box
        diou: 1 - IoU + d^2 / (c^2 + eps)     d = centre distance, c = enclosing diagonal
        ciou: diou + a v, v = 4/pi^2 (atan(wg/hg) - atan(w/h))^2, a = v / (1 - IoU + v + eps)
              (a is a constant, as in torchvision)

    These are torchvision's formulas, with two fixes for degenerate boxes: two zero-area boxes
    have IoU 1 if they coincide (loss 0, where torchvision gives 1) and 0 otherwise; widths and
    heights are clamped at 0 (an inverted box has zero area) and at eps inside the aspect term,
    so zero-size boxes give finite values and gradients.

    Args:
        pred: (N, 4) predicted boxes, any float dtype (reduced in float32).
        target: (N, 4) matched target boxes.
        kind: "iou", "giou" (default), "diou" or "ciou".
        reduction: "mean" (default; 0 for N = 0), "sum" or "none" (N,).
        eps: the eps of the formulas. Default 1e-7.

    Example:
        >>> box_iou_loss(torch.tensor([[0., 0., 10., 10.]]), torch.tensor([[2., 2., 12., 12.]]))
    """
    name = "box_iou_loss"
    if kind not in BOX_IOU_KINDS:
        raise ValueError(f"{name}: kind={kind!r} is not one of {list(BOX_IOU_KINDS)}")
    check_reduction(reduction, name)
    for label, box in (("pred", pred), ("target", target)):
        if not isinstance(box, torch.Tensor):
            raise InputTypeError(f"{name}: {label} must be a torch.Tensor, got {type(box).__name__}")
        if box.dim() != 2 or box.shape[-1] != 4:
            raise ValueError(f"{name}: {label} must be (N, 4) xyxy boxes, got {tuple(box.shape)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must be matched pairs of the same shape"
        )
    with no_autocast(pred.device):
        dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
        loss = _box_iou_terms(pred.to(dtype), target.to(dtype), kind, eps)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return loss.sum()
        return loss.mean() if loss.numel() else loss.sum() * 0.0


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    normalizer: float | torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    reduction: str = "sum",
) -> torch.Tensor:
    """Sigmoid focal loss of dense detection heads (RetinaNet, FCOS), any shape.

        l = a_t (1 - p_t) ** gamma * BCE(x, t),   p_t = p t + (1 - p)(1 - t),
        a_t = alpha t + (1 - alpha)(1 - t)        (a_t = 1 when alpha is None)

    exactly torchvision.ops.sigmoid_focal_loss per element. With ``normalizer`` (usually the
    number of positive anchors) the sum is divided by max(normalizer, 1), so an image without
    objects gives the plain sum instead of NaN.

    Args:
        logits: (*) logits, any float dtype (reduced in float32).
        targets: (*) 0/1 or soft targets, same shape.
        alpha: weight of positives. Default 0.25 (torchvision, RetinaNet).
        gamma: focusing exponent. Default 2.
        normalizer: divide the sum by max(normalizer, 1); only with reduction "sum".
        valid: optional bool mask broadcastable to ``logits``; False elements are left out.
        reduction: "sum" (default), "mean" (over valid elements) or "none".

    Example:
        >>> logits = torch.randn(2, 100, 80)
        >>> targets = torch.zeros(2, 100, 80); targets[0, 3, 7] = 1
        >>> sigmoid_focal_loss(logits, targets, normalizer=1)
    """
    name = "sigmoid_focal_loss"
    check_reduction(reduction, name)
    if logits.shape != targets.shape:
        raise ValueError(
            f"{name}: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape"
        )
    if normalizer is not None and reduction != "sum":
        raise ValueError(f"{name}: normalizer needs reduction='sum', got {reduction!r}")
    with no_autocast(logits.device):
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        x, t = logits.to(dtype), targets.to(dtype)
        if valid is not None:
            t = t.masked_fill(~valid.bool(), 0.0)  # an anchor left out may hold any value
        poison = None
        if t.numel():
            poison = verify(
                list(torch.aminmax(t)),
                (0.0, -math.inf),
                (math.inf, 1.0),
                name,
                lambda s: (
                    f"{name}: targets must lie in [0, 1], found min {s[0]:g}, max {s[1]:g}; "
                    "pass 0/1 (or soft) targets and leave ignored anchors out with valid="
                ),
                lambda s: f"targets from {s[0]:g} to {s[1]:g}, outside [0, 1]",
            )
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        if gamma:
            p = torch.sigmoid(x)
            loss = loss * (p + t - 2 * p * t).clamp_min(0) ** gamma
        if alpha is not None:
            loss = loss * (alpha * t + (1 - alpha) * (1 - t))
        w = None
        if valid is not None:
            w = valid.to(dtype).expand_as(loss)
            loss = loss * w
        if poison is not None:
            loss = loss + poison.to(dtype)
        if reduction == "none":
            return loss
        if reduction == "mean":
            if w is None:
                return loss.mean() if loss.numel() else loss.sum() * 0.0
            return loss.sum() / w.sum().clamp_min(torch.finfo(dtype).tiny)
        total = loss.sum()
        if isinstance(normalizer, torch.Tensor):
            total = total / normalizer.to(dtype).clamp_min(1.0)
        elif normalizer is not None:
            total = total / max(float(normalizer), 1.0)  # a Python number: no copy to the device
        return total


class BoxIoULoss(nn.Module):
    """Module form of :func:`box_iou_loss`: ``BoxIoULoss("ciou")(pred, target)``.

    Example:
        >>> BoxIoULoss("diou")(torch.tensor([[0., 0., 4., 4.]]), torch.tensor([[1., 1., 5., 5.]]))
    """

    def __init__(self, kind: str = "giou", reduction: str = "mean", eps: float = 1e-7) -> None:
        super().__init__()
        if kind not in BOX_IOU_KINDS:
            raise ValueError(f"BoxIoULoss: kind={kind!r} is not one of {list(BOX_IOU_KINDS)}")
        check_reduction(reduction, "BoxIoULoss")
        self.kind = kind
        self.reduction = reduction
        self.eps = number(eps, "eps", "BoxIoULoss", 0.0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of (N, 4) predicted xyxy boxes against their (N, 4) matched targets: a scalar, or (N,)."""
        return box_iou_loss(pred, target, self.kind, self.reduction, self.eps)


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal_loss`; stores ``alpha``, ``gamma`` and ``reduction``.

    ``forward(logits, targets, normalizer=None, valid=None)`` takes the per-batch arguments.

    Example:
        >>> loss = SigmoidFocalLoss(alpha=0.25, gamma=2.0)
        >>> value = loss(torch.randn(4, 10), torch.zeros(4, 10), normalizer=0)
    """

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "sum") -> None:
        super().__init__()
        check_reduction(reduction, "SigmoidFocalLoss")
        self.alpha = None if alpha is None else number(alpha, "alpha", "SigmoidFocalLoss", 0.0, 1.0)
        self.gamma = number(gamma, "gamma", "SigmoidFocalLoss", 0.0)
        self.reduction = reduction

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        normalizer: float | torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Focal loss of (*) logits against 0/1 or soft (*) targets of the same shape.

        Args:
            logits: (*) logits, e.g. (N, A, K) for A anchors and K classes.
            targets: (*) targets in [0, 1].
            normalizer: divide the sum by max(normalizer, 1), usually the number of positive
                anchors; only with reduction "sum". Default None.
            valid: bool mask broadcastable to ``logits``; False elements are left out. Default all.

        Returns:
            A scalar, or the (*) map for ``reduction="none"``.
        """
        return sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, normalizer, valid, self.reduction)
