"""Fault injection: SIGKILL a tiny training run at random steps, resume it, and check the final weights bit for bit.

Each trial starts the tiny run of ``tests/segdet/engine/engine_fake_task.py`` (a 3x16x16 noise
segmentation, a two-layer network, AdamW, cosine schedule with warmup, EMA, dropout, and a dataset
that draws its flips from numpy's *global* generator) in a subprocess with ``deterministic: true``
on the CPU, kills it with SIGKILL at a random loss call (any batch of any epoch, mid-epoch ones
included), and resumes from ``weights/last.pt`` (a fresh start when the kill came before the first
checkpoint) until the run ends. The final ``last.pt`` must equal the uninterrupted run's: model,
EMA and optimizer tensors with ``torch.equal``, the schedule position and the best metric exactly,
and ``results.csv`` row for row (timing columns aside). Trials alternate between 0 and 2 loader
workers and draw ``train.checkpoint_every`` from {1, 2, 3} and ``train.accumulate`` from {1, 2}.

Usage::

    python benchmarks/fault_injection.py                 # 10 kills, seed 0
    python benchmarks/fault_injection.py --kills 50 --seed 3

Exit status 0 when every trial ended identical; the last line says how many did.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "segdet" / "engine" / "engine_fake_task.py"
EPOCHS = 3
BATCHES_PER_EPOCH = 4  # 16 samples, batch size 4
TIMING = {"time_s", "images_per_s", "data_wait"}


def _env(workers: int, every: int, accumulate: int, kill_at: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "FAKE_THREADS": "1",
        "FAKE_WORKERS": str(workers),
        "FAKE_CHECKPOINT_EVERY": str(every),
        "FAKE_ACCUMULATE": str(accumulate),
        "FAKE_KILL_AT": str(kill_at),
        "PYTHONPATH": os.pathsep.join([str(SCRIPT.parent), str(ROOT)]),
    }


def _run(out: Path, env: dict[str, str], resume: Path | None = None) -> int:
    args = [sys.executable, str(SCRIPT), str(out), str(EPOCHS)] + ([str(resume)] if resume else [])
    proc = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"run {out} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return proc.returncode


def _rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two final checkpoints (empty: bit-identical)."""
    import torch

    out = []
    for part in ("model", "ema"):
        out += [f"{part}.{k}" for k in a[part] if not torch.equal(a[part][k], b[part][k])]
    for i, state in a["optimizer"]["state"].items():
        out += [f"optimizer.{i}.{k}" for k, v in state.items() if not torch.equal(v, b["optimizer"]["state"][i][k])]
    for key in ("epoch", "best_metric"):
        if a[key] != b[key]:
            out.append(key)
    if a["scheduler"]["last_epoch"] != b["scheduler"]["last_epoch"]:
        out.append("scheduler.last_epoch")
    return out


def trial(folder: Path, kill_at: int, workers: int, every: int, accumulate: int, reference: Path) -> list[str]:
    """Kill a run at loss call ``kill_at``, resume it to the end; what differs from ``reference`` (run folder)."""
    from segdet.checkpoint import load_checkpoint

    out = folder / "killed"
    code = _run(out, _env(workers, every, accumulate, kill_at))
    if code != -signal.SIGKILL:
        return [f"the run was not killed (exit {code})"]
    last = out / "weights" / "last.pt"
    _run(out, _env(workers, every, accumulate), resume=last if last.exists() else None)
    found = differences(load_checkpoint(reference / "weights" / "last.pt"), load_checkpoint(last))
    if _rows(reference) != _rows(out):
        found.append("results.csv")
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the trials; exit status 0 when all ended bit-identical."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="trials, one SIGKILL each (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill steps and settings")
    parser.add_argument("--workers", type=int, nargs="*", default=[0, 2], help="loader workers, alternated")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        references: dict[tuple[int, int, int], Path] = {}
        for n in range(args.kills):
            workers = args.workers[n % len(args.workers)]
            every, accumulate = rng.choice([1, 2, 3]), rng.choice([1, 2])
            kill_at = rng.randint(1, EPOCHS * BATCHES_PER_EPOCH)
            key = (workers, every, accumulate)
            if key not in references:
                references[key] = Path(tmp) / f"reference-{workers}-{every}-{accumulate}"
                _run(references[key], _env(workers, every, accumulate))
            found = trial(Path(tmp) / f"trial-{n}", kill_at, workers, every, accumulate, references[key])
            failed += bool(found)
            verdict = "identical" if not found else f"DIFFERS in {', '.join(found[:5])}"
            print(
                f"kill {n + 1}: SIGKILL at batch {kill_at} of {EPOCHS * BATCHES_PER_EPOCH} "
                f"(workers {workers}, checkpoint_every {every}, accumulate {accumulate}): {verdict}",
                flush=True,
            )
    print(f"{args.kills - failed}/{args.kills} killed runs resumed to bit-identical weights")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
