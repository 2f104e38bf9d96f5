"""Segmentation report files: the printable table, ``metrics.json`` and ``confusion_matrix.png``."""

from __future__ import annotations

import io
import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdet._atomic import atomic_write_bytes

from ._confusion import AVERAGING


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def format_table(classes: Sequence[str], scores: dict[str, Any], ignore_index: int) -> str:
    """Per-class table (name, IoU, Dice, GT pixels, predicted pixels), then the means."""
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
    lines.append(f"pixel accuracy {_fmt(scores['pixel_acc'])} over {int(np.sum(scores['gt_pixels']))} scored pixels")
    lines.extend(textwrap.wrap(f"{AVERAGING} ignore_index = {ignore_index}.", width=100))
    return "\n".join(lines)


def metrics_json(classes: Sequence[str], scores: dict[str, Any], cm: np.ndarray, ignore_index: int) -> bytes:
    """The content of ``metrics.json`` (NaN, i.e. n/a, is written as ``null``)."""
    doc = {
        "averaging": AVERAGING,
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
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def confusion_png(classes: Sequence[str], cm: np.ndarray) -> bytes:
    """Row-normalised confusion matrix (each ground-truth row sums to 1) as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(classes)
    side = min(4.0 + 0.45 * n, 24.0)
    fontsize = 9 if n <= 20 else max(3, int(180 / n))
    fig = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(classes), rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), labels=list(classes), fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("confusion matrix (rows normalised)")
    if n <= 20:
        for t in range(n):
            for p in range(n):
                if norm[t, p] > 0:
                    colour = "white" if norm[t, p] > 0.5 else "black"
                    ax.text(p, t, f"{norm[t, p]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_report(
    out_dir: Path, classes: Sequence[str], scores: dict[str, Any], cm: np.ndarray, ignore_index: int
) -> str:
    """Write ``metrics.json`` and ``confusion_matrix.png`` atomically; return the table."""
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "metrics.json", metrics_json(classes, scores, cm, ignore_index))
    atomic_write_bytes(out_dir / "confusion_matrix.png", confusion_png(classes, cm))
    return format_table(classes, scores, ignore_index)
