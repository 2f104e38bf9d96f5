"""The segdet command line end to end on tiny synthetic data: train, eval, predict, preview, errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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
    "train.epochs=1",
    "train.device=cpu",
    "train.progress=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", str(CONFIG), f"output_dir={out}", *TINY]) == 0
    return out


def test_train_writes_the_run_folder(trained):
    names = {p.relative_to(trained).as_posix() for p in trained.rglob("*")}
    assert {"config.yaml", "results.csv", "results.png", "weights/last.pt", "weights/best.pt"} <= names
    rows = list(csv.DictReader(open(trained / "results.csv")))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["miou"]) <= 1.0
    ckpt = load_checkpoint(trained / "weights" / "last.pt")
    assert ckpt["config"]["train"]["epochs"] == 1 and ckpt["epoch"] == 1
    assert list(ckpt["classes"]) == ["background", "circle", "square", "triangle"]
    assert set(ckpt) >= {"model", "ema", "optimizer", "scheduler", "scaler", "epoch", "best_metric", "rng", "config"}


def test_eval_reproduces_the_validation_of_training(trained, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained / "config.yaml"), "--checkpoint", str(trained / "weights" / "last.pt")]) == 0
    table = capsys.readouterr().out
    assert "circle" in table and "square" in table
    report = json.loads(next((trained / "eval").glob("*.json")).read_text())
    row = next(csv.DictReader(open(trained / "results.csv")))
    assert _find_number(report, "miou") == pytest.approx(float(row["miou"]), abs=1e-6)


def _find_number(obj, key):
    if isinstance(obj, dict):
        if isinstance(obj.get(key), (int, float)):
            return obj[key]
        for v in obj.values():
            found = _find_number(v, key)
            if found is not None:
                return found
    return None


def test_predict_writes_masks_and_overlays(trained, tmp_path, capsys):
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    for i, (h, w) in enumerate([(32, 32), (40, 50)]):
        cv2.imwrite(str(images / f"im{i}.png"), np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8))
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                str(trained / "config.yaml"),
                "--checkpoint",
                str(trained / "weights" / "best.pt"),
                "--input",
                str(images),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    mask = cv2.imread(str(out / "im1.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 50) and mask.max() < 4
    assert len(list(out.glob("*overlay*"))) == 2


def test_preview_writes_png(tmp_path):
    out = tmp_path / "p.png"
    assert main(["preview", str(CONFIG), *TINY, "--output", str(out), "--num", "4"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_resume_of_a_finished_run_keeps_its_result(trained, capsys):
    before = load_checkpoint(trained / "weights" / "last.pt")["model"]
    assert main(["train", str(CONFIG), f"output_dir={trained}", *TINY, "--resume"]) == 0
    after = load_checkpoint(trained / "weights" / "last.pt")["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "resuming" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", str(CONFIG), "train.epoch=2"], "unknown key 'train.epoch'; did you mean train.epochs?"),
        (
            ["train", str(CONFIG), "model.arch=Unte"],
            "model.arch 'Unte' is not an smp architecture (did you mean 'Unet'?)",
        ),
        (["train", str(CONFIG), "loss={dcie: 1.0}"], "loss: ComboLoss: unknown loss 'dcie'"),
        (["train", "missing.yaml"], "config file missing.yaml does not exist"),
        (["eval", str(CONFIG), "--checkpoint", "nope.pt"], "checkpoint nope.pt does not exist"),
        (["train", str(CONFIG), "output_dir=/nonexistent-dir-xyz", "--resume"], "no weights/last.pt under"),
    ],
)
def test_user_errors_are_one_clean_message_with_status_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("segdet: error: ") and message in err and "Traceback" not in err


def test_python_dash_m_segdet_reports_errors_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "segdet", "train", str(CONFIG), "optim.lr=fast"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "segdet: error: command-line override 'optim.lr=fast': optim.lr = 'fast' is a string, expected a number"
    )


def test_an_empty_config_is_one_error_line(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert main(["train", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"segdet: error: config {empty} is empty") and err.count("\n") == 1


def test_predict_refuses_to_write_over_its_inputs(trained, tmp_path, capsys):
    import cv2

    images = tmp_path / "images"
    (images / "pred").mkdir(parents=True)
    for name in ("a.png", "pred/b.png"):
        cv2.imwrite(str(images / name), np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    (tmp_path / "list.txt").write_text("images/a.png\nimages/pred/b.png\n")
    before = {p: p.read_bytes() for p in images.rglob("*.png")}
    base = ["predict", str(trained / "config.yaml"), "--checkpoint", str(trained / "weights" / "best.pt")]
    for inputs, output, shown in [
        (images, images, images / "a.png"),  # the same folder
        (tmp_path / "list.txt", images / "pred", images / "pred" / "b.png"),  # a listed input inside the output
        (images / "pred", tmp_path, images / "pred" / "b.png"),  # the output above the inputs
    ]:
        capsys.readouterr()
        assert main([*base, "--input", str(inputs), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(f"segdet: error: --output {output} holds the input image {shown}") and "Traceback" not in err
        )
        assert {p: p.read_bytes() for p in images.rglob("*.png")} == before  # nothing written
    assert main([*base, "--input", str(images), "--output", str(images / "out")]) == 0  # beside the inputs: fine
    assert (images / "out" / "a.png").is_file() and {p: p.read_bytes() for p in before} == before
    assert main([*base, "--input", str(images), "--output", str(images / "a.png")]) == 2
    assert "is a file" in capsys.readouterr().err
