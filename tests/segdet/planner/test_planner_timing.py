"""time_candidate runs real steps of a config, its loader workers beside them, and reports every figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from segdet.config import load_config
from segdet.planner.timing import time_candidate

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "unet_cutmix.yaml"
TINY = [
    "data.synthetic.train_size=6",
    "data.synthetic.val_size=2",
    "data.synthetic.height=64",
    "data.synthetic.width=64",
    "data.batch_size=2",
    "model.encoder=resnet18",
    "train.device=cpu",
]


@pytest.mark.parametrize("workers", [0, 1])
def test_every_figure_is_measured_and_the_loader_runs_with_its_workers(workers):
    cfg = load_config(CONFIG, [*TINY, f"data.num_workers={workers}"])
    t = time_candidate(cfg, forward_size=(70, 90), steps=4)  # 6 images, batch 2: the loader restarts once
    assert t.workers == workers and t.device == "cpu"
    for value in (t.step_s, t.forward_px_s, t.checkpoint_s, t.startup_s):
        assert math.isfinite(value) and value > 0
    assert math.isfinite(t.data_s) and t.data_s >= 0
    assert t.step_cost == pytest.approx(t.step_s + t.data_s)  # on a CPU the loader shares the cores
