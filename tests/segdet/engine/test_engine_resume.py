"""Resume ends where an uninterrupted run ends; checkpoints are atomic; Ctrl-C saves last.pt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from engine_fake_task import FakeTask, fake_config

from segdet.checkpoint import copy_checkpoint, inference_state_dict, load_checkpoint, save_checkpoint
from segdet.engine import TrainingInterrupted, train

HERE = Path(__file__).resolve().parent


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


def _final(run: Path) -> dict:
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    return ckpt


@pytest.mark.parametrize("workers", [0, 2])
def test_crash_after_epoch_then_resume_equals_uninterrupted(tmp_path, workers):
    cfg = fake_config(tmp_path / "full", epochs=3)
    cfg["data"]["num_workers"] = workers
    full = _final(train(cfg, task=FakeTask(cfg)))

    cfg2 = fake_config(tmp_path / "crashed", epochs=3)
    cfg2["data"]["num_workers"] = workers
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg2, task=FakeTask(cfg2, fail_at_call=6))  # 4 steps per epoch: dies in epoch 2
    last = tmp_path / "crashed" / "weights" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 1
    torch.manual_seed(12345)  # the global RNG state must not matter: resume restores it
    resumed = _final(train(cfg2, resume=last, task=FakeTask(cfg2)))

    _assert_same_state(full["model"], resumed["model"])
    _assert_same_state(full["ema"], resumed["ema"])
    assert full["optimizer"]["state"][0]["step"] == resumed["optimizer"]["state"][0]["step"]
    torch.testing.assert_close(full["optimizer"]["state"][0]["exp_avg"], resumed["optimizer"]["state"][0]["exp_avg"])
    assert full["scheduler"]["last_epoch"] == resumed["scheduler"]["last_epoch"] == 12
    assert full["best_metric"] == pytest.approx(resumed["best_metric"])
    rows = (tmp_path / "crashed" / "results.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    """A real process killed with SIGKILL after its first checkpoint, then resumed."""
    env = {
        **os.environ,
        "FAKE_THREADS": "1",
        "FAKE_DELAY": "0.004",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[2])]),
    }
    script = str(HERE / "engine_fake_task.py")
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, script, str(out), "4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    last = out / "weights" / "last.pt"
    deadline = time.monotonic() + 60
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = load_checkpoint(last)["epoch"]
    assert 1 <= done < 4
    subprocess.run(
        [sys.executable, script, str(out), "4", str(last)], env=env, check=True, stdout=subprocess.DEVNULL, timeout=120
    )
    resumed = load_checkpoint(last)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = fake_config(tmp_path / "reference", epochs=4)
        reference = _final(train(cfg, task=FakeTask(cfg)))
    finally:
        torch.set_num_threads(threads)
    assert resumed["epoch"] == 4
    _assert_same_state(reference["model"], resumed["model"])
    _assert_same_state(reference["ema"], resumed["ema"])


def test_ctrl_c_saves_mid_epoch_checkpoint_and_resume_continues_after_its_step(tmp_path):
    cfg = fake_config(tmp_path / "int", epochs=2)

    class CtrlC(FakeTask):
        def loss(self, model, batch):
            if self.calls == 5:  # second epoch, second step
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss(model, batch)

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in a background job
    with pytest.raises(TrainingInterrupted) as err:
        train(cfg, task=CtrlC(cfg))
    ckpt = load_checkpoint(err.value.checkpoint)
    assert ckpt["interrupted"] is True and ckpt["epoch"] == 1
    assert ckpt["scheduler"]["last_epoch"] == 6  # stopped after 2 of epoch 2's 4 steps
    assert signal.getsignal(signal.SIGINT) is before  # the loop's handler is removed again
    run = train(cfg, resume=err.value.checkpoint, task=FakeTask(cfg))
    final = load_checkpoint(run / "weights" / "last.pt")
    assert final["epoch"] == 2 and final["interrupted"] is False
    assert final["scheduler"]["last_epoch"] == 8  # 6 steps before Ctrl-C and the 2 after it: none redone


def test_ctrl_c_in_a_terminal_with_loader_workers_saves_last_pt(tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does), workers included."""
    env = {
        **os.environ,
        "FAKE_THREADS": "1",
        "FAKE_DELAY": "0.01",
        "FAKE_WORKERS": "2",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[2])]),
    }
    out = tmp_path / "ctrlc"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "engine_fake_task.py"), str(out), "50"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    last = out / "weights" / "last.pt"
    deadline = time.monotonic() + 60
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first = load_checkpoint(last)["epoch"]
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGINT, 130, 1), err.decode()[-2000:]
    assert "TrainingInterrupted" in err.decode() and "exited unexpectedly" not in err.decode()
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] >= first and ckpt["epoch"] < 50


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(2)}, "epoch": 2, "junk": Unpicklable()}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "truncated.pt"
    save_checkpoint({"model": {"w": torch.ones(1000)}}, bad)
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_checkpoint(bad)


