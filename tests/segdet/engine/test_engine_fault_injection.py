"""SIGKILL of a real training process at a step, then resume: bit-identical to the run never killed.

The fast half of ``benchmarks/fault_injection.py`` (which kills at 10 random steps, before the
first checkpoint included): one kill in the middle of an epoch, with loader workers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _injector():
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "benchmarks" / "fault_injection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def injector():
    return _injector()


@pytest.fixture(scope="module")
def reference(injector, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    injector._run(out, injector._env(workers=2, every=1, accumulate=1))
    return out


def test_sigkill_inside_an_epoch_then_resume_is_bit_identical(injector, reference, tmp_path):
    assert injector.trial(tmp_path, 6, workers=2, every=1, accumulate=1, reference=reference) == []  # epoch 2


def test_the_comparison_sees_a_one_ulp_difference(injector, reference):
    """The check itself can fail: one weight moved to the next float32 is found."""
    import copy

    import torch

    from segdet.checkpoint import load_checkpoint

    a = load_checkpoint(reference / "weights/last.pt")
    b = copy.deepcopy(a)
    name = next(iter(b["model"]))
    b["model"][name].view(-1)[0] = torch.nextafter(b["model"][name].view(-1)[0], torch.tensor(float("inf")))
    b["scheduler"]["last_epoch"] += 1
    assert injector.differences(a, b) == [f"model.{name}", "scheduler.last_epoch"]
