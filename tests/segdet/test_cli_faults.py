"""The command line under faults and bad input: Ctrl-C, full disk, output folders, bad images, large inputs."""

from __future__ import annotations

import errno
import os
import shlex
import signal
from pathlib import Path

import numpy as np
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
    run = [f"output_dir={out}", *TINY, "train.epochs=1", "train.checkpoint_every=1"]  # step 1 saved, the end not
    assert main(["train", str(CONFIG), *run]) == 1
    err = capsys.readouterr().err.strip()
    last = out / "weights/last.pt"
    assert err.count("\n") == 0 and err.startswith(f"segdet: error: cannot write checkpoint {last}: no space left")
    assert err.endswith(f"resume with: segdet train {CONFIG} {shlex.join(run)} --resume {last}")
    assert load_checkpoint(last)["position"]["batch"] == 1  # the checkpoint it offers is whole


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


def _folder_data(root: Path, n: int = 8) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                root / split / "images" / f"{i}.png"
            )
            Image.fromarray(rng.integers(0, 2, (32, 32), dtype=np.uint8)).save(root / split / "masks" / f"{i}.png")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_training_image_is_one_line_naming_it_with_or_without_workers(tmp_path, workers, capsys):
    _folder_data(tmp_path / "data")
    bad = tmp_path / "data/train/images/3.png"
    bad.write_bytes(bad.read_bytes()[:120])  # the header (and size) still reads: only decoding fails
    argv = [
        "train", str(CONFIG), *TINY, f"output_dir={tmp_path / 'run'}", "data.kind=folder",
        f"data.folder.train={tmp_path / 'data/train'}", f"data.folder.val={tmp_path / 'data/val'}",
        "data.classes=[background, object]", f"data.num_workers={workers}", "augment.mix=[]", "train.epochs=1",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err[-3000:]
    assert err.startswith("segdet: error: training sample ") and f"cannot read image file {bad}" in err
    assert "data.skip_bad=true" in err and "no checkpoint written yet" in err

    assert main([*argv, "data.skip_bad=true", f"output_dir={tmp_path / 'skipped'}"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable samples" in out


@pytest.mark.parametrize("order", ["kind-first", "paths-first"])
def test_switching_data_kind_on_the_command_line_works_in_either_order(tmp_path, order):
    from segdet.config import load_config

    paths = [f"data.folder.train={tmp_path}", f"data.folder.val={tmp_path}"]
    overrides = ["data.kind=folder", *paths] if order == "kind-first" else [*paths, "data.kind=folder"]
    cfg = load_config(CONFIG, overrides)
    assert cfg["data"]["kind"] == "folder" and cfg["data"]["folder"]["train"] == str(tmp_path)


def test_predict_warns_before_whole_images_over_4x_the_training_area(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "run"
    assert main(["train", str(CONFIG), f"output_dir={run}", *TINY, "train.epochs=1"]) == 0
    assert load_checkpoint(run / "weights/best.pt")["input_size"] == [32, 32]
    inputs = tmp_path / "photos"
    inputs.mkdir()
    for name, (h, w) in {"big": (70, 60), "edge": (64, 64), "small": (32, 48)}.items():  # 4200 > 4 * 1024
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(inputs / f"{name}.png")
    predict = ["predict", str(CONFIG), *TINY, "--checkpoint", str(run / "weights/best.pt"), "--input", str(inputs)]
    with pytest.warns(UserWarning) as record:
        assert main([*predict, "--output", str(tmp_path / "out")]) == 0
    messages = [str(w.message) for w in record if "more than 4x the pixels" in str(w.message)]
    assert messages == [
        f"1 of 3 input images have more than 4x the pixels the model was trained on (32x32), e.g. {inputs / 'big.png'} "
        "(70x60); whole-image prediction of those needs memory in proportion (a 4000x3000 image took 6.4 GB); "
        "predict in tiles with inference.mode=slide inference.tile=[32,32]"
    ]
    assert (tmp_path / "out" / "big.png").exists()  # a warning: the prediction still runs

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # none with a sliding window
        slide = ["inference.mode=slide", "inference.tile=[32,32]"]
        assert main([*predict[:3], *slide, *predict[3:], "--output", str(tmp_path / "tiles")]) == 0


class _Raises(torch.utils.data.Dataset):
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise self.exc


class _SampleFault(ValueError):
    """An error class outside builtins: the traceback's last line names it with its module."""


@pytest.mark.parametrize(
    "exc", [ValueError("mixer source 1 bboxes[2] has no area\nsecond line"), _SampleFault("bad sample 3")]
)
def test_an_error_raised_in_a_loader_worker_is_reported_by_its_own_message(exc):
    from segdet.cli import _worker_message

    loader = torch.utils.data.DataLoader(_Raises(exc), num_workers=1)
    with pytest.raises(ValueError) as caught:
        next(iter(loader))
    assert "Original Traceback" in str(caught.value)  # torch's wrapping, which the message drops
    assert _worker_message(caught.value) == (
        f"{exc} (raised in DataLoader worker process 0; SEGDET_DEBUG=1 shows its traceback)"
    )
    assert _worker_message(ValueError("plain")) == "plain"
