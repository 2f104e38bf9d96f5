"""Segmentation report files: the printable table, ``metrics.json`` and ``confusion_matrix.png``."""

from __future__ import annotations

import io
import json
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdet._atomic import atomic_write_bytes

from ._confusion import AVERAGING
from ._multilabel import AVERAGING_MULTILABEL

#: the binary mode's line beside :data:`~segdet.segmentation._confusion.AVERAGING`
AVERAGING_BINARY = (
    "Binary: a pixel is the foreground (class 1) where sigmoid(logit) > threshold, and the two classes "
    "are scored as above, so mIoU is the mean over background and foreground."
)


def averaging(mode: str) -> str:
    """How the scores of ``mode`` average, as written in the table and ``metrics.json``."""
    if mode == "multilabel":
        return AVERAGING_MULTILABEL
    if mode == "binary":
        return f"{AVERAGING} {AVERAGING_BINARY}"
    return AVERAGING


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def format_table(
    classes: Sequence[str],
    scores: dict[str, Any],
    ignore_index: int,
    mode: str = "multiclass",
    threshold: float | None = None,
) -> str:
    """Per-class table (name, IoU, Dice, GT pixels, predicted pixels), then the means.

    Binary and multilabel tables name the mode and the threshold the predictions were cut at.
    """
    width = max([len("class"), len("mean"), *(len(name) for name in classes)])
    header = f"{'class':<{width}}  {'IoU':>7}  {'Dice':>7}  {'GT pixels':>12}  {'pred pixels':>12}"
    lines = [header, "-" * len(header)]
    for i, name in enumerate(classes):
        lines.append(
            f"{name:<{width}}  {_fmt(scores['iou'][i]):>7}  {_fmt(scores['dice'][i]):>7}  "
            f"{int(scores['gt_pixels'][i]):>12}  {int(scores['pred_pixels'][i]):>12}"
        )
    lines.append("-" * len(header))
    lines.append(f"{'mean':<{width}}  {_fmt(scores['miou']):>7}  {_fmt(scores['mdice']):>7}")
    if mode == "multilabel":
        lines.append(f"pixel accuracy {_fmt(scores['pixel_acc'])} over the (pixel, class) pairs scored")
    else:
        lines.append(
            f"pixel accuracy {_fmt(scores['pixel_acc'])} over {int(np.sum(scores['gt_pixels']))} scored pixels"
        )
    if threshold is not None:
        lines.append(f"{mode}: predicted where sigmoid(logit) > threshold = {threshold:g}")
    lines.extend(textwrap.wrap(f"{averaging(mode)} ignore_index = {ignore_index}.", width=100))
    return "\n".join(lines)


def metrics_json(
    classes: Sequence[str],
    scores: dict[str, Any],
    cm: np.ndarray,
    ignore_index: int,
    mode: str = "multiclass",
    threshold: float | None = None,
    per_image: Sequence[dict[str, Any]] | None = None,
) -> bytes:
    """The content of ``metrics.json`` (NaN, i.e. n/a, is written as ``null``).

    Binary and multilabel add ``mode`` and ``threshold``; multilabel writes one 2x2 count per
    class (``confusion_matrix.per_class``) instead of the (C, C) matrix. ``per_image`` (the
    evaluator's per-image scores) is written as the list ``per_image``.
    """
    doc: dict[str, Any] = {
        "averaging": averaging(mode),
        "ignore_index": ignore_index,
        "miou": _json_number(scores["miou"]),
        "mdice": _json_number(scores["mdice"]),
        "pixel_acc": _json_number(scores["pixel_acc"]),
        "classes": [
            {
                "name": name,
                "iou": _json_number(scores["iou"][i]),
                "dice": _json_number(scores["dice"][i]),
                "gt_pixels": int(scores["gt_pixels"][i]),
                "pred_pixels": int(scores["pred_pixels"][i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": {
            "rows": "ground truth",
            "columns": "prediction",
            "counts": np.asarray(cm, dtype=np.int64).tolist(),
        },
    }
    if mode != "multiclass":
        doc = {"mode": mode, "threshold": threshold, **doc}
    if mode == "multilabel":
        doc["confusion_matrix"] = {
            "rows": "ground truth: 0 absent, 1 present",
            "columns": "prediction: 0 absent, 1 present",
            "per_class": {name: np.asarray(cm[i], dtype=np.int64).tolist() for i, name in enumerate(classes)},
        }
    if per_image is not None:
        doc["per_image"] = [_json_entry(entry) for entry in per_image]
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _json_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One per-image entry with NaN as ``None`` (nested dicts too)."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if isinstance(value, Mapping):
            out[key] = {k: _json_number(v) for k, v in value.items()}
        elif isinstance(value, float):
            out[key] = _json_number(value)
        else:
            out[key] = value
    return out


def confusion_png(classes: Sequence[str], cm: np.ndarray) -> bytes:
    """Row-normalised confusion matrix (each ground-truth row sums to 1) as PNG bytes.

    A (C, 2, 2) multilabel count is drawn as 2C rows (``name: absent``, ``name: present``)
    against the two predictions, each class's 2x2 count row-normalised.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(cm, dtype=np.float64)
    rows_labels, cols_labels = list(classes), list(classes)
    if cm.ndim == 3:  # multilabel: one 2x2 block per class, stacked
        cm = cm.reshape(-1, 2)
        rows_labels = [f"{name}: {state}" for name in classes for state in ("absent", "present")]
        cols_labels = ["absent", "present"]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n_rows, n_cols = norm.shape
    n = max(n_rows, n_cols)
    side = min(4.0 + 0.45 * n, 24.0)
    fontsize = 9 if n <= 20 else max(3, int(180 / n))
    width = side if n_cols == n_rows else min(4.0 + 0.45 * n_cols, 24.0) + 2.5
    fig = Figure(figsize=(width + 1.5, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    aspect = "equal" if n_cols == n_rows else "auto"
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=aspect)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n_cols), labels=cols_labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n_rows), labels=rows_labels, fontsize=fontsize)
    ax.set_xlabel("predicted class" if n_cols == n_rows else "prediction")
    ax.set_ylabel("ground-truth class" if n_cols == n_rows else "ground truth")
    ax.set_title("confusion matrix (rows normalised)")
    if n <= 20:
        for t in range(n_rows):
            for p in range(n_cols):
                if norm[t, p] > 0:
                    colour = "white" if norm[t, p] > 0.5 else "black"
                    ax.text(p, t, f"{norm[t, p]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_report(
    out_dir: Path,
    classes: Sequence[str],
    scores: dict[str, Any],
    cm: np.ndarray,
    ignore_index: int,
    mode: str = "multiclass",
    threshold: float | None = None,
    per_image: Sequence[dict[str, Any]] | None = None,
) -> str:
    """Write ``metrics.json`` and ``confusion_matrix.png`` atomically; return the table."""
    out_dir = Path(out_dir)
    doc = metrics_json(classes, scores, cm, ignore_index, mode, threshold, per_image)
    atomic_write_bytes(out_dir / "metrics.json", doc)
    atomic_write_bytes(out_dir / "confusion_matrix.png", confusion_png(classes, cm))
    return format_table(classes, scores, ignore_index, mode, threshold)
