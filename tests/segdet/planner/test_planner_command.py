"""segdet init end to end: the written file loads and trains, the budget formula, split files, every bad input."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from planner_data import make_folder, write_pair

from segdet.cli import main
from segdet.config import load_config
from segdet.data.sources import open_sources
from segdet.planner import command
from segdet.planner import plan as P
from segdet.planner.fingerprint import fingerprint
from segdet.planner.layout import VAL_EVERY

DSB = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "dsb2018"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_folder(root / "train", 12, shape=(64, 80), seed=0)
    make_folder(root / "val", 4, shape=(64, 80), seed=1)
    return root


def _fake_timer(calls: list):
    """Costs in proportion to the pixels of a step, recorded per call: no training runs."""

    def timer(cfg, forward_size):
        crop = cfg["augment"]["train"][1]["RandomCrop"]["height"]
        batch = cfg["data"]["batch_size"]
        calls.append((cfg["model"]["encoder"], crop, batch, forward_size))
        return P.Timing(
            step_s=0.2 * batch * crop * crop / 65536,
            data_s=0.01 * batch,
            forward_px_s=2e-6,
            checkpoint_s=0.3,
            startup_s=1.5,
            device="cpu",
            workers=2,
        )

    return timer


def _errors(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_init_writes_a_config_that_loads_and_trains(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "tiny.yaml"
    assert main(["init", str(tiny), "--output", str(out), "--minutes", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and f"segdet train {out}" in printed
    text = out.read_text()
    cfg = load_config(out)
    assert cfg["data"]["folder"]["train"] == str(tiny / "train") and cfg["data"]["folder"]["mask_values"] == {
        0: 0,
        255: 1,
    }
    assert cfg["model"]["mean"] != [0.485, 0.456, 0.406] and cfg["train"]["val_interval"] >= 1
    for key in ("epochs:", "val_interval:", "batch_size:", "RandomCrop", "mean:", "loss:", "flip:", "ema:"):
        line = next(x for x in text.splitlines() if key in x and not x.startswith("#"))
        assert "  # " in line, f"{key} has no reason: {line}"
    assert "training pairs decoded" in text and "timed on cpu" in text
    # one epoch with segdet train, as written (fewer epochs only, to keep the test short)
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(out), "train.epochs=1", "train.progress=false", "data.num_workers=0"]) == 0
    rows = (tmp_path / "runs" / "tiny" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and (tmp_path / "runs" / "tiny" / "weights" / "best.pt").is_file()


def test_epochs_and_batch_fit_the_budget_with_injected_timings(tiny, tmp_path, monkeypatch):
    calls: list = []
    out = tmp_path / "c.yaml"
    seen = []
    monkeypatch.setattr(command, "fingerprint", lambda *a, **k: seen.append(fingerprint(*a, **k)) or seen[-1])
    path, plan = command.init_config(tiny, out, minutes=2, timer=_fake_timer(calls), device="cpu", echo=lambda s: None)
    cfg = load_config(path)
    k = plan.candidate
    assert (cfg["data"]["batch_size"], cfg["model"]["encoder"]) == (k.batch, k.encoder)
    assert cfg["train"]["epochs"] == plan.epochs and cfg["train"]["val_interval"] == plan.val_interval
    assert calls[-1][:3] == (k.encoder, k.crop, k.batch)  # the plan's candidate was timed itself
    assert calls[0][3] == (64, 80)  # validation forward timed at the median validation image
    t = plan.timing
    spe = P.steps_per_epoch(12, k.batch)
    epoch_s = spe * (t.step_s + t.data_s) + t.checkpoint_s
    val_px = P.val_pixels([(64, 80)] * 4, k.batch, flips=len(plan.flip))
    val_s = val_px * t.forward_px_s + 4 * seen[0].read_s  # on a CPU validation also reads the 4 pairs
    assert plan.epoch_s == pytest.approx(epoch_s) and plan.val_s == pytest.approx(val_s)
    total = t.startup_s + P.PROCESS_S + plan.epochs * epoch_s + math.ceil(plan.epochs / plan.val_interval) * val_s
    assert plan.total_s == pytest.approx(total) and total <= 120 * (1 - P.MARGIN)
    one_more = total + epoch_s + (val_s if plan.epochs % plan.val_interval == 0 else 0.0)
    assert one_more > 120 * (1 - P.MARGIN)  # the most epochs that fit


def test_one_folder_is_split_reproducibly_into_files_beside_the_config(tmp_path):
    data = tmp_path / "data"
    make_folder(data, 13, shape=(64, 64))
    (data / "instances").mkdir()  # ignored
    out = tmp_path / "cfg" / "x.yaml"
    kw = {"minutes": 1, "timer": _fake_timer([]), "device": "cpu", "echo": lambda s: None}
    command.init_config(data, out, **kw)
    train_txt, val_txt = tmp_path / "cfg" / "x.train.txt", tmp_path / "cfg" / "x.val.txt"
    stems = sorted(f"img{i:03d}" for i in range(13))
    expected_val = stems[VAL_EVERY - 1 :: VAL_EVERY]
    assert val_txt.read_text().split() == expected_val == ["img004", "img009"]
    assert train_txt.read_text().split() == [s for s in stems if s not in expected_val]
    first = (train_txt.read_text(), val_txt.read_text())
    command.init_config(data, out, force=True, **kw)
    assert (train_txt.read_text(), val_txt.read_text()) == first
    raw = yaml.safe_load(out.read_text())
    assert raw["data"]["folder"]["train_split"] == "x.train.txt" and raw["data"]["folder"]["val_split"] == "x.val.txt"
    cfg = load_config(out)
    sources = open_sources(cfg["data"], target="mask")
    assert [p.stem for p in sources.val.images] == expected_val
    assert len(sources.train) == 11


def test_an_existing_config_is_kept_without_force(tiny, tmp_path, capsys):
    out = tmp_path / "keep.yaml"
    out.write_text("# mine\n")
    assert main(["init", str(tiny), "--output", str(out)]) == 2
    err = _errors(capsys)
    assert len(err) == 1 and f"{out} already exists; pass --force" in err[0]
    assert out.read_text() == "# mine\n"
    command.init_config(tiny, out, force=True, minutes=1, timer=_fake_timer([]), device="cpu", echo=lambda s: None)
    assert load_config(out)["data"]["kind"] == "folder"


def test_existing_split_files_are_kept_without_force(tmp_path, capsys):
    data = tmp_path / "data"
    make_folder(data, 6)
    (tmp_path / "y.val.txt").write_text("mine\n")
    assert main(["init", str(data), "--output", str(tmp_path / "y.yaml")]) == 2
    assert "y.val.txt already exists; pass --force" in _errors(capsys)[0]
    assert not (tmp_path / "y.yaml").exists() and (tmp_path / "y.val.txt").read_text() == "mine\n"


def _bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A bad dataset folder and the message it must produce."""
    root = tmp_path / case
    rng = np.random.default_rng(0)

    def pair(where, stem, size=(32, 32), mask_size=None):
        image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        mask = np.zeros(mask_size or size, np.uint8)
        mask[4:9, 4:9] = 255
        write_pair(where, stem, image, mask)

    if case == "missing":
        return root, rf"data folder {root} does not exist; segdet init needs {root}/train and {root}/val"
    root.mkdir()
    if case == "empty":
        return root, rf"data folder {root} is empty; put in it {root}/train and {root}/val"
    if case == "other":
        (root / "photos").mkdir()
        return root, r"holds neither train/ \+ val/ nor images/ \+ masks/ \(found: photos\)"
    if case == "train_only":
        pair(root / "train", "a")
        return root, rf"has train/ but no val/; add {root}/val/images and {root}/val/masks"
    if case == "images_only":
        (root / "images").mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "a.png")
        return root, rf"folder dataset directory {root}/masks does not exist; a folder dataset needs"
    if case == "masks_only":
        (root / "masks").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "a.png")
        return root, rf"folder dataset directory {root}/images does not exist"
    if case == "empty_images":
        (root / "images").mkdir()
        (root / "masks").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "a.png")
        return root, rf"no image files in {root}/images \(looked for .png"
    if case == "image_without_mask":
        pair(root, "a")
        pair(root, "b")
        (root / "masks" / "b.png").unlink()
        return root, rf"image {root}/images/b.png has no mask in {root}/masks .*add the masks"
    if case == "mask_without_image":
        pair(root / "train", "a")
        pair(root / "val", "b")
        pair(root / "val", "c")
        (root / "val" / "images" / "c.png").unlink()
        return root, rf"mask {root}/val/masks/c.png has no image in {root}/val/images"
    if case == "unreadable_image":
        pair(root, "a")
        pair(root, "b")
        (root / "images" / "b.png").write_bytes(b"not a png")
        return root, rf"cannot read image file {root}/images/b.png: .*re-export it"
    if case == "unreadable_mask":
        pair(root, "a")
        pair(root, "b")
        (root / "masks" / "a.png").write_bytes(b"\x89PNG broken")
        return root, rf"cannot read image file {root}/masks/a.png"
    if case == "mask_size":
        pair(root, "a")
        pair(root, "b", size=(32, 32), mask_size=(32, 30))
        return root, rf"mask {root}/masks/b.png is 32x30 but image {root}/images/b.png is 32x32 .*nearest-neighbour"
    if case == "single_value":
        for stem in "ab":
            write_pair(root, stem, np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8))
        return root, rf"every mask read in {root}/masks holds the single value 0; segmentation needs"
    if case == "one_pair":
        pair(root, "a")
        return root, rf"{root}/images holds one image/mask pair; add more pairs"
    raise AssertionError(case)


