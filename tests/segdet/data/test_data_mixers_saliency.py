"""SaliencyMix and PuzzleMix reached by name from ``augment.mix``, in ``segdet preview`` and its errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from augment import PuzzleMix, SaliencyMix
from segdet.cli import main
from segdet.data import build_mixers

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "unet_cutmix.yaml"
TINY = [
    "data.synthetic.train_size=8",
    "data.synthetic.val_size=4",
    "data.synthetic.height=32",
    "data.synthetic.width=32",
    "data.num_workers=0",
    "model.encoder=resnet18",
    "train.device=cpu",
]


def test_the_config_builds_them_with_the_task_classes():
    steps = [{"SaliencyMix": {"p": 0.5, "alpha": 0.5}}, {"PuzzleMix": {"grid": [2, 4], "min_visibility": 0.3}}]
    saliency, puzzle = build_mixers(steps, num_classes=3, ignore_index=255)
    assert isinstance(saliency, SaliencyMix) and (saliency.p, saliency.alpha, saliency.num_classes) == (0.5, 0.5, 3)
    assert isinstance(puzzle, PuzzleMix) and puzzle.grid == (2, 4) and puzzle.ignore_index == 255


@pytest.mark.parametrize(
    "steps,message",
    [
        (
            [{"SaliencyMix": {"alpah": 1.0}}],
            r"augment.mix\[0\]: SaliencyMix has no argument 'alpah'.*did you mean 'alpha'",
        ),
        ([{"PuzzleMix": {"grid": 0}}], r"augment.mix\[0\]: bad arguments for PuzzleMix: PuzzleMix grid must be"),
        ([{"SalencyMix": {}}], r"unknown mixer 'SalencyMix'.*SaliencyMix"),
    ],
)
def test_bad_steps_name_the_step_and_the_fix(steps, message):
    with pytest.raises(ValueError, match=message):
        build_mixers(steps, num_classes=3, ignore_index=255)


def test_preview_shows_the_mixed_samples(tmp_path):
    pictures = {}
    for name, mix in (
        ("none", "[]"),
        ("SaliencyMix", "[{SaliencyMix: {p: 1.0}}]"),
        ("PuzzleMix", "[{PuzzleMix: {p: 1.0}}]"),
    ):
        out = tmp_path / f"{name}.png"
        assert main(["preview", str(CONFIG), *TINY, f"augment.mix={mix}", "--output", str(out), "--num", "4"]) == 0
        pictures[name] = cv2.imread(str(out))
    assert pictures["none"].shape == pictures["SaliencyMix"].shape == pictures["PuzzleMix"].shape
    assert (pictures["none"] != pictures["SaliencyMix"]).any() and (pictures["none"] != pictures["PuzzleMix"]).any()


def test_preview_with_a_bad_option_is_one_error_line(tmp_path, capsys):
    args = [
        "preview",
        str(CONFIG),
        *TINY,
        "augment.mix=[{PuzzleMix: {alpha: -1}}]",
        "--output",
        str(tmp_path / "p.png"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segdet: error: augment.mix[0]: bad arguments for PuzzleMix: PuzzleMix alpha must be > 0")
    assert len(err.splitlines()) == 1
