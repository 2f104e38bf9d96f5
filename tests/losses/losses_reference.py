"""Naive references for the loss tests: one image, one class, one pixel at a time."""

import math

import torch


def onehot_valid(target, c, ignore_index):
    """(N, C, P) one-hot and (N, P) validity from (N, *S) indices, written with loops."""
    n = target.shape[0]
    flat = target.reshape(n, -1)
    oh = torch.zeros(n, c, flat.shape[1], dtype=torch.float64)
    valid = torch.ones(n, flat.shape[1], dtype=torch.float64)
    for i in range(n):
        for j in range(flat.shape[1]):
            y = int(flat[i, j])
            if ignore_index is not None and y == ignore_index:
                valid[i, j] = 0
            else:
                oh[i, y, j] = 1
    return oh, valid


def tversky_terms(prob, t, valid, alpha, beta, smooth, per_image, gamma=1.0):
    """prob, t: (N, C, P); valid: (N, 1 or C, P). Returns (N, C) or (C,) terms, loops."""
    n, c, _ = prob.shape
    scopes = [[i] for i in range(n)] if per_image else [list(range(n))]
    out = torch.zeros(len(scopes), c, dtype=prob.dtype)
    for s, imgs in enumerate(scopes):
        for k in range(c):
            tp = fp = fn = st = 0.0
            for i in imgs:
                vv = valid[i, k if valid.shape[1] > 1 else 0]
                q = prob[i, k] * vv
                tt = t[i, k] * vv
                inter = ((q + tt - (q - tt).abs()) / 2).sum()
                tp = tp + inter
                fp = fp + q.sum() - inter
                fn = fn + tt.sum() - inter
                st = st + tt.sum()
            score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
            loss = (1 - score) ** gamma
            if smooth == 0 and float(st) == 0:
                loss = loss * 0
            out[s, k] = loss
    return out if per_image else out[0]


def bce_mean(x, t, valid):
    """Mean over valid elements of -t log s(x) - (1 - t) log(1 - s(x)), element by element."""
    num, den = 0.0, 0.0
    for xv, tv, vv in zip(x.flatten().tolist(), t.flatten().tolist(), valid.flatten().tolist()):
        if vv == 0:
            continue
        p = 1 / (1 + math.exp(-xv))
        num += -(tv * math.log(p) + (1 - tv) * math.log(1 - p))
        den += 1
    return num / den


def softmax_focal_mean(x, target, gamma, alpha, ignore_index):
    """Mean over valid pixels of -alpha_y (1 - p_y)^gamma log p_y, pixel by pixel."""
    n, c = x.shape[:2]
    p = torch.softmax(x.double(), 1).reshape(n, c, -1)
    flat = target.reshape(n, -1)
    num, den = 0.0, 0
    for i in range(n):
        for j in range(flat.shape[1]):
            y = int(flat[i, j])
            if ignore_index is not None and y == ignore_index:
                continue
            py = float(p[i, y, j])
            a = 1.0 if alpha is None else alpha[y]
            num += -a * (1 - py) ** gamma * math.log(py)
            den += 1
    return num / den


def lovasz_hinge_flat(logits, labels):
    """Berman's Algorithm 1, binary hinge, on one flat vector (valid pixels only)."""
    if labels.numel() == 0:
        return logits.sum() * 0
    signs = 2 * labels - 1
    errors = 1 - logits * signs
    order = sorted(range(len(errors)), key=lambda i: -float(errors[i]))
    gts = float(labels.sum())
    inter, union, prev, total = gts, gts, 0.0, 0.0
    for i in order:
        g = float(labels[i])
        inter -= g
        union += 1 - g
        jac = 1 - inter / union if union > 0 else 0.0
        total = total + max(float(errors[i]), 0.0) * (jac - prev)
        prev = jac
    return total


def tversky_mean64(prob, t, valid, alpha, beta, smooth, per_image):
    """Mean Tversky loss of (N, C, P) float64 ``prob`` and ``t``, ``valid`` (N, 1 or C, P).

    Vectorised (for inputs of millions of pixels) but written from the formula alone: q = prob
    times valid, TP = sum min(q, t), FP = sum q - TP, FN = sum t - TP, in float64 throughout;
    an empty target scores 0 when smooth is 0.
    """
    q, tt = prob * valid, t * valid
    dims = (-1,) if per_image else (0, -1)
    tp = torch.minimum(q, tt).sum(dims)
    sp, st = q.sum(dims), tt.sum(dims)
    score = (tp + smooth) / (tp + alpha * (sp - tp) + beta * (st - tp) + smooth)
    loss = 1 - score
    if smooth == 0:
        loss = torch.where(st > 0, loss, 0.0)
    return loss.mean()
