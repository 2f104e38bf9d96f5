"""Detection losses: IoU-family box regression losses and the dense-head sigmoid focal loss.

Both functional forms compile with ``torch.jit.script`` (a scripted detector can call them) and
broadcast like torchvision's: boxes are (..., 4), focal logits any shape. Called from Python they
check their inputs with messages that name the offending value and keep autocast out of the
computation; scripted, the same checks raise shorter messages (TorchScript formats no
f-strings), and a focal target outside [0, 1] makes the loss NaN instead of raising, since
reading it back would wait for the device.
"""

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


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if loss.numel() == 0:
        return loss.sum()  # nothing to score: 0 with a zero gradient (torch's mean gives NaN)
    return loss.mean()


def _box_iou_terms(pred: torch.Tensor, target: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
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
    alpha = (v / (1 - iou + v + eps)).detach()
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
    so zero-size boxes give finite values and gradients. Scriptable with ``torch.jit.script``.

    Args:
        pred: (..., 4) predicted boxes, any float dtype (reduced in float32).
        target: (..., 4) matched target boxes, broadcastable against ``pred`` (as in
            torchvision's ``generalized_box_iou_loss``).
        kind: "iou", "giou" (default), "diou" or "ciou".
        reduction: "mean" (default; 0 without boxes), "sum" or "none" (the broadcast (...)).
        eps: the eps of the formulas, >= 0. Default 1e-7.

    Example:
        >>> box_iou_loss(torch.tensor([[0., 0., 10., 10.]]), torch.tensor([[2., 2., 12., 12.]]))
    """
    if torch.jit.is_scripting():
        return _box_iou_loss(pred, target, kind, reduction, eps)
    return _box_iou_loss_eager(pred, target, kind, reduction, eps)


@torch.jit.unused
def _box_iou_loss_eager(pred, target, kind, reduction, eps):
    name = "box_iou_loss"
    if kind not in BOX_IOU_KINDS:
        raise ValueError(f"{name}: kind={kind!r} is not one of {list(BOX_IOU_KINDS)}")
    check_reduction(reduction, name)
    number(eps, "eps", name, 0.0)
    for label, box in (("pred", pred), ("target", target)):
        if not isinstance(box, torch.Tensor):
            raise InputTypeError(f"{name}: {label} must be a torch.Tensor, got {type(box).__name__}")
        if box.dim() < 1 or box.shape[-1] != 4:
            raise ValueError(f"{name}: {label} must be (..., 4) xyxy boxes, got {tuple(box.shape)}")
    try:
        torch.broadcast_shapes(pred.shape, target.shape)
    except RuntimeError:
        raise ValueError(
            f"{name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must be matched boxes of "
            "broadcastable shapes"
        ) from None
    with no_autocast(pred.device):
        return _box_iou_loss(pred, target, kind, reduction, eps)


def _box_iou_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, reduction: str, eps: float) -> torch.Tensor:
    """The scriptable core of :func:`box_iou_loss`."""
    if kind not in ["iou", "giou", "diou", "ciou"]:
        raise ValueError("box_iou_loss: kind=" + kind + " is not one of iou, giou, diou, ciou")
    if reduction not in ["mean", "sum", "none"]:
        raise ValueError("box_iou_loss: reduction=" + reduction + " is not one of mean, sum, none")
    if pred.shape[-1] != 4 or target.shape[-1] != 4:
        raise ValueError("box_iou_loss: pred and target must be (..., 4) xyxy boxes")
    dtype = _compute_dtype(pred)
    return _reduce(_box_iou_terms(pred.to(dtype), target.to(dtype), kind, eps), reduction)


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
    objects gives the plain sum instead of NaN. Scriptable with ``torch.jit.script``.

    Args:
        logits: (*) logits, any float dtype (reduced in float32).
        targets: (*) 0/1 or soft targets in [0, 1], same shape. Outside [0, 1] (where
            ``valid``) is a ValueError; on a CUDA device, or scripted, the loss is NaN instead
            (the error of a CUDA call follows, see :func:`losses.check_deferred`).
        alpha: weight of positives, in [0, 1]. Default 0.25 (torchvision, RetinaNet).
        gamma: focusing exponent >= 0. Default 2.
        normalizer: divide the sum by max(normalizer, 1); only with reduction "sum".
        valid: optional bool mask broadcastable to ``logits``; False elements are left out
            (their targets may hold anything).
        reduction: "sum" (default), "mean" (over valid elements) or "none".

    Example:
        >>> logits = torch.randn(2, 100, 80)
        >>> targets = torch.zeros(2, 100, 80); targets[0, 3, 7] = 1
        >>> sigmoid_focal_loss(logits, targets, normalizer=1)
    """
    if torch.jit.is_scripting():
        return _sigmoid_focal(logits, targets, alpha, gamma, normalizer, valid, reduction, True)
    return _sigmoid_focal_eager(logits, targets, alpha, gamma, normalizer, valid, reduction)


@torch.jit.unused
def _sigmoid_focal_eager(logits, targets, alpha, gamma, normalizer, valid, reduction):
    name = "sigmoid_focal_loss"
    check_reduction(reduction, name)
    for label, value in (("logits", logits), ("targets", targets)):
        if not isinstance(value, torch.Tensor):
            raise InputTypeError(f"{name}: {label} must be a torch.Tensor, got {type(value).__name__}")
    if logits.shape != targets.shape:
        raise ValueError(
            f"{name}: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape"
        )
    if normalizer is not None and reduction != "sum":
        raise ValueError(f"{name}: normalizer needs reduction='sum', got {reduction!r}")
    if alpha is not None:
        number(alpha, "alpha", name, 0.0, 1.0)
    number(gamma, "gamma", name, 0.0)
    with no_autocast(logits.device):
        t = targets.to(_compute_dtype(logits))
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
        loss = _sigmoid_focal(logits, t, alpha, gamma, normalizer, valid, reduction, False)
        return loss if poison is None else loss + poison.to(loss.dtype)


def _sigmoid_focal(
    logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float | None,
    gamma: float,
    normalizer: float | torch.Tensor | None,
    valid: torch.Tensor | None,
    reduction: str,
    check_targets: bool,
) -> torch.Tensor:
    """The scriptable core of :func:`sigmoid_focal_loss`; ``check_targets`` adds a NaN verdict."""
    if reduction not in ["mean", "sum", "none"]:
        raise ValueError("sigmoid_focal_loss: reduction=" + reduction + " is not one of mean, sum, none")
    if logits.shape != targets.shape:
        raise ValueError("sigmoid_focal_loss: logits and targets must have the same shape")
    if normalizer is not None and reduction != "sum":
        raise ValueError("sigmoid_focal_loss: normalizer needs reduction='sum'")
    dtype = _compute_dtype(logits)
    x, t = logits.to(dtype), targets.to(dtype)
    if valid is not None:
        t = t.masked_fill(valid.logical_not(), 0.0)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    if gamma != 0:
        p = torch.sigmoid(x)
        loss = loss * (p + t - 2 * p * t).clamp_min(0) ** gamma
    if alpha is not None:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    if check_targets and t.numel() > 0:
        ok = (t.amin() >= 0) & (t.amax() <= 1)
        loss = loss + torch.where(ok, 0.0, math.nan).to(dtype)
    if valid is None:
        if reduction == "none":
            return loss
        total = _reduce(loss, reduction)
    else:
        w = valid.to(dtype).expand_as(loss)
        loss = loss * w
        if reduction == "none":
            return loss
        if reduction == "mean":
            return loss.sum() / w.sum().clamp_min(1.0)  # a count of valid elements; none gives 0
        total = loss.sum()
    if normalizer is not None:
        if isinstance(normalizer, torch.Tensor):
            total = total / normalizer.to(dtype).clamp_min(1.0)
        else:
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
        """Loss of (..., 4) predicted xyxy boxes against their matched (..., 4) targets: a scalar, or (...)."""
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