BAD = [
    "missing",
    "empty",
    "other",
    "train_only",
    "images_only",
    "masks_only",
    "empty_images",
    "image_without_mask",
    "mask_without_image",
    "unreadable_image",
    "unreadable_mask",
    "mask_size",
    "single_value",
    "one_pair",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_data_is_one_error_line_naming_the_folder_and_the_fix(tmp_path, capsys, case):
    root, pattern = _bad(tmp_path, case)
    out = tmp_path / "out.yaml"
    assert main(["init", str(root), "--output", str(out), "--minutes", "1"]) == 2
    err = _errors(capsys)
    assert len(err) == 1 and err[0].startswith("segdet: error: "), err
    assert re.search(pattern, err[0]), err[0]
    assert not out.exists()


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf"])
def test_minutes_must_be_positive(tiny, tmp_path, capsys, minutes):
    assert main(["init", str(tiny), "--output", str(tmp_path / "m.yaml"), "--minutes", minutes]) == 2
    err = _errors(capsys)
    assert len(err) == 1 and "--minutes must be a positive number of minutes" in err[0]


def test_detection_is_not_supported_yet(tiny, tmp_path, capsys):
    assert main(["init", str(tiny), "--output", str(tmp_path / "d.yaml"), "--task", "detection"]) == 2
    err = _errors(capsys)
    assert len(err) == 1 and "--task detection is not supported by segdet init yet" in err[0]


def test_output_must_be_a_file(tiny, tmp_path, capsys):
    assert main(["init", str(tiny), "--output", str(tmp_path), "--force"]) == 2
    assert "is a folder; --output must name a YAML file" in _errors(capsys)[0]


@pytest.mark.skipif(not DSB.is_dir(), reason="the DSB 2018 nuclei folder is not on this machine")
def test_dsb2018_fingerprint_and_data_plan():
    from segdet.planner.layout import find_layout

    fp = fingerprint(find_layout(DSB), max_files=24)
    assert len(fp.train_sizes) == 531 and len(fp.val_sizes) == 133 and fp.read == 24
    assert fp.modes == {"RGBA": 664} and fp.min_size == (256, 256) and fp.max_size == (1040, 1388)
    d = P.plan_data(fp)
    assert d.mask_values == {0: 0, 255: 1} and d.classes == ("background", "foreground")
    assert d.scale == 1.0 and d.crop == 256 and d.inference_mode == "whole"  # small nuclei at native resolution
    assert d.loss == {"ce": 1.0, "dice": 1.0}  # nuclei are a minority of the pixels
    assert d.diameters[1][1] < 40
