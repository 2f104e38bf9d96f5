"""ComboLoss built from config dicts, and the registry."""

import pytest
import torch

import losses


def _mc():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, generator=g)
    y = torch.randint(0, 3, (2, 5, 6), generator=g)
    y[0, 0] = 255
    return x, y


def test_registry_names():
    need = {"dice", "jaccard", "bce", "balanced_bce", "focal", "tversky", "lovasz", "ce", "dice_bce"}
    assert need <= set(losses.LOSSES)
    assert all(k == k.lower() for k in losses.LOSSES)


def test_combo_is_weighted_sum_and_reports_terms():
    x, y = _mc()
    spec = {"dice": {"weight": 1.0, "smooth": 1.0}, "focal": {"weight": 2.0, "gamma": 2.0}, "ce": 0.5}
    combo = losses.ComboLoss(spec, "multiclass", ignore_index=255)
    total = combo(x, y)
    dice = losses.dice_loss(x, y, "multiclass", smooth=1.0, ignore_index=255)
    focal = losses.focal_loss(x, y, "multiclass", gamma=2.0, ignore_index=255)
    ce = losses.cross_entropy_loss(x, y, ignore_index=255)
    assert torch.allclose(total, dice + 2 * focal + 0.5 * ce)
    assert set(combo.last_terms) == {"dice", "focal", "ce"}
    assert torch.allclose(combo.last_terms["focal"], focal)
    assert not combo.last_terms["dice"].requires_grad


def test_unknown_names_and_options():
    with pytest.raises(ValueError, match=r"'dcie'.*did you mean 'dice'"):
        losses.ComboLoss({"dcie": 1.0}, "multiclass")
    with pytest.raises(ValueError, match=r"'smoth'.*'dice'.*did you mean 'smooth'"):
        losses.ComboLoss({"dice": {"smoth": 1.0}}, "multiclass")
    with pytest.raises(ValueError, match="weight of 'ce' must be a number"):
        losses.ComboLoss({"ce": "heavy"}, "multiclass")
    with pytest.raises(ValueError, match="'ce'.*multiclass"):
        losses.ComboLoss({"ce": 1.0}, "binary")
    with pytest.raises(ValueError, match="mode"):
        losses.ComboLoss({"dice": 1.0}, "multi-class")
    with pytest.raises(ValueError, match="twice"):
        losses.ComboLoss({"dice": 1.0, "Dice": 2.0}, "binary")
    with pytest.raises(ValueError, match="non-empty"):
        losses.ComboLoss({}, "binary")


def test_binary_combo_backward():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 4, 4, generator=g, requires_grad=True)
    y = torch.randint(0, 2, (2, 4, 4), generator=g)
    combo = losses.ComboLoss(
        {
            "bce": 1.0,
            "dice": 1.0,
            "lovasz": 0.5,
            "balanced_bce": 1.0,
            "tversky": {"alpha": 0.3, "beta": 0.7},
            "jaccard": 1.0,
            "dice_bce": 1.0,
        },
        "binary",
    )
    combo(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
