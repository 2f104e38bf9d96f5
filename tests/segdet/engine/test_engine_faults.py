"""Faults while training: a full disk or read-only folder at a save, a corrupt --resume file, two runs in one folder."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from engine_fake_task import FakeTask, fake_config

import segdet._atomic as atomic_module
import segdet.checkpoint as checkpoint_module
from segdet.checkpoint import CheckpointWriteError, load_checkpoint, save_checkpoint
from segdet.engine import train
from segdet.engine._rundir import LOCK_NAME, RunFolderLocked, RunLock, claim_new_run_dir


def _full_disk_after(monkeypatch, saves_ok: int, error: BaseException) -> None:
    """``torch.save`` in segdet.checkpoint works ``saves_ok`` times, then writes a little and fails with ``error``."""
    real, count = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        count[0] += 1
        if count[0] > saves_ok:
            f.write(b"PK\x03\x04 partial")  # what a disk that fills up mid-write leaves in the temporary file
            raise error
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
        (RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4160 vs 4096"), "the write failed"),
        (OSError(errno.EROFS, "Read-only file system"), "the file system is read-only"),
    ],
    ids=["enospc", "torch-zip-writer", "read-only"],
)
def test_a_failed_save_is_one_clear_error_and_keeps_last_and_best(tmp_path, monkeypatch, error, reason):
    cfg = fake_config(tmp_path / "run", epochs=3)
    _full_disk_after(monkeypatch, 1, error)  # epoch 1 is saved, epoch 2's save fails
    with pytest.raises(CheckpointWriteError) as err:
        train(cfg, task=FakeTask(cfg))
    last = tmp_path / "run/weights/last.pt"
    msg = str(err.value)
    assert msg.startswith(f"cannot write checkpoint {last}: {reason} (") and "MiB free on" in msg
    assert "is intact and loadable" in msg and err.value.path == last
    monkeypatch.undo()
    assert load_checkpoint(last)["epoch"] == 1
    assert load_checkpoint(tmp_path / "run/weights/best.pt")["epoch"] == 1
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # the lock is released on the way out


def test_a_read_only_weights_folder_is_named(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic_module.tempfile, "mkstemp", refuse)
    with pytest.raises(CheckpointWriteError, match=r"cannot write checkpoint .*x\.pt: permission denied"):
        save_checkpoint({"epoch": 1}, tmp_path / "x.pt")


def test_an_unrelated_error_while_saving_is_not_disguised(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle a lock")

    with pytest.raises(TypeError, match="cannot pickle a lock"):
        save_checkpoint({"junk": Unpicklable()}, tmp_path / "x.pt")


def test_resume_of_a_truncated_checkpoint_names_it_and_offers_the_newest_good_one(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1)
    weights = train(cfg, task=FakeTask(cfg)) / "weights"
    last = weights / "last.pt"
    data = last.read_bytes()
    last.unlink()  # a new inode: best.pt, a hard link of the old one, stays whole (as after a broken copy)
    last.write_bytes(data[:200])
    with pytest.raises(ValueError) as err:
        train(cfg, resume=last, task=FakeTask(cfg))
    msg = str(err.value)
    assert msg.startswith(f"--resume: checkpoint {last} cannot be read")
    assert msg.endswith(
        f"the newest readable checkpoint there is {weights / 'best.pt'}: resume with --resume {weights / 'best.pt'}"
    )
    (weights / "best.pt").unlink()
    with pytest.raises(ValueError, match="holds no other readable checkpoint"):
        train(cfg, resume=last, task=FakeTask(cfg))


def test_a_second_run_into_a_locked_folder_takes_the_next_name_and_resume_names_the_holder(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1)
    last = train(cfg, task=FakeTask(cfg)) / "weights/last.pt"
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-01-01T10:00:00+00:00"}
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(holder))  # a live process (our parent) holds it
    with pytest.raises(RunFolderLocked) as err:
        train(cfg, resume=last, task=FakeTask(cfg))
    msg = str(err.value)
    assert f"in use by segdet process {os.getppid()} on host {socket.gethostname()}" in msg
    assert "started 2026-01-01T10:00:00+00:00" in msg and str(tmp_path / "run" / LOCK_NAME) in msg

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / LOCK_NAME).write_text(json.dumps(holder))  # claimed by a run that has not written weights/ yet
    folder, lock = claim_new_run_dir(fresh)
    assert folder == tmp_path / "fresh-2" and (folder / LOCK_NAME).exists()
    lock.release()
    assert not (folder / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))
    with pytest.warns(UserWarning, match=f"taking over the stale lock .* of process {pid} on "):
        lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_output_dir_that_is_a_file_or_not_writable_stops_before_the_data(tmp_path, monkeypatch):
    (tmp_path / "taken").write_text("a file")
    cfg = fake_config(tmp_path / "taken", epochs=1)
    with pytest.raises(ValueError, match=r"output_dir .*taken: .*taken is a file, not a folder"):
        train(cfg, task=FakeTask(cfg))
    cfg = fake_config(tmp_path / "taken" / "run", epochs=1)
    with pytest.raises(ValueError, match=r"is a file, not a folder"):
        train(cfg, task=FakeTask(cfg))

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(type(tmp_path), "mkdir", read_only)
    cfg = fake_config(tmp_path / "ro" / "run", epochs=1)
    with pytest.raises(ValueError, match=r"output_dir .*ro/run is not writable \(the file system is read-only\)"):
        train(cfg, task=FakeTask(cfg))


def test_resume_with_another_optimizer_stops_before_touching_the_run(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=2)
    last = train(cfg, task=FakeTask(cfg)) / "weights/last.pt"
    record = (tmp_path / "run/config.yaml").read_bytes()
    cfg["optim"]["name"] = "sgd"
    with pytest.raises(ValueError, match=r"was trained with optim.name adamw, and its optimizer state .* to sgd"):
        train(cfg, resume=last, task=FakeTask(cfg))
    assert (tmp_path / "run/config.yaml").read_bytes() == record


def test_a_new_lr_on_resume_takes_effect(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1)
    cfg["schedule"].update(name="constant", warmup_epochs=0.0)
    last = train(cfg, task=FakeTask(cfg)) / "weights/last.pt"
    assert load_checkpoint(last)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.01)
    cfg["optim"]["lr"], cfg["train"]["epochs"] = 0.001, 2
    resumed = load_checkpoint(train(cfg, resume=last, task=FakeTask(cfg)) / "weights/last.pt")
    groups = resumed["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.001] * len(groups))  # constant schedule: the new peak
    assert resumed["scheduler"]["last_epoch"] == 8 and resumed["optimizer"]["state"][0]["step"] == 8


def test_resume_of_a_finished_run_leaves_its_record_alone(tmp_path, capsys):
    cfg = fake_config(tmp_path / "run", epochs=1)
    last = train(cfg, task=FakeTask(cfg)) / "weights/last.pt"
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    cfg["optim"]["lr"] = 0.5
    capsys.readouterr()
    train(cfg, resume=last, task=FakeTask(cfg))
    out = capsys.readouterr().out
    assert f"nothing to train: {last} finished all 1 epochs" in out and "resume with train.epochs=2" in out
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == files
