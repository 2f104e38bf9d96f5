"""The hand-written smp baseline of the DSB2018 benchmark on a tiny generated dataset."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "baseline_smp.py"


def make_split(root, sizes, rng):
    for i, (h, w) in enumerate(sizes):
        for sub in ("images", "masks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        rgba = rng.integers(0, 255, (h, w, 4), dtype=np.uint8)
        Image.fromarray(rgba, "RGBA").save(root / "images" / f"img{i}.png")
        Image.fromarray(((rng.random((h, w)) < 0.2) * 255).astype(np.uint8)).save(root / "masks" / f"img{i}.png")


def test_baseline_runs_as_a_script_within_its_budget(tmp_path):
    rng = np.random.default_rng(0)
    make_split(tmp_path / "data" / "train", [(40, 56), (48, 48), (36, 60), (64, 40)], rng)
    val_sizes = [(50, 70), (32, 32)]
    make_split(tmp_path / "data" / "val", val_sizes, rng)
    out = tmp_path / "out"
    cmd = [sys.executable, SCRIPT, "--data", tmp_path / "data", "--budget", "4", "--seed", "0"]
    cmd += ["--output", out, "--size", "32", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two threads on a busy shared CPU make step times erratic
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    stats = json.loads((out / "baseline.json").read_text())
    assert stats["steps"] >= 1 and stats["budget_s"] == 4.0, stats
    assert stats["steps"] == stats["planned_steps"] or stats["train_s"] >= 4.0, stats  # the plan or the budget
    assert stats["train_s"] < 4.0 + 30.0, stats  # stops near the budget (generous slack for a loaded machine)
    assert stats["epochs"] == stats["steps"]  # 4 images, batch 8: one batch of 4 per epoch
    for i, (h, w) in enumerate(val_sizes):
        small = np.asarray(Image.open(out / "at32" / f"img{i}.png"))
        full = np.asarray(Image.open(out / "original" / f"img{i}.png"))
        assert small.shape == (32, 32) and full.shape == (h, w)
        assert set(np.unique(small)) <= {0, 1} and set(np.unique(full)) <= {0, 1}


def test_baseline_imports_without_running():
    spec = importlib.util.spec_from_file_location("baseline_smp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.train) and callable(module.predict) and callable(module.main)
