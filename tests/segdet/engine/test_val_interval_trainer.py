"""train.val_interval: which epochs are validated, what best.pt holds, what patience counts, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from engine_fake_task import AccuracyEvaluator, FakeTask, fake_config

from segdet.checkpoint import load_checkpoint
from segdet.config import ConfigError, validate_config
from segdet.engine import train
from segdet.engine.trainer import is_validation_epoch


class _ScriptedEvaluator(AccuracyEvaluator):
    """Returns the next score of a script at every validation and records the model it was given."""

    def __init__(self, device, script: list[float], seen: list) -> None:
        super().__init__(device)
        self.script, self.seen = script, seen

    def update(self, model, batch) -> None:
        super().update(model, batch)
        self.model = model

    def compute(self) -> dict[str, float]:
        score = self.script[len(self.seen)]
        self.seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return {"acc": score}


class _ScriptedTask(FakeTask):
    def __init__(self, cfg, script: list[float]) -> None:
        super().__init__(cfg)
        self.script, self.seen = script, []

    def make_evaluator(self, spec, device):
        return _ScriptedEvaluator(device, self.script, self.seen)


def _rows(run) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(("epochs", "interval"), [(10, 4), (5, 1), (6, 3), (3, 7), (1, 1)])
def test_is_validation_epoch_matches_a_naive_listing(epochs, interval):
    expected = sorted({e for e in range(interval, epochs + 1, interval)} | {epochs})
    assert [e + 1 for e in range(epochs) if is_validation_epoch(e, epochs, interval)] == expected


def test_only_every_interval_and_the_last_epoch_are_validated(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=5, val_interval=2, ema=None)
    task = _ScriptedTask(cfg, [0.5, 0.6, 0.7])
    run = train(cfg, task=task)
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]  # last.pt and a row after every epoch
    assert [r["acc"] for r in rows] == ["", "0.5", "", "0.6", "0.7"]
    assert len(task.seen) == 3
    assert load_checkpoint(run / "weights/last.pt")["epoch"] == 5


def test_best_pt_is_the_best_validated_epoch(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=7, val_interval=3, ema=None)
    task = _ScriptedTask(cfg, [0.2, 0.9, 0.4])  # epochs 3, 6 and 7
    run = train(cfg, task=task)
    best, last = load_checkpoint(run / "weights/best.pt"), load_checkpoint(run / "weights/last.pt")
    assert best["epoch"] == 6 and best["best_metric"] == pytest.approx(0.9)
    assert last["epoch"] == 7 and last["best_metric"] == pytest.approx(0.9)
    # best.pt holds the weights that were scored 0.9 (the second validation), not a later epoch's
    for k, v in best["model"].items():
        torch.testing.assert_close(v, task.seen[1][k])


def test_validation_scores_the_ema_weights(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=4, val_interval=2, ema=0.9)
    task = _ScriptedTask(cfg, [0.3, 0.5])
    run = train(cfg, task=task)
    last = load_checkpoint(run / "weights/last.pt")
    for k, v in last["ema"].items():  # the last validation saw the EMA weights of epoch 4
        torch.testing.assert_close(v, task.seen[-1][k])
    assert any(not torch.equal(v, last["model"][k]) for k, v in last["ema"].items() if v.dtype.is_floating_point)


def test_patience_counts_validations_not_epochs(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=20, val_interval=2, patience=2, ema=None)
    task = _ScriptedTask(cfg, [0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    run = train(cfg, task=task)
    # validations at epochs 2 (best), 4 (stale 1), 6 (stale 2): stop after epoch 6, not after epoch 4
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2, 3, 4, 5, 6]
    assert len(task.seen) == 3
    assert load_checkpoint(run / "weights/last.pt")["stale_epochs"] == 2


def test_crash_then_resume_with_an_interval_equals_uninterrupted(tmp_path):
    cfg = fake_config(tmp_path / "full", epochs=5, val_interval=2)
    full_task = FakeTask(cfg)
    full = load_checkpoint(train(cfg, task=full_task) / "weights/last.pt")

    cfg2 = fake_config(tmp_path / "crashed", epochs=5, val_interval=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg2, task=FakeTask(cfg2, fail_at_call=14))  # 4 steps per epoch: dies in epoch 4
    last = tmp_path / "crashed" / "weights" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 3  # epoch 3 was not validated but was saved
    resumed = load_checkpoint(train(cfg2, resume=last, task=FakeTask(cfg2)) / "weights/last.pt")
    for part in ("model", "ema"):
        for k in full[part]:
            torch.testing.assert_close(full[part][k], resumed[part][k], atol=1e-6, rtol=0)
    assert full["best_metric"] == pytest.approx(resumed["best_metric"])
    assert full["stale_epochs"] == resumed["stale_epochs"]
    rows = _rows(tmp_path / "crashed")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r["acc"] == "" for r in rows] == [True, False, True, False, False]
    best = load_checkpoint(tmp_path / "crashed" / "weights/best.pt")
    assert best["epoch"] in (2, 4, 5) and best["best_metric"] == pytest.approx(full["best_metric"])


def test_val_interval_must_be_positive():
    with pytest.raises(ConfigError, match=r"train.val_interval = 0 must be >= 1"):
        validate_config({"train": {"val_interval": 0}})


def test_no_validation_trains_every_epoch_and_best_is_the_last(tmp_path):
    from segdet.cli import main

    config = Path(__file__).resolve().parents[3] / "configs" / "unet_cutmix.yaml"
    out = tmp_path / "run"
    tiny = ["data.synthetic.train_size=4", "data.synthetic.val_size=2", "data.synthetic.height=32"]
    tiny += ["data.synthetic.width=32", "data.batch_size=2", "data.num_workers=0", "model.encoder=resnet18"]
    args = ["train", str(config), f"output_dir={out}", *tiny, "train.epochs=2", "train.val_interval=null"]
    assert main([*args, "train.progress=false", "train.device=cpu"]) == 0
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "miou" not in rows[0]  # two epochs, no metric column: never validated
    best, last = load_checkpoint(out / "weights" / "best.pt"), load_checkpoint(out / "weights" / "last.pt")
    assert best["epoch"] == last["epoch"] == 2
    for key, value in last["model"].items():
        assert (best["model"][key] == value).all()
    assert main([*args, "train.patience=3"]) == 2  # patience counts validations: refused without any
