"""Run folders: a fresh one per run, and finding the one to resume."""

from __future__ import annotations

from pathlib import Path


def _has_run(folder: Path) -> bool:
    return (folder / "weights").exists() or (folder / "results.csv").exists()


def new_run_dir(output_dir: str | Path) -> Path:
    """``output_dir`` if it holds no run yet, else the first free ``output_dir-2``, ``-3``, ..."""
    base = Path(output_dir)
    candidate, i = base, 2
    while _has_run(candidate):
        candidate = base.with_name(f"{base.name}-{i}")
        i += 1
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def find_last_checkpoint(output_dir: str | Path) -> Path:
    """The most recently written ``weights/last.pt`` of ``output_dir`` or its ``-N`` siblings.

    Raises:
        FileNotFoundError: no run of ``output_dir`` has a last.pt.
    """
    base = Path(output_dir)
    candidates = [base / "weights" / "last.pt"]
    if base.parent.is_dir():
        candidates += [
            p / "weights" / "last.pt"
            for p in base.parent.glob(f"{base.name}-*")
            if p.name[len(base.name) + 1 :].isdigit()
        ]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise FileNotFoundError(
            f"--resume: no weights/last.pt under {base} (or its -N siblings); give the checkpoint with --resume PATH"
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run folder of ``.../RUN/weights/last.pt`` (the checkpoint's folder otherwise)."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent.parent if checkpoint.parent.name == "weights" else checkpoint.parent
