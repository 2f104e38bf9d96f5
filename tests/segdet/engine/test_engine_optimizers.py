"""optim.name: torch's AdamW/SGD and pytorch-optimizer's AdaBound, AdaBoundW and Lion, against float64 update rules."""

from __future__ import annotations

import builtins
import math

import pytest
import torch
from torch import nn

from segdet.config import ConfigError, load_config
from segdet.engine.optim import build_optimizer

pytest.importorskip("pytorch_optimizer")

BASE = {"lr": 0.01, "weight_decay": 0.1, "momentum": 0.8, "args": {}}


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))


def _one_step(name, **args):
    """Parameters before and after one step on a fixed loss, and their gradients."""
    model = _model()
    opt = build_optimizer(model, {**BASE, "name": name, "args": args})
    loss = (model(torch.linspace(-1, 1, 6).reshape(2, 3)) ** 2).sum()
    loss.backward()
    before = [p.detach().double().clone() for p in model.parameters()]
    grads = [p.grad.detach().double().clone() for p in model.parameters()]
    opt.step()
    after = [p.detach().double() for p in model.parameters()]
    return before, grads, after, [p.ndim > 1 for p in model.parameters()]


def test_lion_is_the_sign_update_with_decoupled_decay_on_weights_only():
    # Lion (Chen et al. 2023), first step from m = 0: p <- p - lr * (sign((1 - b1) g) + wd * p)
    before, grads, after, decayed = _one_step("lion")
    for p0, g, p1, d in zip(before, grads, after, decayed):
        wd = BASE["weight_decay"] if d else 0.0
        expected = p0 * (1 - BASE["lr"] * wd) - BASE["lr"] * torch.sign((1 - BASE["momentum"]) * g)
        torch.testing.assert_close(p1, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["adabound", "adaboundw"])
def test_adabound_first_step_is_adam_clipped_to_the_bounds(name):
    # AdaBound (Luo et al. 2019), step 1: m = (1-b1) g, v = (1-b2) g^2, bias-corrected step size
    # lr * sqrt(1 - b2) / (1 - b1), clipped to [final_lr (1 - 1/(gamma + 1)), final_lr (1 + 1/gamma)]
    final_lr, gamma, b1, b2, eps, lr = 0.1, 1e-3, BASE["momentum"], 0.999, 1e-8, BASE["lr"]
    before, grads, after, decayed = _one_step(name, final_lr=final_lr, gamma=gamma)
    lower, upper = final_lr * (1 - 1 / (gamma + 1)), final_lr * (1 + 1 / gamma)
    for p0, g, p1, d in zip(before, grads, after, decayed):
        wd = BASE["weight_decay"] if d else 0.0
        if name == "adabound":  # L2: the decay joins the gradient
            g = g + wd * p0
        else:  # decoupled, as AdamW
            p0 = p0 * (1 - lr * wd)
        m, v = (1 - b1) * g, (1 - b2) * g * g
        step = torch.clamp(lr * math.sqrt(1 - b2) / (1 - b1) / (v.sqrt() + eps), lower, upper)
        torch.testing.assert_close(p1, p0 - step * m, rtol=1e-5, atol=1e-7)


def test_adamw_and_sgd_take_no_optim_args_and_unknown_keys_are_named():
    model = _model()
    with pytest.raises(ValueError, match="optim.args is for the pytorch-optimizer optimizers"):
        build_optimizer(model, {**BASE, "name": "adamw", "args": {"final_lr": 0.1}})
    with pytest.raises(ValueError, match=r"optim.args.final_l: AdaBound \(adabound\) has no option .*final_lr"):
        build_optimizer(model, {**BASE, "name": "adabound", "args": {"final_l": 0.1}})
    with pytest.raises(ValueError, match="optim.args.lr: .*set optim.lr instead"):
        build_optimizer(model, {**BASE, "name": "lion", "args": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"optim \(lion\): .*"):
        build_optimizer(model, {**BASE, "name": "lion", "args": {"betas": [2.0, 0.99]}})


def test_a_missing_package_says_what_to_install(monkeypatch):
    real = builtins.__import__

    def refuse(name, *a, **k):
        if name == "pytorch_optimizer":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ValueError, match=r"pip install 'segdet\[optim\]'"):
        build_optimizer(_model(), {**BASE, "name": "lion"})


def test_the_config_accepts_the_names_and_refuses_others(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: segmentation\noptim: {name: lion, lr: 0.0003, args: {betas: [0.9, 0.98]}}\n")
    cfg = load_config(path)
    assert cfg["optim"]["name"] == "lion" and cfg["optim"]["args"] == {"betas": [0.9, 0.98]}
    with pytest.raises(ConfigError, match="optim.name"):
        load_config(path, ["optim.name=lamb"])
