"""Inputs and options that used to give a silent wrong number: each is now a NaN or one clear error."""

import math
import re

import pytest
import torch

import losses

N, C, H, W = 2, 3, 4, 5
REGION = ["dice", "jaccard", "tversky", "dice_bce", "lovasz"]


def _target(mode, seed=0):
    g = torch.Generator().manual_seed(seed)
    if mode == "multiclass":
        return torch.randint(0, C, (N, H, W), generator=g)
    c = 1 if mode == "binary" else C
    return torch.randint(0, 2, (N, c, H, W), generator=g)


def _region_cases():
    return [
        (name, mode) for name in REGION for mode in losses.MODES if not (name == "dice_bce" and mode == "multiclass")
    ]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name,mode", _region_cases())
def test_a_non_finite_logit_gives_a_non_finite_region_loss(name, mode, value):
    # before: NaN in a denominator scored like an empty class (0), and sigmoid(inf) = 1 hid inf
    c = 1 if mode == "binary" else C
    x = torch.randn(N, c, H, W, generator=torch.Generator().manual_seed(1))
    x[1, c - 1, 2, 3] = value
    loss = losses.LOSSES[name](mode=mode)
    assert not torch.isfinite(loss(x, _target(mode))), (name, mode, value)
    if name != "dice_bce":
        terms = losses.LOSSES[name](mode=mode, reduction="none")(x, _target(mode))
        assert not torch.isfinite(terms).any()


@pytest.mark.parametrize("weight", [-1.0, math.nan, math.inf, -math.inf])
def test_combo_rejects_weights_that_are_not_finite_and_non_negative(weight):
    with pytest.raises(ValueError, match=re.escape(f"weight of 'dice' is {weight!r}")):
        losses.ComboLoss({"ce": 1.0, "dice": weight}, "multiclass")
    with pytest.raises(ValueError, match="finite number >= 0"):
        losses.ComboLoss({"dice": {"weight": weight, "smooth": 1.0}}, "multiclass")
    assert losses.ComboLoss({"ce": 1.0, "dice": 0.0}, "multiclass").weights["dice"] == 0.0  # 0 turns it off


