"""Checkpoints inside an epoch: a run stopped at any step and resumed ends bit-identical to one never stopped."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fake_task import FakeTask, NoiseSegmentation, fake_config

import segdet.engine.trainer as trainer_module
from segdet.checkpoint import load_checkpoint
from segdet.engine import NonFiniteLossError, TrainingInterrupted, train
from segdet.engine.loader import UnreadableSampleError

#: results.csv columns that measure time, not training
_TIMING = {"time_s", "images_per_s", "data_wait"}


def _config(out: Path, workers: int = 0, **train_cfg):
    cfg = fake_config(out, **{"epochs": 2, "checkpoint_every": 1, **train_cfg})
    cfg["data"]["num_workers"] = workers
    return cfg


def _rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in _TIMING} for row in csv.DictReader(f)]


def _assert_identical(a: dict, b: dict) -> None:
    """Bit-identical weights, EMA weights, optimizer moments and schedule position."""
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    for i, state in a["optimizer"]["state"].items():
        other = b["optimizer"]["state"][i]
        assert all(torch.equal(state[k], other[k]) for k in state), f"optimizer state {i} differs"
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert a["best_metric"] == b["best_metric"]


class MixingTask(FakeTask):
    batch_mixable = True  # its batches are segmentation batches (image, mask)


@pytest.mark.parametrize(
    ("workers", "accumulate", "fail_at", "batch_mix"),
    [(0, 1, 7, []), (2, 2, 7, []), (0, 1, 6, [{"CutMix": {"p": 1.0}}, {"MixUp": {"p": 0.5}}])],
    ids=["no-workers", "workers-accumulate", "batch-mix"],
)
def test_crash_inside_an_epoch_then_resume_is_bit_identical(tmp_path, workers, accumulate, fail_at, batch_mix):
    cfg = _config(tmp_path / "full", workers, accumulate=accumulate)
    cfg["augment"]["batch_mix"] = batch_mix
    full = load_checkpoint(train(cfg, task=MixingTask(cfg)) / "weights/last.pt")

    cfg2 = _config(tmp_path / "crashed", workers, accumulate=accumulate)
    cfg2["augment"]["batch_mix"] = batch_mix
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg2, task=MixingTask(cfg2, fail_at_call=fail_at))  # 4 batches per epoch: inside epoch 2
    last = tmp_path / "crashed/weights/last.pt"
    written = load_checkpoint(last)
    assert written["epoch"] == 1 and written["position"]["batch"] == (fail_at - 5) // accumulate * accumulate
    torch.manual_seed(999)  # the global generators must not matter: the checkpoint restores them
    np.random.seed(999)
    resumed = load_checkpoint(train(cfg2, resume=last, task=MixingTask(cfg2)) / "weights/last.pt")
    _assert_identical(full, resumed)
    assert resumed["position"] is None and resumed["epoch"] == 2
    assert _rows(tmp_path / "full") == _rows(tmp_path / "crashed")  # the partial epoch's running loss too


def test_checkpoint_every_counts_optimizer_steps(tmp_path, monkeypatch):
    cfg = _config(tmp_path / "run", epochs=2, checkpoint_every=3)  # 4 steps per epoch
    written = []
    original = trainer_module.save_checkpoint

    def spy(state, path):
        written.append((state["epoch"], state["position"] and state["position"]["batch"]))
        return original(state, path)

    monkeypatch.setattr(trainer_module, "save_checkpoint", spy)
    train(cfg, task=FakeTask(cfg))
    assert written == [(0, 3), (1, None), (1, 3), (2, None)]  # step 3 of each epoch, and each epoch end


def test_ctrl_c_finishes_the_step_saves_its_position_and_resumes_bit_identical(tmp_path):
    cfg = _config(tmp_path / "full", checkpoint_every=None)
    full = load_checkpoint(train(cfg, task=FakeTask(cfg)) / "weights/last.pt")

    class CtrlC(FakeTask):
        def loss(self, model, batch):
            if self.calls == 5:  # during the second batch of epoch 2
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss(model, batch)

    cfg2 = _config(tmp_path / "int", checkpoint_every=None)
    with pytest.raises(TrainingInterrupted) as err:
        train(cfg2, task=CtrlC(cfg2))
    ckpt = load_checkpoint(err.value.checkpoint)
    assert ckpt["interrupted"] is True and ckpt["epoch"] == 1 and ckpt["position"]["batch"] == 2
    assert ckpt["scheduler"]["last_epoch"] == 6  # the step it came in was finished: 4 + 2
    resumed = load_checkpoint(train(cfg2, resume=err.value.checkpoint, task=FakeTask(cfg2)) / "weights/last.pt")
    _assert_identical(full, resumed)  # 8 steps in all, not 10
    assert _rows(tmp_path / "full") == _rows(tmp_path / "int")


def test_the_loss_is_read_back_only_at_checks_and_a_nan_is_still_caught_before_any_save(tmp_path, monkeypatch):
    reads = []
    original = trainer_module._FiniteWatch.check

    def counted(self, epoch):
        reads.append(epoch)
        return original(self, epoch)

    monkeypatch.setattr(trainer_module._FiniteWatch, "check", counted)
    cfg = _config(tmp_path / "quiet", epochs=1, checkpoint_every=None)
    train(cfg, task=FakeTask(cfg))
    assert reads == [0]  # progress off, no mid-epoch checkpoint: one read at the end of the 4-step epoch

    cfg = _config(tmp_path / "nan", epochs=2, checkpoint_every=1)
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, task=FakeTask(cfg, nan_at_call=6))  # epoch 2, batch 2
    assert "at epoch 2, step 2" in str(err.value) and "nan" in str(err.value)
    last = tmp_path / "nan/weights/last.pt"
    assert err.value.checkpoint == last and "epoch 2, step 1" in str(err.value)
    ckpt = load_checkpoint(last)
    assert ckpt["position"]["batch"] == 1  # the checkpoint after the NaN step was never written
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


class _BadFile(NoiseSegmentation):
    """Sample 5 stops being readable from epoch 2 on, like a file truncated while the run goes on."""

    def __getitem__(self, i):
        if i == 5 and self.epoch >= 1:
            try:  # how segdet's sources report it: their own error, raised from Pillow's
                raise OSError("image file is truncated (12 bytes not processed)")
            except OSError as exc:
                raise ValueError("cannot read image file /data/images/0005.png: image file is truncated") from exc
        return super().__getitem__(i)


class BadFileTask(FakeTask):
    def build_datasets(self):
        train_ds, val_ds, spec = super().build_datasets()
        return _BadFile(16, 1), val_ds, spec


@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_sample_stops_with_the_file_and_the_checkpoint(tmp_path, workers):
    cfg = _config(tmp_path / "bad", workers, checkpoint_every=None)
    with pytest.raises(UnreadableSampleError) as err:
        train(cfg, task=BadFileTask(cfg))
    msg = str(err.value)
    assert msg.count("\n") == 0 and "Traceback" not in msg
    assert "training sample 5 is unreadable: cannot read image file /data/images/0005.png" in msg
    assert "data.skip_bad=true" in msg and "(epoch 2)" in msg
    assert err.value.checkpoint == tmp_path / "bad/weights/last.pt"
    assert load_checkpoint(err.value.checkpoint)["epoch"] == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_bad_skips_and_counts_the_sample(tmp_path, workers, capsys):
    cfg = _config(tmp_path / "skip", workers, checkpoint_every=None)
    cfg["data"]["skip_bad"] = True
    train(cfg, task=BadFileTask(cfg))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert "skipped" not in lines[0] and "skipped 1 unreadable samples" in lines[1]


class _BadOption(NoiseSegmentation):
    def __getitem__(self, i):
        if i == 5:
            raise ValueError("crop size (32, 32) is larger than the image (16, 16)")  # a bad option, not a bad file
        return super().__getitem__(i)


class BadOptionTask(FakeTask):
    def build_datasets(self):
        train_ds, val_ds, spec = super().build_datasets()
        return _BadOption(16, 1), val_ds, spec


def test_an_error_that_is_not_a_bad_file_is_neither_disguised_nor_skipped(tmp_path):
    cfg = _config(tmp_path / "opt", 0, checkpoint_every=None)
    cfg["data"]["skip_bad"] = True
    with pytest.raises(ValueError, match=r"^crop size \(32, 32\) is larger") as err:
        train(cfg, task=BadOptionTask(cfg))
    assert not isinstance(err.value, UnreadableSampleError)


def test_resume_inside_an_epoch_with_other_data_or_batch_size_stops(tmp_path):
    cfg = _config(tmp_path / "run")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, task=FakeTask(cfg, fail_at_call=6))
    last = tmp_path / "run/weights/last.pt"
    cfg["data"]["batch_size"] = 2
    with pytest.raises(ValueError, match=r"inside an epoch of 16 training samples in batches of 4, but this run has "
                                         r"16 in batches of 2: the epoch's order would differ"):  # fmt: skip
        train(cfg, resume=last, task=FakeTask(cfg))
