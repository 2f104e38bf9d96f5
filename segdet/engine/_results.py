"""results.csv (rewritten atomically every epoch) and the results.png curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from segdet._atomic import atomic_write_bytes, atomic_write_text


class ResultsLog:
    """Rows of per-epoch numbers, kept in memory and rewritten to ``path`` via a temp file + rename.

    Args:
        path: the CSV file.
        keep_until: when resuming, rows of epochs up to this one (1-based) are kept from an existing
            file; later rows (written before a crash, after the checkpoint) are dropped.
    """

    def __init__(self, path: Path, keep_until: int = 0) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        if keep_until and self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= keep_until]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_text(self.path, buf.getvalue())


def plot_results(csv_path: Path, png_path: Path) -> Path | None:
    """One panel per numeric column of ``csv_path`` against the epoch; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]
    series = {}
    for key in rows[0]:
        if key in ("epoch", "time_s"):
            continue
        try:
            series[key] = [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]
        except ValueError:
            continue
    n = max(len(series), 1)
    cols = min(4, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, (key, values) in zip(axes.flat, series.items()):
        ax.plot(epochs, values, marker=".")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.9, wspace=0.35, hspace=0.6)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(png_path, png.getvalue())
