"""segdet train, eval and predict end to end in binary and multilabel mode on tiny image folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from segdet.checkpoint import load_checkpoint
from segdet.cli import main
from segdet.config import ConfigError, load_config
from segdet.engine.commands import inference_spec
from segdet.segmentation.task import SegmentationTask
from segdet.task import DataSpec

ROOT = Path(__file__).resolve().parents[3]
RUN = ["data.num_workers=0", "train.epochs=2", "train.device=cpu", "train.progress=false", "data.batch_size=3"]


def _shapes(rng, h=32, w=40):
    image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.integers(8, h - 8), rng.integers(8, w - 8)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 36
    box = (abs(yy - cy - 3) < 5) & (abs(xx - cx + 4) < 6)  # overlaps the disc
    image[disc, 0] = 230
    image[box, 1] = 230
    return image, disc, box


def _folders(root: Path, mode: str) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        d = root / split
        (d / "images").mkdir(parents=True)
        for i in range(n):
            image, disc, box = _shapes(rng)
            Image.fromarray(image).save(d / "images" / f"{i}.png")
            if mode == "binary":
                (d / "masks").mkdir(exist_ok=True)
                Image.fromarray(((disc | box) * 255).astype(np.uint8)).save(d / "masks" / f"{i}.png")
            else:
                for name, m in (("disc", disc), ("box", box)):
                    (d / "masks" / name).mkdir(parents=True, exist_ok=True)
                    Image.fromarray((m * 255).astype(np.uint8)).save(d / "masks" / name / f"{i}.png")
    data = {"kind": "folder", "mode": mode, "folder": {"train": "train", "val": "val"}}
    if mode == "binary":
        data["classes"] = ["background", "object"]
        data["folder"]["mask_values"] = {0: 0, 255: 1}
        data["threshold"] = 0.45
    cfg = {
        "task": "segmentation",
        "data": data,
        "augment": {
            "mix": [{"CutMix": {"p": 0.5}}] + ([{"MixUp": {"p": 0.5}}] if mode == "binary" else []),
            "batch_mix": [{"CutMix": {"p": 0.5}}] + ([{"MixUp": {"p": 0.5}}] if mode == "binary" else []),
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(tmp_path_factory, mode: str):
    root = tmp_path_factory.mktemp(mode)
    config = _folders(root, mode)
    out = root / "run"
    assert main(["train", str(config), f"output_dir={out}", *RUN]) == 0
    return mode, config, out


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    return _train(tmp_path_factory, "binary")


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    return _train(tmp_path_factory, "multilabel")


@pytest.fixture(params=["binary", "multilabel"])
def trained(request):
    return request.getfixturevalue(f"{request.param}_run")


def test_training_writes_a_checkpoint_with_the_mode_and_threshold(trained):
    mode, _, out = trained
    ckpt = load_checkpoint(out / "weights" / "last.pt")
    assert ckpt["mode"] == mode and ckpt["threshold"] == (0.45 if mode == "binary" else 0.5)
    spec = DataSpec.from_checkpoint(ckpt)
    assert spec.mode == mode and spec.out_channels == (1 if mode == "binary" else 2)
    out_conv = [v for k, v in ckpt["model"].items() if k.endswith("segmentation_head.0.weight")]
    assert out_conv and out_conv[0].shape[0] == spec.out_channels
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[-1]["threshold"]) == ckpt["threshold"]
    assert all(np.isfinite(float(r["loss"])) for r in rows) and "train/bce" in rows[0]


def test_eval_reproduces_the_last_validation(trained, capsys):
    mode, _, out = trained
    capsys.readouterr()
    assert main(["eval", str(out / "config.yaml"), *RUN[:1], "--checkpoint", str(out / "weights" / "last.pt")]) == 0
    table = capsys.readouterr().out
    doc = json.loads((out / "eval" / "metrics.json").read_text())
    with open(out / "results.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert doc["mode"] == mode and doc["miou"] == pytest.approx(float(last["miou"]), abs=1e-9)
    assert f"{mode}: predicted where sigmoid(logit) > threshold" in table


def test_predict_writes_the_masks_of_the_mode(trained, tmp_path, capsys):
    mode, config, out = trained
    images = config.parent / "val" / "images"
    dest = tmp_path / "pred"
    assert main(["predict", str(out / "config.yaml"), "--checkpoint", str(out / "weights" / "best.pt"),
                 "--input", str(images), "--output", str(dest)]) == 0  # fmt: skip
    stems = sorted(p.stem for p in images.iterdir())
    if mode == "binary":
        for stem in stems:
            assert set(np.unique(np.asarray(Image.open(dest / f"{stem}.png"))).tolist()) <= {0, 1}
    else:
        for name in ("box", "disc"):
            for stem in stems:
                assert set(np.unique(np.asarray(Image.open(dest / name / f"{stem}.png"))).tolist()) <= {0, 255}
    assert all((dest / f"{s}_overlay.png").is_file() for s in stems)


def test_predict_takes_the_mode_from_the_checkpoint(binary_run):
    _, _, out = binary_run
    ckpt = load_checkpoint(out / "weights" / "last.pt")
    plain = load_config(ROOT / "configs" / "unet_cutmix.yaml", ["data.classes=null"])  # a multiclass config
    spec = inference_spec(SegmentationTask(plain), plain, ckpt)
    assert spec.mode == "binary" and spec.threshold == 0.45 and spec.classes == ("background", "object")
    own = load_config(out / "config.yaml", ["data.threshold=0.3"])
    assert inference_spec(SegmentationTask(own), own, ckpt).threshold == 0.3  # the config's, same mode


def test_eval_with_another_mode_is_one_clear_error(binary_run, capsys):
    _, _, out = binary_run
    args = ["eval", str(out / "config.yaml"), "data.mode=multiclass", "--checkpoint", str(out / "weights" / "last.pt")]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("segdet: error: checkpoint ") and "was trained with data.mode binary" in err
    assert "set data.mode=binary" in err and len(err.strip().splitlines()) == 1


def test_multilabel_mixup_stops_before_training(multilabel_run, tmp_path, capsys):
    _, config, _ = multilabel_run
    capsys.readouterr()
    args = ["train", str(config), f"output_dir={tmp_path / 'r'}", "augment.mix=[{MixUp: {p: 0.5}}]", *RUN]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "segdet: error: augment.mix[0]: MixUp does not support data.mode multilabel (it blends masks into class "
        "probabilities, and multilabel masks are one 0/1 channel per class); use CutMix or Mosaic or ResizeMix "
        "or RICAP or SaliencyMix or PuzzleMix, or remove the step"
    )
    assert not (tmp_path / "r").exists()  # stopped by the task's check, before the run folder


def test_unknown_mode_is_a_schema_error_with_did_you_mean(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  mode: multilable\n")
    with pytest.raises(ConfigError, match=r"data.mode = 'multilable' is not one of .*; did you mean 'multilabel'\?"):
        load_config(path)


@pytest.mark.parametrize("value, message", [("1.5", "must be <= 1.0"), ("0.0", "strictly between 0 and 1")])
def test_threshold_outside_0_1_is_named(tmp_path, value, message, capsys):
    args = ["train", str(ROOT / "configs" / "unet_binary.yaml"), f"data.threshold={value}", "train.device=cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("segdet: error: ") and "data.threshold" in err and message in err


def test_ignore_index_that_is_a_target_value_is_named(tmp_path, capsys):
    args = ["train", str(ROOT / "configs" / "unet_binary.yaml"), "data.ignore_index=1", "train.device=cpu"]
    assert main(args) == 2
    assert "data.ignore_index = 1 is a target value in data.mode binary" in capsys.readouterr().err


def test_unet_binary_config_trains_on_synthetic_shapes(tmp_path):
    tiny = [
        "data.synthetic.train_size=6",
        "data.synthetic.val_size=3",
        "data.synthetic.height=32",
        "data.synthetic.width=32",
        "train.epochs=1",
        f"output_dir={tmp_path / 'run'}",
        *RUN[:1],
        *RUN[2:],
    ]
    assert main(["train", str(ROOT / "configs" / "unet_binary.yaml"), *tiny]) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "weights" / "last.pt")
    assert ckpt["classes"] == ["background", "shape"] and ckpt["mode"] == "binary"
    assert torch.is_tensor(next(iter(ckpt["model"].values())))


def test_multilabel_batch_mixup_is_refused_by_the_check(multilabel_run, tmp_path):
    _, config, _ = multilabel_run
    cfg = load_config(config, [f"output_dir={tmp_path / 'r'}", "augment.batch_mix=[{CutMix: {}}, {MixUp: {}}]"])
    with pytest.raises(ValueError, match=r"augment.batch_mix\[1\]: MixUp does not support data.mode multilabel"):
        SegmentationTask(cfg).check()
