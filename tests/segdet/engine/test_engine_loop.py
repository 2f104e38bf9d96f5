"""The training loop on a tiny fake task: schedules, EMA, accumulation, clipping, NaN stop, logs."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from engine_fake_task import FakeTask, fake_config
from torch import nn

from segdet.checkpoint import load_checkpoint
from segdet.engine import LRFactor, ModelEMA, NonFiniteLossError, build_scheduler, train


def _reference_cosine(it, total, warmup, m):
    if it < warmup:
        return (it + 1) / warmup
    t = (it - warmup) / (total - warmup)
    return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * t))


def test_cosine_with_warmup_matches_formula_and_reaches_min():
    f = LRFactor("cosine", total=20, warmup=4, min_lr_ratio=0.1)
    for it in range(21):
        assert f(it) == pytest.approx(_reference_cosine(min(it, 20), 20, 4, 0.1))
    assert f(3) == 1.0 and f(20) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["poly", "onecycle", "constant"])
def test_schedules_warm_up_linearly_and_never_increase_after(name):
    f = LRFactor(name, total=30, warmup=5, min_lr_ratio=0.0)
    values = [f(i) for i in range(30)]
    assert all(b >= a for a, b in zip(values[:5], values[1:5]))
    assert all(b <= a + 1e-12 for a, b in zip(values[5:], values[6:]))
    assert max(values) == pytest.approx(1.0)


def test_scheduler_steps_per_iteration():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, {"name": "constant", "warmup_epochs": 1.0}, epochs=2, steps_per_epoch=4)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(5):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_warmup_longer_than_the_run_is_cut_with_one_warning_giving_both_lengths():
    import warnings

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = {"name": "constant", "warmup_epochs": 3.0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched = build_scheduler(opt, schedule, epochs=2, steps_per_epoch=4)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1
    assert "schedule.warmup_epochs = 3 (12 optimizer steps)" in msgs[0] and "(train.epochs = 2, 8 steps)" in msgs[0]
    assert "cut to 7 steps" in msgs[0]
    factors = [sched.lr_lambdas[0](i) for i in range(8)]
    assert factors == pytest.approx([(i + 1) / 7 for i in range(7)] + [1.0])  # what the warning says happens
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warmup shorter than the run: nothing to say
        build_scheduler(opt, {**schedule, "warmup_epochs": 1.5}, epochs=2, steps_per_epoch=4)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_half_precision_asked_for_on_cpu_warns_and_runs_fp32(amp):
    import warnings

    from segdet.engine._runtime import select_amp

    with pytest.warns(UserWarning, match=rf"train\.amp is {amp} but the device is cpu: .* full precision \(fp32\)"):
        assert select_amp(amp, torch.device("cpu")) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_amp("auto", torch.device("cpu")) is None and select_amp("none", torch.device("cpu")) is None


def test_ema_matches_naive_average():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9)
    ref = {k: v.clone().float() for k, v in model.state_dict().items()}
    for n in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].num_batches_tracked += 1
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in model.state_dict().items():
            ref[k] = d * ref[k] + (1 - d) * v.float() if v.dtype.is_floating_point else v.clone()
    for k, v in ema.module.state_dict().items():
        torch.testing.assert_close(v.float(), ref[k].float())


def test_train_writes_run_folder_and_improves(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=3, ema=None)
    run = train(cfg, task=FakeTask(cfg))
    assert (run / "config.yaml").is_file() and (run / "results.png").is_file()
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"loss", "train/ce", "lr", "acc"} <= set(rows[0])
    last, best = load_checkpoint(run / "weights/last.pt"), load_checkpoint(run / "weights/best.pt")
    assert last["epoch"] == 3 and last["best_metric"] == pytest.approx(max(float(r["acc"]) for r in rows))
    assert best["best_metric"] == last["best_metric"]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    # a second run into the same output_dir never overwrites the first
    run2 = train(cfg, task=FakeTask(cfg))
    assert run2 == run.with_name("run-2")


def test_accumulation_of_two_half_batches_equals_one_full_batch(tmp_path):
    torch.manual_seed(0)
    full = fake_config(tmp_path / "a", epochs=1, ema=None, accumulate=1)
    full["data"]["batch_size"] = 8
    half = fake_config(tmp_path / "b", epochs=1, ema=None, accumulate=2)
    half["data"]["batch_size"] = 4
    for cfg in (full, half):  # dropout and batchnorm differ per batch size: switch them off
        cfg["schedule"]["warmup_epochs"] = 0.0
        cfg["schedule"]["name"] = "constant"
    a = _train_no_bn(full, tmp_path)
    b = _train_no_bn(half, tmp_path)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


class _NoBNTask(FakeTask):
    def build_model(self, spec=None):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))


def _train_no_bn(cfg, tmp_path):
    cfg["optim"]["name"] = "sgd"
    cfg["optim"]["weight_decay"] = 0.0
    run = train(cfg, task=_NoBNTask(cfg))
    return load_checkpoint(run / "weights/last.pt")["model"]


def test_gradient_clipping_limits_the_update(tmp_path):
    cfg = fake_config(tmp_path / "c", epochs=1, ema=None, clip_grad_norm=1e-6)
    cfg["optim"].update(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0)
    cfg["schedule"].update(name="constant", warmup_epochs=0.0)
    task = _NoBNTask(cfg)
    before = task.build_model().state_dict()
    after = load_checkpoint(train(cfg, task=task) / "weights/last.pt")["model"]
    # 4 steps (16 samples / batch 4), each moving the weights by at most lr * 1e-6 in total norm
    delta = torch.cat([(after[k] - before[k]).flatten() for k in before]).norm()
    assert 0 < delta <= 4e-6 * 1.001


def test_non_finite_loss_names_step_and_last_good_checkpoint(tmp_path):
    cfg = fake_config(tmp_path / "n", epochs=3)
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, task=FakeTask(cfg, nan_at_call=6))  # 4 steps per epoch: epoch 2, step 2
    msg = str(err.value)
    assert "epoch 2, step 2" in msg and "nan" in msg
    assert str(tmp_path / "n" / "weights" / "last.pt") in msg and "clip_grad_norm" in msg
    assert load_checkpoint(tmp_path / "n/weights/last.pt")["epoch"] == 1


def test_non_finite_loss_before_any_checkpoint(tmp_path):
    cfg = fake_config(tmp_path / "n0", epochs=1)
    with pytest.raises(NonFiniteLossError, match="no checkpoint written yet"):
        train(cfg, task=FakeTask(cfg, nan_at_call=1))


def test_unknown_metric_is_a_clear_error(tmp_path):
    cfg = fake_config(tmp_path / "m", epochs=1, metric="miou")
    with pytest.raises(ValueError, match="train.metric 'miou'.*acc"):
        train(cfg, task=FakeTask(cfg))


def test_early_stopping_with_patience(tmp_path):
    cfg = fake_config(tmp_path / "p", epochs=6, patience=1)
    cfg["optim"]["lr"] = 0.0  # nothing improves after the first epoch
    run = train(cfg, task=FakeTask(cfg))
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert len(rows) == 2


def test_resume_notes_config_changes(tmp_path, capsys):
    cfg = fake_config(tmp_path / "r", epochs=1)
    run = train(cfg, task=FakeTask(cfg))
    more = fake_config(tmp_path / "r", epochs=2, patience=3)
    train(more, resume=run / "weights" / "last.pt", task=FakeTask(more))
    out = capsys.readouterr().out
    assert "differs from the checkpoint's in train.epochs, train.patience;" in out
