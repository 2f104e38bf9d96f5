"""Knowledge distillation for dense predictions: pixel-wise KD (Hinton et al., 2015) and channel-wise CWD.

:func:`kd_loss` (per pixel, over the classes):

    multiclass:  l_i = T^2 * sum_c q_c (log q_c - log p_c),
                 q = softmax(z_t / T), p = softmax(z_s / T)
    binary/multilabel: the same KL between Bernoulli distributions, per channel

The T^2 factor keeps the gradient scale independent of T. The teacher is detached. ``mean``
averages over the pixels (elements for sigmoid modes) where ``mask`` is True; an empty mask
gives 0 with zero gradient.

:func:`cwd_loss` (Shu et al., 2021, "Channel-wise Knowledge Distillation for Dense Prediction"):
per channel, over the positions; its docstring has the formula.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_logits, check_mode, check_reduction
from ._options import number
from ._precision import compute_dtype, no_autocast
from ._reduce import reduce_ratio
from .constants import MULTICLASS_MODE


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mode: str = MULTICLASS_MODE,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    per_image: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """KL(teacher || student) at temperature T, scaled by T^2 (module docstring formula).

    Args:
        student_logits: (N, C, *S) logits of the student.
        teacher_logits: (N, C, *S) logits of the teacher (detached).
        mode: "multiclass" (softmax, default), "binary" or "multilabel" (sigmoid).
        temperature: T > 0. Default 1.
        mask: optional (N, *S) bool, pixels that count. Default all.
        per_image: average per image, then over images. Default False.
        reduction: "mean" (default), "sum", or "none": the (N, *S) map (multiclass) or
            (N, C, *S) map (sigmoid modes).

    Example:
        >>> kd_loss(torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), temperature=2.0)
    """
    name = "kd_loss"
    check_mode(mode, name)
    check_reduction(reduction, name)
    check_logits(student_logits, mode, name)
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.shape != student_logits.shape:
        got = getattr(teacher_logits, "shape", type(teacher_logits).__name__)
        raise ValueError(
            f"{name}: teacher logits {tuple(got)} must have the student's shape {tuple(student_logits.shape)}"
        )
    temperature = number(temperature, "temperature", name, 0.0, above=True)
    with no_autocast(student_logits.device):
        dtype = compute_dtype(student_logits)
        n, c = student_logits.shape[:2]
        m = math.prod(student_logits.shape[2:])
        s = student_logits.to(dtype).reshape(n, c, m) / temperature
        t = teacher_logits.detach().to(dtype).reshape(n, c, m) / temperature
        if mode == MULTICLASS_MODE:
            log_q = F.log_softmax(t, dim=1)
            kl = (log_q.exp() * (log_q - F.log_softmax(s, dim=1))).sum(1, keepdim=True)
        else:
            q = torch.sigmoid(t)
            kl = q * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - q) * (F.logsigmoid(-t) - F.logsigmoid(-s))
        kl = kl * temperature**2
        w = None
        if mask is not None:
            if tuple(mask.shape) != (n, *student_logits.shape[2:]):
                raise ValueError(
                    f"{name}: mask shape {tuple(mask.shape)} must be (N, *S) = {(n, *student_logits.shape[2:])}"
                )
            w = mask.reshape(n, 1, m).to(dtype)
            kl = kl * w
        out = reduce_ratio(kl, w, reduction, per_image)
        if reduction != "none":
            return out
        if mode == MULTICLASS_MODE:
            return out.reshape(n, *student_logits.shape[2:])
        return out.reshape(student_logits.shape)


class KDLoss(nn.Module):
    """Module form of :func:`kd_loss`: ``forward(student_logits, teacher_logits, mask=None)``.

    Example:
        >>> loss = KDLoss(temperature=4.0)
        >>> value = loss(torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8))
    """

    def __init__(
        self,
        mode: str = MULTICLASS_MODE,
        temperature: float = 1.0,
        per_image: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_mode(mode, "KDLoss")
        check_reduction(reduction, "KDLoss")
        self.mode = mode
        self.temperature = number(temperature, "temperature", "KDLoss", 0.0, above=True)
        self.per_image = per_image
        self.reduction = reduction

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """KL(teacher || student) of (N, C, *S) student logits against the teacher's (N, C, *S).

        Args:
            student_logits: (N, C, *S) logits of the student.
            teacher_logits: (N, C, *S) logits of the teacher (detached).
            mask: optional (N, *S) bool, pixels that count. Default all.

        Returns:
            A scalar, or the (N, *S) (multiclass) or (N, C, *S) map for ``reduction="none"``.
        """
        return kd_loss(
            student_logits, teacher_logits, self.mode, self.temperature, mask, self.per_image, self.reduction
        )


def cwd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Channel-wise distillation (Shu et al., 2021): per channel, KL of the spatial distributions times T^2.

    Each channel of each image is a distribution over the positions::

        phi(z)_{c,i} = exp(z_{c,i} / T) / sum_j exp(z_{c,j} / T)      (softmax over positions i)
        l_{n,c}      = T^2 * sum_i phi(t)_{c,i} (log phi(t)_{c,i} - log phi(s)_{c,i})

    ``mean`` divides the sum over images and channels by N * C, as the paper's (and mmrazor's
    ``ChannelWiseDivergence``) normalisation. The positions outside ``mask`` take no part: they are
    left out of both softmaxes and of the sum. An image without any position in ``mask`` gives 0
    with zero gradient and is left out of the mean (an all-empty batch gives 0). The loss is the
    same in every mode: it reads the channels as maps, whatever activation the model uses.

    Args:
        student_logits: (N, C, *S) logits of the student.
        teacher_logits: (N, C, *S) logits of the teacher (detached).
        temperature: T > 0. Default 1.
        mask: optional (N, *S) bool, positions that count. Default all.
        reduction: "mean" (default), "sum", or "none": the (N, C) per-image, per-channel values.

    Raises:
        ValueError: shapes that differ, a mask of another shape, T <= 0, an unknown reduction.

    Example:
        >>> cwd_loss(torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), temperature=4.0)
    """
    name = "cwd_loss"
    check_reduction(reduction, name)
    check_logits(student_logits, MULTICLASS_MODE, name)
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.shape != student_logits.shape:
        got = getattr(teacher_logits, "shape", type(teacher_logits).__name__)
        raise ValueError(
            f"{name}: teacher logits {tuple(got)} must have the student's shape {tuple(student_logits.shape)}"
        )
    temperature = number(temperature, "temperature", name, 0.0, above=True)
    with no_autocast(student_logits.device):
        dtype = compute_dtype(student_logits)
        n, c = student_logits.shape[:2]
        m = math.prod(student_logits.shape[2:])
        s = student_logits.to(dtype).reshape(n, c, m) / temperature
        t = teacher_logits.detach().to(dtype).reshape(n, c, m) / temperature
        keep = torch.ones((n, 1, m), dtype=torch.bool, device=s.device)
        if mask is not None:
            if tuple(mask.shape) != (n, *student_logits.shape[2:]):
                raise ValueError(
                    f"{name}: mask shape {tuple(mask.shape)} must be (N, *S) = {(n, *student_logits.shape[2:])}"
                )
            keep = mask.reshape(n, 1, m).to(torch.bool)
        # left-out positions: -inf before the softmax (probability 0), then 0 in the sum
        low = torch.finfo(dtype).min
        log_q = F.log_softmax(t.masked_fill(~keep, low), dim=2)
        log_p = F.log_softmax(s.masked_fill(~keep, low), dim=2)
        terms = torch.where(keep, log_q.exp() * (log_q - log_p), torch.zeros((), dtype=dtype, device=s.device))
        per_channel = terms.sum(2) * temperature**2  # (N, C)
        counted = keep.any(2).to(dtype).expand(n, c)  # images with at least one position
        per_channel = per_channel * counted
        if reduction == "none":
            return per_channel
        if reduction == "sum":
            return per_channel.sum()
        return per_channel.sum() / counted.sum().clamp_min(1.0)


class CWDLoss(nn.Module):
    """Module form of :func:`cwd_loss`: ``forward(student_logits, teacher_logits, mask=None)``.

    Example:
        >>> loss = CWDLoss(temperature=4.0)
        >>> value = loss(torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8))
    """

    def __init__(self, temperature: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        check_reduction(reduction, "CWDLoss")
        self.temperature = number(temperature, "temperature", "CWDLoss", 0.0, above=True)
        self.reduction = reduction

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Channel-wise distillation of (N, C, *S) student logits against the teacher's (N, C, *S).

        Args:
            student_logits: (N, C, *S) logits of the student.
            teacher_logits: (N, C, *S) logits of the teacher (detached).
            mask: optional (N, *S) bool, positions that count. Default all.

        Returns:
            A scalar, or the (N, C) values for ``reduction="none"``.
        """
        return cwd_loss(student_logits, teacher_logits, self.temperature, mask, self.reduction)
