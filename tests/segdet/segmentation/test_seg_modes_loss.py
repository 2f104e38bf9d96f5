"""The segmentation loss of each data.mode against naive float64 BCE and Dice written out here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from segdet.config import load_config
from segdet.segmentation.task import SegmentationTask, binary_target, loss_spec

IGNORE = 255


class Identity(nn.Module):
    """The batch image already holds the logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _task(tmp_path, mode: str, loss: dict | None = None) -> SegmentationTask:
    path = tmp_path / "c.yaml"
    path.write_text("task: segmentation\n")
    overrides = [f"data.mode={mode}"]
    cfg = load_config(path, overrides)
    if loss is not None:
        cfg["loss"] = loss
    return SegmentationTask(cfg)


def naive_bce(x: np.ndarray, t: np.ndarray, valid: np.ndarray) -> float:
    """Mean over valid elements of -t log s(x) - (1 - t) log(1 - s(x)), float64."""
    x, t = x.astype(np.float64), t.astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-x))
    terms = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    return float(terms[valid].sum() / valid.sum())


def naive_dice(x: np.ndarray, t: np.ndarray, valid: np.ndarray) -> float:
    """Mean over channels of 1 - 2 sum(p t) / (sum p + sum t), the batch summed, ignored left out, float64.

    x, t, valid: (N, C, H, W). A channel whose target is empty scores 0 (smooth = 0).
    """
    p = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    t = t.astype(np.float64)
    out = []
    for c in range(x.shape[1]):
        v = valid[:, c]
        pc, tc = p[:, c][v], t[:, c][v]
        if tc.sum() == 0:
            out.append(0.0)
            continue
        out.append(1.0 - 2.0 * np.minimum(pc, tc).sum() / (pc.sum() + tc.sum()))
    return float(np.mean(out))


@pytest.mark.parametrize("shape", [(2, 9, 13), (4, 128, 160)])
def test_binary_default_loss_is_bce_plus_dice(tmp_path, shape):
    gen = torch.Generator().manual_seed(0)
    n, h, w = shape
    logits = torch.randn(n, 1, h, w, generator=gen) * 3
    target = torch.randint(0, 2, (n, h, w), generator=gen)
    target[torch.rand(n, h, w, generator=gen) < 0.2] = IGNORE
    task = _task(tmp_path, "binary")
    total, terms = task.loss(Identity(), {"image": logits, "mask": target})
    x, t = logits.numpy()[:, 0], target.numpy()
    valid = t != IGNORE
    t01 = np.where(valid, t, 0)
    bce = naive_bce(x, t01, valid)
    dice = naive_dice(x[:, None], t01[:, None], valid[:, None])
    assert sorted(terms) == ["bce", "dice"]
    assert float(terms["bce"]) == pytest.approx(bce, rel=1e-5, abs=1e-6)
    assert float(terms["dice"]) == pytest.approx(dice, rel=1e-5, abs=1e-6)
    assert float(total) == pytest.approx(bce + dice, rel=1e-5, abs=1e-6)


def test_binary_soft_two_class_mask_is_the_foreground_probability(tmp_path):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 12, 10, generator=gen)
    p1 = torch.rand(2, 12, 10, generator=gen)
    soft = torch.stack([1 - p1, p1], 1)
    soft[0, :, :3] = 0.0  # unlabelled in both MixUp sources
    task = _task(tmp_path, "binary")
    total, terms = task.loss(Identity(), {"image": logits, "mask": soft})
    valid = np.ones((2, 12, 10), bool)
    valid[0, :3] = False
    x, t = logits.numpy()[:, 0], p1.numpy()
    assert float(terms["bce"]) == pytest.approx(naive_bce(x, t, valid), rel=1e-5)
    assert float(terms["dice"]) == pytest.approx(naive_dice(x[:, None], t[:, None], valid[:, None]), rel=1e-5)


def test_binary_target_marks_unlabelled_pixels_ignored():
    soft = torch.tensor([[[[0.25, 0.0]], [[0.75, 0.0]]]])  # (1, 2, 1, 2)
    out = binary_target(soft, IGNORE)
    assert out.shape == (1, 1, 1, 2) and out.flatten().tolist() == [0.75, float(IGNORE)]
    hard = torch.tensor([[[0, 1]]])
    assert binary_target(hard, IGNORE) is hard
    with pytest.raises(ValueError, match="two channels"):
        binary_target(torch.rand(1, 3, 2, 2), IGNORE)


def test_multilabel_default_loss_is_bce_plus_dice_per_channel(tmp_path):
    gen = torch.Generator().manual_seed(2)
    n, k, h, w = 3, 4, 40, 36
    logits = torch.randn(n, k, h, w, generator=gen) * 2
    target = torch.randint(0, 2, (n, k, h, w), generator=gen).to(torch.uint8)
    target[torch.rand(n, k, h, w, generator=gen) < 0.1] = IGNORE
    target[:, 3] = 0  # an empty channel: Dice 0, still counted in the mean
    task = _task(tmp_path, "multilabel")
    _, terms = task.loss(Identity(), {"image": logits, "mask": target})
    x, t = logits.numpy(), target.numpy()
    valid = t != IGNORE
    t01 = np.where(valid, t, 0)
    assert float(terms["bce"]) == pytest.approx(naive_bce(x, t01, valid), rel=1e-5)
    assert float(terms["dice"]) == pytest.approx(naive_dice(x, t01, valid), rel=1e-5)


def test_multiclass_loss_spec_is_unchanged():
    spec = {"ce": 1.0, "dice": {"weight": 0.5, "smooth": 1.0}}
    assert loss_spec(spec, "multiclass") is spec
    assert loss_spec(spec, "multilabel") == {"bce": 1.0, "dice": {"weight": 0.5, "smooth": 1.0}}
    assert loss_spec({"CE": {"label_smoothing": 0.1}}, "binary") == {"bce": {"label_smoothing": 0.1}}


def test_ce_and_bce_together_in_a_sigmoid_mode_is_one_clear_error(tmp_path):
    task = _task(tmp_path, "binary", {"ce": 1.0, "bce": 1.0})
    with pytest.raises(ValueError, match=r"data.mode binary ce means bce .* both 'ce' and 'bce'; keep one"):
        task.check()


def test_a_loss_that_does_not_exist_in_the_mode_names_the_mode(tmp_path):
    task = _task(tmp_path, "multiclass", {"dice_bce": 1.0})
    with pytest.raises(ValueError, match=r"^loss: .*dice_bce.*\(data.mode is multiclass\)"):
        task.check()


def test_an_option_ce_does_not_take_in_bce_names_the_mapping(tmp_path):
    task = _task(tmp_path, "multilabel", {"ce": {"pos_weightt": 2.0}})
    with pytest.raises(ValueError, match=r"pos_weightt.*data.mode is multilabel; ce is bce"):
        task.check()
