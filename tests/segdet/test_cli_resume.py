"""Ctrl-C and faults through the command line: exit codes, one-line messages, and a resume command that works."""

from __future__ import annotations

import errno
import os
import shlex
import signal
from pathlib import Path

import pytest
import torch

import segdet.checkpoint as checkpoint_module
import segdet.engine.trainer as trainer_module
from segdet.checkpoint import load_checkpoint
from segdet.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "unet_cutmix.yaml"
TINY = [
    "data.synthetic.train_size=8",
    "data.synthetic.val_size=4",
    "data.synthetic.height=32",
    "data.synthetic.width=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "model.encoder=resnet18",
    "train.epochs=2",
    "train.device=cpu",
    "train.progress=false",
    "deterministic=true",
]


def _ctrl_c_at(monkeypatch, batch: int) -> None:
    """A real SIGINT to this process while batch ``batch`` (1-based, over the run) is moved to the device."""
    real, calls = trainer_module.to_device, [0]

    def to_device(*args, **kwargs):
        calls[0] += 1
        if calls[0] == batch:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "to_device", to_device)


def test_ctrl_c_exits_130_and_the_printed_command_resumes_to_identical_weights(tmp_path, monkeypatch, capsys):
    assert main(["train", str(CONFIG), f"output_dir={tmp_path / 'full'}", *TINY]) == 0
    full = load_checkpoint(tmp_path / "full/weights/last.pt")

    _ctrl_c_at(monkeypatch, 3)  # epoch 2, its first batch (2 batches per epoch)
    capsys.readouterr()
    assert main(["train", str(CONFIG), f"output_dir={tmp_path / 'int'}", *TINY]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    last = tmp_path / "int/weights/last.pt"
    command = shlex.join(["segdet", "train", str(CONFIG), f"output_dir={tmp_path / 'int'}", *TINY])
    assert err == f"segdet: interrupted; resume with: {command} --resume {last}"  # the overrides included
    assert load_checkpoint(last)["position"]["batch"] == 1
    monkeypatch.undo()

    words = shlex.split(err.split("resume with: ", 1)[1])
    assert main(words[1:]) == 0
    resumed = load_checkpoint(last)
    assert resumed["epoch"] == 2 and resumed["scheduler"]["last_epoch"] == full["scheduler"]["last_epoch"] == 4
    for part in ("model", "ema"):
        for k, v in (full[part] or {}).items():
            assert torch.equal(v, resumed[part][k]), f"{part}.{k} differs"


def test_a_full_disk_is_one_line_with_the_resume_command(tmp_path, monkeypatch, capsys):
    real, count = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        count[0] += 1
        if count[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save)
    out = tmp_path / "run"
    assert main(["train", str(CONFIG), f"output_dir={out}", *TINY]) == 1
    err = capsys.readouterr().err.strip()
    last = out / "weights/last.pt"
    assert err.count("\n") == 0 and err.startswith(f"segdet: error: cannot write checkpoint {last}: no space left")
    assert err.endswith(
        f"resume with: segdet train {CONFIG} {shlex.join([f'output_dir={out}', *TINY])} --resume {last}"
    )


@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_an_output_folder_that_is_a_file_is_one_clear_error(tmp_path, command, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    if command == "train":
        argv = ["train", str(CONFIG), f"output_dir={blocker / 'run'}", *TINY]
    else:
        ckpt = tmp_path / "x.pt"
        ckpt.write_bytes(b"")
        image = tmp_path / "a.png"
        image.write_bytes(b"")
        extra = ["--input", str(image)] if command == "predict" else []
        argv = [command, str(CONFIG), *TINY, "--checkpoint", str(ckpt), "--output", str(blocker / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("segdet: error: ") and f"{blocker} is a file" in err


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_read_only_output_folder_is_named_before_any_work(tmp_path, command, monkeypatch, capsys):
    import segdet.engine._rundir as rundir

    monkeypatch.setattr(rundir.os, "access", lambda path, mode: Path(path) != tmp_path)  # tmp_path read-only
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    image.write_bytes(b"")
    extra = ["--input", str(image)] if command == "predict" else []
    argv = [command, str(CONFIG), *TINY, "--checkpoint", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "o")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"segdet: error: --output {tmp_path / 'o'} is not writable ({tmp_path} is not writable); "
        "choose a writable folder with --output PATH"
    )