def test_inference_state_dict_prefers_ema():
    assert inference_state_dict({"model": {"a": 1}, "ema": {"b": 2}}) == {"b": 2}
    assert inference_state_dict({"model": {"a": 1}, "ema": None}) == {"a": 1}
    with pytest.raises(ValueError, match="no 'model' or 'ema'"):
        inference_state_dict({"epoch": 3})


def test_copy_checkpoint_survives_later_saves_of_its_source(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint({"epoch": 1}, last)
    save_checkpoint({"epoch": 0}, best)
    copy_checkpoint(last, best)
    save_checkpoint({"epoch": 2}, last)
    assert load_checkpoint(best)["epoch"] == 1 and load_checkpoint(last)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    assert oct(best.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_resume_of_a_plain_state_dict_is_one_clear_error(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1)
    plain = save_checkpoint(FakeTask(cfg).build_model().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError) as err:
        train(cfg, resume=plain, task=FakeTask(cfg))
    msg = str(err.value)
    assert msg.startswith(f"--resume {plain} holds a plain state dict (") and f"set model.weights={plain}" in msg
    assert not (tmp_path / "run").exists()  # stopped before the run folder


def test_resume_of_another_task_or_model_names_what_the_checkpoint_holds(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1)
    last = train(cfg, task=FakeTask(cfg)) / "weights" / "last.pt"
    ckpt = load_checkpoint(last)
    ckpt["config"] = {**ckpt["config"], "task": "detection", "model": {"arch": "fasterrcnn_resnet50_fpn"}}
    other = save_checkpoint(ckpt, tmp_path / "det.pt")
    with pytest.raises(ValueError, match=r"is a checkpoint of a detection run \(model\.arch fasterrcnn_resnet50_fpn\)"):
        train(cfg, resume=other, task=FakeTask(cfg))

    class Wider(FakeTask):
        def build_model(self, spec=None):
            return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1))

    with pytest.raises(ValueError) as err:
        train(cfg, resume=last, task=Wider(cfg))
    msg = str(err.value)
    assert msg.startswith(f"--resume {last} holds the weights of model.arch Unet, model.encoder resnet18, 3 classes")
    assert "do not fit the model of this config" in msg and msg.count("\n") == 0  # one line, not a page


def test_a_metric_the_task_does_not_compute_stops_before_training(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1, metric="miou")
    with pytest.raises(ValueError, match=r"train\.metric 'miou' is not computed by the fake task.*one of acc$"):
        train(cfg, task=FakeTask(cfg))
    assert not (tmp_path / "run").exists()


def test_per_class_metrics_of_a_mean_metric_are_accepted():
    from segdet.config import validate_config
    from segdet.engine._preflight import check_metric
    from segdet.task import build_task

    task = build_task(validate_config({}))  # segmentation: miou, mdice, pixel_acc
    classes = ("background", "circle")
    for metric in ("miou", "pixel_acc", "iou/circle", "dice/background"):
        check_metric(metric, task, classes)
    check_metric("iou/anything", task)  # the classes are not known yet: checked once they are
    for metric in ("mIoU", "iou/cat", "miou/circle", "pixel_acc/circle"):
        with pytest.raises(ValueError, match=r"one of miou, mdice, pixel_acc, or a per-class key iou/<class>"):
            check_metric(metric, task, classes)
