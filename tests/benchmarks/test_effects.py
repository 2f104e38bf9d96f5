"""benchmarks/effects.py: every row is the baseline plus one technique, the subsets, the table's numbers."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdet.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("effects", ROOT / "benchmarks" / "effects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


effects = _load()


def _leaves(cfg, prefix=""):
    """{dotted key: value} of a nested config (lists kept whole)."""
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _fake_dsb(root: Path, n_train: int = 5, n_val: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
                root / split / "images" / f"{i:02d}.png"
            )
            mask = np.zeros((20, 24), np.uint8)
            mask[5:12, 6:15] = 255
            Image.fromarray(mask).save(root / split / "masks" / f"{i:02d}.png")
    return root


#: the one config section each row may change (written here, not read from the script)
SECTION = {
    **{n: "augment.mix" for n in ("CutMix", "FMix", "Mosaic", "MixUp", "CopyPaste", "RICAP", "ResizeMix")},
    **{n: "augment.mix" for n in ("SaliencyMix", "PuzzleMix")},
    **{n: "augment.train" for n in ("AutoAugment", "RandAugment", "TrivialAugment")},
    "ManifoldMixup": "augment.feature_mix",
    "PatchUp": "augment.feature_mix",
    "label smoothing": "loss.ce",
    "Lion": "optim",
    "AdaBound": "optim",
    "none (baseline)": "",
}


def _changed(base: dict, other: dict) -> set[str]:
    a, b = _leaves(base), _leaves(other)
    return {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}


@pytest.mark.parametrize("dataset", ["builtin", "dsb"])
def test_every_row_is_the_baseline_plus_the_keys_it_names(tmp_path, dataset):
    if dataset == "builtin":
        cfg_path, train_steps, lr = effects.builtin_config(tmp_path, 0)
    else:
        cfg_path, train_steps, lr = effects.dsb_config(_fake_dsb(tmp_path / "dsb"), tmp_path, 0)
    base = load_config(cfg_path)
    assert base["augment"]["mix"] == [] and base["augment"]["feature_mix"] == []
    assert base["augment"]["train"] == train_steps
    rows = effects.techniques(train_steps, lr)
    names = [name for name, _, _ in rows]
    assert names[0] == effects.BASELINE and len(names) == len(set(names)) == 18
    for name, _, overrides in rows:
        cfg = load_config(cfg_path, overrides)  # every override is valid for the schema
        changed = _changed(base, cfg)
        allowed = SECTION[name]
        assert all(k == allowed or k.startswith(allowed + ".") for k in changed), (name, changed)
        assert (name == effects.BASELINE) == (not changed), name
        if name in ("AutoAugment", "RandAugment", "TrivialAugment"):
            assert cfg["augment"]["train"][:-1] == train_steps and next(iter(cfg["augment"]["train"][-1])) == name
        if name == "Lion":
            assert cfg["optim"]["lr"] == pytest.approx(lr / 10)


def test_dsb_subset_is_evenly_spaced_symlinks(tmp_path):
    ids = [f"{i:03d}" for i in range(10)]
    assert effects.evenly_spaced(ids, 4) == ["000", "002", "005", "007"]
    assert effects.evenly_spaced(ids, 10) == ids and effects.evenly_spaced(ids, 50) == ids
    data = _fake_dsb(tmp_path / "dsb", n_train=6, n_val=4)
    sub = effects.dsb_subset(data, tmp_path / "sub", {"train_images": 3, "val_images": 2})
    train = sorted(p.name for p in (sub / "train" / "images").iterdir())
    assert train == ["00.png", "02.png", "04.png"]
    assert sorted(p.name for p in (sub / "val" / "masks").iterdir()) == ["00.png", "02.png"]
    assert all((sub / "train" / "masks" / n).resolve() == (data / "train" / "masks" / n).resolve() for n in train)


def test_table_means_stds_and_deltas_against_numpy(tmp_path):
    rows = effects.techniques(effects.BUILTIN_TRAIN, 0.004)[:3]
    base, cut = [0.71, 0.74, 0.69], [0.80, 0.77]
    results = {
        ("builtin", rows[0][0]): [(s, m, 10.0 + s) for s, m in enumerate(base)],
        ("builtin", "CutMix"): [(s, m, 20.0) for s, m in enumerate(cut)],
    }
    failures = {("builtin", "CutMix"): ["seed 2: ValueError: x"], ("builtin", "FMix"): ["seed 0: boom"]}
    text = effects.write(tmp_path, "header", rows, results, ["builtin"], failures)
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("|")}
    assert f"{np.mean(base):.4f} ± {np.std(base, ddof=1):.4f}" in lines["none (baseline)"]
    assert f"{np.mean(cut):.4f} ± {np.std(cut, ddof=1):.4f} (1 failed)" in lines["CutMix"]
    assert f"{np.mean(cut) - np.mean(base):+.4f}" in lines["CutMix"]
    assert "failed (1 runs)" in lines["FMix"] and "- failed, builtin FMix seed 0: boom" in text
    assert (tmp_path / "effects.csv").read_text().count("\n") == 1 + len(base) + len(cut)
    mean, std = effects.mean_std([0.5])
    assert (mean, std) == (0.5, 0.0) and all(math.isnan(v) for v in effects.mean_std([]))


def test_out_inside_the_repository_and_missing_dsb_are_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["effects.py", "--out", str(ROOT / "runs" / "x")])
    assert effects.main() == 2
    assert "effects: error: --out" in capsys.readouterr().err and not (ROOT / "runs" / "x").exists()
    monkeypatch.setattr(
        sys, "argv", ["effects.py", "--dataset", "dsb", "--data", str(tmp_path / "no"), "--out", str(tmp_path / "o")]
    )
    assert effects.main() == 2
    captured = capsys.readouterr()
    assert "effects: skipping DSB2018" in captured.out and "effects: error: no dataset to run" in captured.err
    monkeypatch.setattr(
        sys, "argv", ["effects.py", "--only", "CutMx", "--dataset", "builtin", "--out", str(tmp_path / "o")]
    )
    assert effects.main() == 2
    assert "is not a row" in capsys.readouterr().err