@pytest.mark.parametrize("bad", [2.0, -0.5, math.nan])
def test_sigmoid_focal_rejects_targets_outside_0_1(bad):
    x = torch.randn(2, 10, 4)
    t = torch.zeros(2, 10, 4)
    t[1, 3, 2] = bad
    with pytest.raises(ValueError, match=r"sigmoid_focal_loss: targets must lie in \[0, 1\]"):
        losses.sigmoid_focal_loss(x, t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.SigmoidFocalLoss()(x, t, normalizer=1)
    valid = torch.ones(2, 10, 1, dtype=torch.bool)
    valid[1, 3] = False  # an anchor left out may hold any value
    assert torch.isfinite(losses.sigmoid_focal_loss(x, t, valid=valid))


# (factory, message fragment): each option is refused when the loss is built
BAD_OPTIONS = [
    (lambda: losses.DiceLoss("multiclass", smooth=-1.0), r"smooth=-1\.0"),
    (lambda: losses.JaccardLoss("binary", smooth=math.nan), r"smooth=nan"),
    (lambda: losses.DiceLoss("multiclass", eps=0.0), r"eps=0\.0"),
    (lambda: losses.TverskyLoss("binary", alpha=0.0, beta=0.0), r"alpha = beta = 0"),
    (lambda: losses.TverskyLoss("binary", alpha=-0.2), r"alpha=-0\.2"),
    (lambda: losses.TverskyLoss("binary", gamma=0.0), r"gamma=0\.0"),
    (lambda: losses.DiceLoss("binary", class_weights=[1.0, 2.0, 0.5]), r"class_weights has 3 values.*binary"),
    (lambda: losses.DiceLoss("binary", classes=[1]), r"classes=\[1\].*binary"),
    (lambda: losses.DiceLoss("multiclass", classes=[-1, 2]), r"classes=\[-1, 2\]"),
    (lambda: losses.DiceLoss("multiclass", class_weights=[0.0, 0.0]), r"all 0"),
    (lambda: losses.FocalLoss("multilabel", class_weights=[1.0, math.nan]), r"class_weights holds \[nan\]"),
    (lambda: losses.LovaszLoss("multiclass", class_weights=[1.0, -2.0]), r"class_weights holds \[-2\.0\]"),
    (lambda: losses.BCELoss("binary", pos_weight=-1.0), r"pos_weight holds \[-1\.0\]"),
    (lambda: losses.BCELoss("binary", pos_weight=[1.0, 2.0]), r"pos_weight has 2 values.*binary"),
    (lambda: losses.BCELoss("multilabel", label_smoothing=1.5), r"label_smoothing=1\.5"),
    (lambda: losses.BalancedBCELoss("binary", beta=2.0), r"beta=2\.0"),
    (lambda: losses.FocalLoss("binary", gamma=-1.0), r"gamma=-1\.0"),
    (lambda: losses.FocalLoss("binary", alpha=1.5), r"alpha holds \[1\.5\]"),
    (lambda: losses.FocalLoss("binary", alpha=[0.2, 0.8]), r"alpha has 2 values.*binary"),
    (lambda: losses.CrossEntropyLoss(label_smoothing=-0.1), r"label_smoothing=-0\.1"),
    (lambda: losses.DiceBCELoss("binary", dice_weight=-1.0), r"dice_weight=-1\.0"),
    (lambda: losses.DiceBCELoss("binary", smooth=-0.5), r"smooth=-0\.5"),
    (lambda: losses.KDLoss(temperature=math.nan), r"temperature=nan"),
    (lambda: losses.SigmoidFocalLoss(alpha=2.0), r"alpha=2\.0"),
    (lambda: losses.SigmoidFocalLoss(gamma=-2.0), r"gamma=-2\.0"),
    (lambda: losses.BoxIoULoss("giou", eps=-1e-7), r"eps=-1e-07"),
]


@pytest.mark.parametrize("factory,match", BAD_OPTIONS, ids=[m for _, m in BAD_OPTIONS])
def test_nonsensical_options_are_refused_when_the_loss_is_built(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_the_functional_forms_refuse_the_same_options():
    x, y = torch.randn(N, 1, H, W), _target("binary")
    with pytest.raises(ValueError, match=r"dice_loss: smooth=-1"):
        losses.dice_loss(x, y, "binary", smooth=-1)
    with pytest.raises(ValueError, match=r"tversky_loss: alpha = beta = 0"):
        losses.tversky_loss(x, y, "binary", alpha=0, beta=0)
    with pytest.raises(ValueError, match=r"bce_loss: pos_weight holds \[-3\]"):
        losses.bce_loss(x, y, pos_weight=-3)
    with pytest.raises(ValueError, match=r"class_weights has 2 values.*binary"):
        losses.focal_loss(x, y, "binary", class_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"ComboLoss: loss 'dice': DiceLoss: smooth=-2"):
        losses.ComboLoss({"dice": {"smooth": -2}}, "binary")


def test_distillation_and_detection_losses_on_an_empty_batch():
    s = torch.zeros(0, C, H, W, requires_grad=True)
    out = losses.kd_loss(s, torch.zeros(0, C, H, W), temperature=2.0)
    out.backward()
    assert out.item() == 0.0 and s.grad.shape == s.shape
    x = torch.zeros(0, 8, requires_grad=True)
    for reduction in ("mean", "sum"):
        assert losses.sigmoid_focal_loss(x, x.detach(), reduction=reduction).item() == 0.0
    boxes = torch.zeros(0, 4, requires_grad=True)
    assert losses.box_iou_loss(boxes, boxes.detach(), "ciou").item() == 0.0
