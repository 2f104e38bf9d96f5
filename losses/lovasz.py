"""Lovász losses (Berman et al., 2018): convex surrogates of the Jaccard loss.

For one term (a class, in one image or in the whole batch), with errors e_j sorted in
decreasing order and g the target sorted the same way:

    J_k  = 1 - (G - sum_{i<=k} g_i) / (G + sum_{i<=k} (1 - g_i) v_i),   G = sum_i g_i
    L    = sum_k f(e_k) (J_k - J_{k-1})

Binary and multilabel (hinge): e = 1 - x (2 t - 1) on the logits and f = relu, one term per
channel. Multiclass (softmax): e = |t - p| on the probabilities and f = identity, one term per
class. Ignored pixels (v = 0) change neither sum, so they add nothing; soft targets enter g as
fractions (for hard targets this is exactly Berman's algorithm). Empty masks: a hinge term with
an empty target scores relu of the largest error, i.e. it penalises any positive logit; in
multiclass only the classes present in the target count (``only_present``, as in the paper and
smp), an image without any present class scores 0, and every pixel ignored gives 0 with zero
gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_mode, check_reduction, class_weight_vector, nonfinite_guard
from ._layout import poisoned, prepare
from ._options import check_class_options
from ._precision import no_autocast
from ._reduce import mean0
from .constants import MULTICLASS_MODE


def _lovasz_terms(err, gt, v, hinge: bool):
    """Lovász extension of the Jaccard loss for each row of (R, M) errors; v may be None."""
    err_sorted, perm = torch.sort(err, dim=-1, descending=True)
    with torch.no_grad():
        g = gt.gather(-1, perm)
        total = g.sum(-1, keepdim=True)
        inter = total - g.cumsum(-1)
        neg = 1 - g
        if v is not None:
            neg.mul_(v.gather(-1, perm))
        union = neg.cumsum_(-1).add_(total)
        del neg, g
        if v is None:  # union >= 1 - g_0 + ... > 0 whenever no pixel is left out
            jac = inter.div_(union).neg_().add_(1.0)
        else:  # a prefix of left-out pixels has union 0: J = 0 there
            ok = union > 0
            jac = torch.where(ok, 1 - inter / torch.where(ok, union, 1.0), 0.0)
        del inter, union
        grad = jac.clone()
        grad[:, 1:] -= jac[:, :-1]
        del jac
    f = torch.relu(err_sorted) if hinge else err_sorted
    return torch.bmm(f.unsqueeze(1), grad.unsqueeze(2)).reshape(-1)


def lovasz_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    per_image: bool = False,
    only_present: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    ignore_index: int | None = None,
    from_logits: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """Lovász hinge (binary, multilabel) or Lovász-softmax (multiclass) loss.

    Args:
        logits: (N, C, *S) logits (probabilities for multiclass if ``from_logits`` is False;
            the hinge always works on logits).
        target: hard or soft target (see ``losses.constants``).
        mode: "binary", "multilabel" (one hinge term per channel) or "multiclass".
        per_image: one term per image and class, averaged per image and then over images.
            Default False (the batch is one big image).
        only_present: multiclass only: average over the classes present in the target.
            Default True.
        classes: classes that count. Default all.
        class_weights: (C,) weights of the class average. Default equal.
        ignore_index: target value to leave out. Default None.
        from_logits: multiclass: apply softmax first. Default True.
        reduction: "mean" (default), "sum", or "none": the terms, (C,) or (N, C).

    Example:
        >>> lovasz_loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 8, 8)), "binary")
    """
    name = "lovasz_loss"
    check_mode(mode, name)
    check_reduction(reduction, name)
    check_class_options(mode, classes, class_weights, name)
    with no_autocast(logits.device):
        p = prepare(logits, target, mode, ignore_index, name)
        n, c, m = p.x.shape
        hinge = mode != MULTICLASS_MODE
        if not hinge:
            prob = torch.softmax(p.x, dim=1) if from_logits else p.x
        if per_image:
            rows = lambda a: a  # noqa: E731  (N, P): one row per image
        else:
            rows = lambda a: a.reshape(1, n * m)  # noqa: E731  one row for the batch
        terms, present = [], []
        for k in range(c):
            if p.idx is not None:
                tk = (p.idx == k).to(p.x.dtype)
                if p.v is not None:
                    tk = tk * p.v[:, 0]
            else:
                tk = p.t[:, k]
            vk = None if p.v is None else p.v[:, 0 if p.v.shape[1] == 1 else k]
            if hinge:
                err = 1 - p.x[:, k] * (2 * tk - 1)
            else:
                qk = prob[:, k] if vk is None or p.v_mask else prob[:, k] * vk
                err = (tk - qk).abs()
            terms.append(_lovasz_terms(rows(err), rows(tk), None if vk is None else rows(vk), hinge))
            present.append(rows(tk).sum(-1) > 0)
        terms = torch.stack(terms, -1)  # (N, C) or (1, C)
        guard = nonfinite_guard(p.x)  # relu and sort can turn an infinite logit into a finite term
        if guard is not None:
            terms = terms + guard
        present = torch.stack(present, -1)
        if not per_image:
            terms, present = terms[0], present[0]
        if reduction == "none":
            return poisoned(terms, p)
        w = class_weight_vector(classes, class_weights, c, p.x.device, p.x.dtype, name)
        w = torch.ones(c, dtype=p.x.dtype, device=p.x.device) if w is None else w
        w = w.expand_as(terms)
        if not hinge and only_present:
            w = w * present.to(w.dtype)
        weighted = terms * w
        if reduction == "sum":
            return poisoned(weighted.sum(), p)
        tiny = torch.finfo(terms.dtype).tiny
        per_scope = weighted.sum(-1) / w.sum(-1).clamp_min(tiny)
        return poisoned(mean0(per_scope), p)


class LovaszLoss(nn.Module):
    """Module form of :func:`lovasz_loss`; stores its options.

    Example:
        >>> loss = LovaszLoss("multiclass", ignore_index=255, per_image=True)
        >>> value = loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """

    def __init__(
        self,
        mode: str,
        per_image: bool = False,
        only_present: bool = True,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        ignore_index: int | None = None,
        from_logits: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_mode(mode, "LovaszLoss")
        check_reduction(reduction, "LovaszLoss")
        self.mode = mode
        self.per_image = per_image
        self.only_present = only_present
        self.classes, self.class_weights = check_class_options(mode, classes, class_weights, "LovaszLoss")
        self.ignore_index = ignore_index
        self.from_logits = from_logits
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Lovász loss of (N, C, *S) logits against the mode's hard or soft target (shapes in ``losses.constants``)."""
        return lovasz_loss(
            logits,
            target,
            self.mode,
            self.per_image,
            self.only_present,
            self.classes,
            self.class_weights,
            self.ignore_index,
            self.from_logits,
            self.reduction,
        )
