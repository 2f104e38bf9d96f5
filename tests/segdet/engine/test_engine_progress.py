"""train.progress: tqdm bars on a terminal, plain lines (no carriage returns) in logs and pipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from engine_fake_task import FakeTask, fake_config

from segdet.engine import _progress, train
from segdet.engine._progress import Progress, is_terminal

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^epoch (\d+)/(\d+)  step (\d+)/(\d+)  loss \d+\.\d{4}  lr \d\.\d\de[-+]\d\d  img/s \d+\.\d$")
VAL = re.compile(r"^  val  batch (\d+)/(\d+)  img/s \d+\.\d$")


def test_training_into_a_pipe_prints_plain_lines_without_carriage_returns(tmp_path):
    """The loop as a CI job or nohup runs it: stdout and stderr are pipes, not terminals."""
    env = {
        **os.environ,
        "FAKE_PROGRESS": "1",
        "FAKE_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[2])]),
    }
    proc = subprocess.run(
        [sys.executable, str(HERE / "engine_fake_task.py"), str(tmp_path / "run"), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stdout and "\r" not in proc.stderr
    lines = proc.stdout.splitlines()
    # 16 training images in batches of 4 and 8 validation images: short passes, one line at the end
    steps = [LINE.match(x).groups() for x in lines if LINE.match(x)]
    assert steps == [("1", "2", "4", "4"), ("2", "2", "4", "4")]
    assert [VAL.match(x).groups() for x in lines if VAL.match(x)] == [("2", "2"), ("2", "2")]
    # each epoch: its progress line, its validation line, then the epoch summary
    summaries = [i for i, x in enumerate(lines) if x.startswith("epoch ") and "best" in x]
    assert len(summaries) == 2
    assert all(LINE.match(lines[i - 2]) and VAL.match(lines[i - 1]) for i in summaries)


def test_a_long_epoch_prints_a_line_at_every_tenth(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_progress, "LONG_PASS", 10)  # 16 steps count as long here
    cfg = fake_config(tmp_path / "run", epochs=1, progress=True)
    cfg["data"]["batch_size"] = 1  # 16 steps, 8 validation batches (short: one line)
    train(cfg, task=FakeTask(cfg))
    out = capsys.readouterr()
    assert "\r" not in out.out and "\r" not in out.err
    steps = [int(LINE.match(x).group(3)) for x in out.out.splitlines() if LINE.match(x)]
    assert steps == [2, 4, 5, 7, 8, 10, 12, 13, 15, 16]  # ceil(16 * k / 10), k = 1..10
    assert [VAL.match(x).groups() for x in out.out.splitlines() if VAL.match(x)] == [("8", "8")]


@pytest.mark.parametrize("total,lines", [(1, [1]), (7, [7]), (99, [99]), (100, list(range(10, 101, 10)))])
def test_plain_lines_per_pass_length(total, lines, capsys):
    bar = Progress(range(total), "epoch 1/1", terminal=False)
    for i, _ in enumerate(bar):
        bar.update(i + 1, loss=0.5, lr=1e-3, img_s=10.0)
    printed = [int(m.group(3)) for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    assert printed == lines


def test_a_terminal_keeps_the_tqdm_bar(capsys, monkeypatch):
    for stream in (sys.stdout, sys.stderr):  # capsys' streams, made to look like a terminal
        monkeypatch.setattr(stream, "isatty", lambda: True)
    assert is_terminal()
    bar = Progress(range(3), "epoch 1/1")
    assert bar.bar is not None
    for i, _ in enumerate(bar):
        bar.update(i + 1, loss=0.5, lr=1e-3, img_s=10.0)
    out = capsys.readouterr()
    assert out.out == "" and "\r" in out.err and "epoch 1/1" in out.err


def test_disabled_progress_prints_nothing(capsys):
    bar = Progress(range(3), "epoch 1/1", enabled=False, terminal=False)
    for i, _ in enumerate(bar):
        bar.update(i + 1, loss=0.5)
    assert capsys.readouterr() == ("", "")
