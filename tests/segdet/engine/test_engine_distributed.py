"""DDP (two CPU processes, gloo), loader sharding and seeding, batch-level mixing in the loop."""

from __future__ import annotations

import csv
import json
import math
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from segdet.engine.loader import (
    EpochDataset,
    EpochSampler,
    ShardedBatchSampler,
    auto_num_workers,
    make_train_loader,
    make_val_loader,
    set_loader_epoch,
)

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _same(a: dict, b: dict) -> bool:
    """Equal dicts of floats, NaN equal to NaN (a class absent everywhere is NaN)."""
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


# --- two processes ---------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_process_training_and_evaluation_equal_one_process(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))  # the spawned ranks import the worker by name
    from _segdet_ddp_worker import CONFIG, ddp_logs, tiny_overrides, train_then_eval

    from segdet.config import load_config
    from segdet.engine import evaluate

    out = tmp_path / "run"
    # fork: the ranks inherit the imported modules (seconds saved); each sets one thread first
    torch.multiprocessing.start_processes(
        train_then_eval,
        args=(_free_port(), str(out), str(tmp_path / "result")),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    r0, r1 = (torch.load(tmp_path / f"result.{r}", weights_only=False) for r in (0, 1))

    # only rank 0 has a run folder and wrote files; no second run folder appeared
    assert r0["run_dir"] == out and r1["run_dir"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.0", "result.1", "run"]
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    events = [w for w in written if w.startswith("tensorboard/events.out.tfevents.")]
    assert len(events) == (1 if "tensorboard" in ddp_logs() else 0)  # rank 0's event file alone
    assert [w for w in written if w not in events] == [
        "config.yaml",
        "eval/confusion_matrix.png",
        "eval/metrics.json",
        "eval/worst.png",
        "results.csv",
        "results.png",
        "weights/best.pt",
        "weights/last.pt",
    ]
    assert r0["table"] and r1["table"] == ""

    # the reference: a single process scoring the same checkpoint on the same 5 images
    cfg = load_config(CONFIG, tiny_overrides(str(out)))
    single, _ = evaluate(cfg, out / "weights" / "last.pt", tmp_path / "eval1")
    assert _same(r0["metrics"], single) and _same(r1["metrics"], single)
    cm2 = json.loads((out / "eval" / "metrics.json").read_text())["confusion_matrix"]["counts"]
    cm1 = json.loads((tmp_path / "eval1" / "metrics.json").read_text())["confusion_matrix"]["counts"]
    assert cm2 == cm1
    # per-image scores gathered from both ranks: every image once, as one process scores it
    per2 = json.loads((out / "eval" / "metrics.json").read_text())["per_image"]
    per1 = json.loads((tmp_path / "eval1" / "metrics.json").read_text())["per_image"]
    assert [e["index"] for e in per2] == list(range(5)) and per2 == per1
    assert sum(map(sum, cm1)) == 5 * 32 * 64  # every validation pixel once: no padding repeats

    # the epoch's validation in the 2-process training scored exactly the saved weights
    with open(out / "results.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    for key in ("miou", "mdice", "pixel_acc"):
        assert float(row[key]) == pytest.approx(single[key], rel=1e-9, abs=1e-12)

    # a stalled collective names what stalled and the fix instead of hanging
    message = r0["timeout_message"]
    assert message is not None and "the test's lone all-reduce did not complete within 2 s" in message
    assert "rank 0/2" in message and "train.dist_timeout" in message


# --- validation sharding ---------------------------------------------------------------------------
@pytest.mark.parametrize("size,batch,world", [(5, 2, 2), (7, 3, 2), (2, 4, 3), (9, 1, 4), (0, 2, 2)])
def test_sharded_batches_are_the_single_process_batches_once(size, batch, world):
    reference = [list(range(s, min(s + batch, size))) for s in range(0, size, batch)]  # naive loop
    shards = [list(ShardedBatchSampler(size, batch, rank=r, world_size=world)) for r in range(world)]
    assert [len(ShardedBatchSampler(size, batch, rank=r, world_size=world)) for r in range(world)] == [
        len(s) for s in shards
    ]
    dealt = sorted((b for s in shards for b in s), key=lambda b: b[0])
    assert dealt == reference


def test_sharded_batch_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 2 is outside world size 2"):
        ShardedBatchSampler(4, 2, rank=2, world_size=2)


# --- loader defaults and seeding -------------------------------------------------------------------
def test_auto_workers_divide_the_cpus_among_local_processes(monkeypatch):
    monkeypatch.setattr("segdet.engine.loader._usable_cpus", lambda: 12)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_num_workers("auto", 1000, 8) == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert auto_num_workers("auto", 1000, 8) == 3
    assert auto_num_workers("auto", 31, 8) == 0  # under four batches
    assert auto_num_workers(5, 10, 8) == 5
    with pytest.raises(ValueError, match="data.num_workers must be auto or an integer >= 0, got -1"):
        auto_num_workers(-1, 10, 8)


def _tiny_segmentation_data():
    from _segdet_ddp_worker import CONFIG, tiny_overrides

    from segdet.config import load_config
    from segdet.task import build_task

    cfg = load_config(CONFIG, tiny_overrides("unused") + ["augment.mix=[{CutMix: {p: 1.0}}]"])
    task = build_task(cfg)
    train, val, spec = task.build_datasets()
    return task.collate_fn(spec), train, val


def _batches(loader, epochs):
    out = []
    for epoch in epochs:
        set_loader_epoch(loader, epoch)
        out += [(b["image"].clone(), b["mask"].clone()) for b in loader]
    return out


def test_samples_do_not_depend_on_workers_or_persistence(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    collate, train, _ = _tiny_segmentation_data()
    base = _batches(make_train_loader(train, collate, 2, 0, seed=3), [0, 1])
    # two persistent workers across two epochs, and a fresh loader that starts at epoch 1 (resume)
    two = _batches(make_train_loader(train, collate, 2, 2, seed=3), [0, 1])
    resumed = _batches(make_train_loader(train, collate, 2, 2, seed=3), [1])
    assert len(base) == len(two) == 2 * len(resumed) == 8
    for (xa, ya), (xb, yb) in zip(base, two):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    for (xa, ya), (xb, yb) in zip(base[4:], resumed):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    assert not torch.equal(base[0][0], base[4][0]) or not torch.equal(base[1][0], base[5][0])  # epochs differ


class _GlobalRngData(torch.utils.data.Dataset):
    """Draws from numpy's global generator (as many user datasets do) and reports its epoch."""

    def __init__(self) -> None:
        self.epoch = -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        return {"i": i, "epoch": self.epoch, "r": float(np.random.random()), "p": random.random()}


def _collate(samples):
    return {k: [s[k] for s in samples] for k in samples[0]}


def test_epoch_reaches_persistent_workers_and_global_rng_is_reseeded_per_epoch():
    ds = _GlobalRngData()
    a = make_train_loader(ds, _collate, 3, 2, seed=5)
    runs = []
    for epoch in (0, 1):
        set_loader_epoch(a, epoch)
        runs.append([b for b in a])
    assert a.persistent_workers and a.prefetch_factor is not None
    assert [e for b in runs[1] for e in b["epoch"]] == [1] * 6  # set_epoch reached the workers
    b = make_train_loader(ds, _collate, 3, 2, seed=5)  # a fresh start at epoch 1 (a resume)
    set_loader_epoch(b, 1)
    assert [x for x in b] == runs[1]
    assert sorted(i for x in runs[1] for i in x["i"]) == list(range(6))


def test_epoch_sampler_yields_epoch_and_shuffles_per_epoch():
    sampler = EpochSampler(torch.utils.data.DistributedSampler(range(10), num_replicas=1, rank=0, seed=1))
    sampler.set_epoch(2)
    pairs = list(sampler)
    assert {e for e, _ in pairs} == {2} and sorted(i for _, i in pairs) == list(range(10))
    sampler.set_epoch(3)
    assert [i for _, i in sampler] != [i for _, i in pairs]
    assert EpochDataset(list("abc"))[(4, 1)] == "b"


def test_val_loader_is_sequential_in_one_process():
    loader = make_val_loader(list(range(5)), lambda s: s, 2, 0)
    assert list(loader) == [[0, 1], [2, 3], [4]] and not loader.pin_memory


# --- batch-level mixing on the device --------------------------------------------------------------
def test_batch_mixing_equals_the_mixers_called_in_order():
    from augment.batch import batch_cutmix, batch_mixup
    from segdet.data.mixers import build_batch_mixers
    from segdet.engine.batchmix import BatchMixing

    mixers = build_batch_mixers(
        [{"CutMix": {"p": 1.0}}, {"MixUp": {"p": 1.0, "alpha": 0.4}}], num_classes=3, ignore_index=255
    )
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 3, 8, 12, generator=gen), torch.randint(0, 3, (4, 8, 12), generator=gen)
    y[0, :2] = 255
    out = BatchMixing(mixers, torch.Generator().manual_seed(7))({"image": x, "mask": y, "extra": 1})
    g = torch.Generator().manual_seed(7)
    ref = batch_cutmix(x, y, generator=g, p=1.0)
    ref = batch_mixup(ref.images, ref.target, generator=g, num_classes=3, ignore_index=255, p=1.0, alpha=0.4)
    torch.testing.assert_close(out["image"], ref.images, rtol=0, atol=0)
    torch.testing.assert_close(out["mask"], ref.target, rtol=0, atol=0)
    assert out["extra"] == 1 and out["mask"].shape == (4, 3, 8, 12)


@pytest.mark.parametrize(
    "steps,match",
    [
        ([{"Mosaic": {}}], r"augment.batch_mix\[0\]: unknown batch mixer 'Mosaic'; choose one of CutMix, MixUp"),
        ([{"CutMix": {"q": 1}}], r"augment.batch_mix\[0\].CutMix: .*q"),
        ([{"MixUp": {"p": 2.0}}], r"augment.batch_mix\[0\].MixUp: .*p must lie in \[0, 1\]"),
        ([{"CutMix": {}, "MixUp": {}}], r"augment.batch_mix\[0\] must be one \{Name: \{args\}\} mapping"),
    ],
)
def test_batch_mix_config_errors_name_the_key(steps, match):
    from segdet.data.mixers import build_batch_mixers

    with pytest.raises(ValueError, match=match):
        build_batch_mixers(steps, num_classes=3, ignore_index=255)


def test_batch_mix_is_refused_for_detection():
    from segdet.detection.task import DetectionTask
    from segdet.engine.batchmix import BatchMixSchedule

    assert not DetectionTask.batch_mixable
    with pytest.raises(ValueError, match="augment.batch_mix works on segmentation batches only"):
        BatchMixSchedule([{"CutMix": {}}], DetectionTask({}), num_classes=3, ignore_index=255, seed=0)
    assert BatchMixSchedule([], DetectionTask({}), num_classes=3, ignore_index=255, seed=0).for_epoch(0, "cpu") is None


def test_training_loop_with_batch_mix_runs_a_step_with_soft_targets(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    from _segdet_ddp_worker import CONFIG, tiny_overrides

    import segdet.engine.batchmix as bm
    from segdet.config import load_config
    from segdet.engine import build_optimizer, build_scheduler, train_one_epoch
    from segdet.engine.batchmix import BatchMixSchedule
    from segdet.engine.trainer import _StopFlag
    from segdet.task import build_task

    cfg = load_config(
        CONFIG,
        tiny_overrides("unused")
        + [
            "data.synthetic.train_size=2",
            "augment.mix=[]",
            "augment.batch_mix=[{CutMix: {p: 1.0}}, {MixUp: {p: 1.0}}]",
        ],
    )
    task = build_task(cfg)
    train_ds, _, spec = task.build_datasets()
    loader = make_train_loader(train_ds, task.collate_fn(spec), 2, 0, seed=0)
    model = task.build_model(spec)
    mixing = BatchMixSchedule(cfg["augment"]["batch_mix"], task, num_classes=spec.num_classes, ignore_index=255, seed=0)
    optimizer = build_optimizer(model, cfg["optim"])
    scheduler = build_scheduler(optimizer, cfg["schedule"], 1, 1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    seen = []
    original = bm.BatchMixing.__call__

    def spy(self, batch):
        out = original(self, batch)
        seen.append(out["mask"])
        return out

    monkeypatch.setattr(bm.BatchMixing, "__call__", spy)
    before = [p.detach().clone() for p in model.parameters()]
    stats = train_one_epoch(
        task,
        model,
        loader,
        optimizer,
        scheduler,
        scaler,
        None,
        torch.device("cpu"),
        None,
        cfg["train"],
        0,
        _StopFlag(),
        mixing.for_epoch(0, torch.device("cpu")),
    )
    assert math.isfinite(stats["loss"])
    assert len(seen) == 1 and seen[0].dtype == torch.float32 and seen[0].shape == (2, 4, 32, 64)
    assert torch.all((seen[0].sum(1) - 1).abs() < 1e-5)  # soft probabilities reached the loss (nothing ignored)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step updated the model


# --- set-up errors and the single-process no-ops --------------------------------------------------
def _cfg(**train):
    return {"device": "cpu", "dist_timeout": 5.0, "sync_bn": False, **train}


@pytest.mark.parametrize(
    "env,match",
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set but RANK is not: launch with torchrun"),
        ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not an integer"),
    ],
)
def test_setup_names_the_bad_environment(monkeypatch, env, match):
    from segdet.engine.distributed import setup

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=match):
        setup(_cfg())


def test_setup_refuses_a_fixed_cuda_index_under_torchrun(monkeypatch):
    from segdet.engine.distributed import setup

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"train.device='cuda:1' under torchrun: each process uses cuda:LOCAL_RANK"):
        setup(_cfg(device="cuda:1"))


def test_single_process_is_untouched(monkeypatch):
    from segdet.engine import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup(_cfg()) == torch.device("cpu")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    assert distributed.prepare_model(model, {"sync_bn": True}, torch.device("cpu")) is model
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    assert distributed.broadcast_module(model) is model
    assert distributed.any_rank(True, torch.device("cpu")) and not distributed.any_rank(False, torch.device("cpu"))
    with pytest.raises(RuntimeError, match="^Timed out$"):  # no process group: errors pass through unchanged
        with distributed.watch("anything"):
            raise RuntimeError("Timed out")


def test_sync_bn_on_cpu_is_refused(monkeypatch):
    from segdet.engine import distributed

    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="train.sync_bn=true needs CUDA"):
        distributed.prepare_model(model, {"sync_bn": True}, torch.device("cpu"))


def test_data_wait_meter_on_a_virtual_clock(monkeypatch):
    import time

    from segdet.engine.loader import DataWaitMeter

    clock = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    def loader():  # each batch takes 1 s to arrive
        for i in range(3):
            clock[0] += 1.0
            yield i

    class Loader:
        def __len__(self):
            return 3

        def __iter__(self):
            return loader()

    meter = DataWaitMeter(Loader())
    assert math.isnan(meter.fraction()) and len(meter) == 3
    for _ in meter:
        clock[0] += 3.0  # each step computes for 3 s
    assert meter.fraction() == pytest.approx(3.0 / 12.0)  # 3 s waiting over 12 s of wall time


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_feature_mixing_with_ema_under_ddp_keeps_the_replicas_equal(tmp_path, monkeypatch):
    """ManifoldMixup / PatchUp hooks on the encoder inside DDP: both ranks mix, gradients still
    reach every replica alike (equal parameters after training), and EMA is saved beside them."""
    monkeypatch.syspath_prepend(str(HERE))
    from _segdet_ddp_worker import train_feature_mix

    out = tmp_path / "run"
    torch.multiprocessing.start_processes(
        train_feature_mix,
        args=(_free_port(), str(out), str(tmp_path / "result")),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    r0, r1 = (torch.load(tmp_path / f"result.{r}", weights_only=False) for r in (0, 1))
    assert r0["mixed"] > 0 and r1["mixed"] > 0
    a, b = r0["replica"], r1["replica"]
    assert len(a) > 10 and a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ckpt = torch.load(out / "weights" / "last.pt", map_location="cpu", weights_only=False)
    model = {k.removeprefix("module."): v for k, v in a.items()}
    assert all(torch.equal(ckpt["model"][k], v) for k, v in model.items())
    assert ckpt["ema"] is not None and any(
        not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"] if ckpt["model"][k].is_floating_point()
    )
