"""Feature-level mixing (``augment.feature_mix``): the hooked forward against a hand-written one, the targets
against a naive per-pixel loop, the block mask against a naive dilation, and the degenerate cases."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segdet.segmentation import feature_mix as fm_module
from segdet.segmentation._feature_targets import copy_targets, mix_targets, pixel_weights
from segdet.segmentation.feature_mix import (
    FeatureMixing,
    ManifoldMixup,
    PatchUp,
    build_feature_mixing,
    encoder_of,
    encoder_stages,
    patchup_mask,
)
from segdet.segmentation.model import build_segmentation_model

IGNORE = 255


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_segmentation_model({"arch": "Unet", "encoder": "resnet18", "encoder_weights": None}, 3).double()
    return m.train()


def manual_forward(model, images, stage, mix):
    """SegmentationModel -> Unet(resnet18) written out, the features 0..stage mixed by ``mix`` once stage is reached."""
    net, enc = model.net, model.net.encoder
    x = (images - model.mean.double()) / model.std.double()
    steps = [
        lambda h: enc.relu(enc.bn1(enc.conv1(h))),
        lambda h: enc.layer1(enc.maxpool(h)),
        enc.layer2,
        enc.layer3,
        enc.layer4,
    ]
    feats = [x]
    if stage == 0:
        feats = [mix(x)]
    for k, step in enumerate(steps, start=1):
        h = step(feats[-1])
        feats.append(h)
        if k == stage:
            feats = [mix(f) for f in feats]
    return net.segmentation_head(net.decoder(feats))


def fixed_plan(fm, mixer, stage, perm, lam):
    fm.draw = lambda b: (mixer, stage, np.asarray(perm), lam)
    return fm


def bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


@pytest.mark.parametrize("stage", [0, 1, 2, 3, 4, 5])
def test_manifold_mixup_equals_hand_written_forward(model, stage):
    g = torch.Generator().manual_seed(stage)
    images = torch.rand(3, 3, 32, 64, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (3, 32, 64), generator=g)
    perm, lam = [2, 0, 1], 0.3
    mixer = ManifoldMixup(p=1.0, stages=(stage,))
    fm = fixed_plan(FeatureMixing([mixer]), mixer, stage, perm, lam)
    state = copy.deepcopy(model.state_dict())
    logits, mixed = fm.forward(model, images, target, IGNORE)
    model.load_state_dict(state)  # the same BatchNorm statistics for the reference pass
    idx = torch.tensor(perm)
    ref = manual_forward(model, images, stage, lambda f: lam * f + (1 - lam) * f[idx])
    model.load_state_dict(state)
    torch.testing.assert_close(logits, ref, rtol=1e-9, atol=1e-9)
    onehot = F.one_hot(target, 3).permute(0, 3, 1, 2).double()
    torch.testing.assert_close(mixed.double(), lam * onehot + (1 - lam) * onehot[idx], rtol=0, atol=1e-6)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize(("stage", "mode"), [(0, "hard"), (2, "hard"), (3, "soft"), (4, "hard")])
def test_patchup_equals_hand_written_forward_and_targets_follow_the_cells(model, monkeypatch, stage, mode):
    g = torch.Generator().manual_seed(10 + stage)
    images = torch.rand(2, 3, 32, 64, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 32, 64), generator=g)
    target[0, :5] = IGNORE
    stride = 2**stage
    cells = torch.rand(32 // stride, 64 // stride, generator=g) < 0.4
    monkeypatch.setattr(fm_module, "patchup_mask", lambda size, block, gamma, rng: cells.numpy())
    perm, lam = [1, 0], 0.7
    mixer = PatchUp(p=1.0, block=3, gamma=0.5, mode=mode, stages=(stage,))
    fm = fixed_plan(FeatureMixing([mixer]), mixer, stage, perm, lam)
    state = copy.deepcopy(model.state_dict())
    logits, mixed = fm.forward(model, images, target, IGNORE)
    model.load_state_dict(state)
    idx = torch.tensor(perm)

    def mix(f):
        factor = f.shape[-1] // cells.shape[-1]
        region = cells.repeat_interleave(factor, 0).repeat_interleave(factor, 1)
        inside = f[idx] if mode == "hard" else lam * f + (1 - lam) * f[idx]
        return torch.where(region, inside, f)

    ref = manual_forward(model, images, stage, mix)
    model.load_state_dict(state)
    torch.testing.assert_close(logits, ref, rtol=1e-9, atol=1e-9)
    # pixel (y, x) lies in cell (y // stride, x // stride)
    t = target.numpy()
    for b in range(2):
        for y in range(0, 32, 3):
            for x in range(0, 64, 5):
                altered = bool(cells[y // stride, x // stride])
                if mode == "hard":
                    assert mixed[b, y, x] == (t[perm[b], y, x] if altered else t[b, y, x])
                else:
                    w = lam if altered else 1.0
                    expect = naive_pixel(t[b, y, x], t[perm[b], y, x], w, 3)
                    np.testing.assert_allclose(mixed[b, :, y, x].numpy(), expect, atol=1e-6)
    assert mixed.dtype == (torch.int64 if mode == "hard" else torch.float32)


def naive_pixel(a, b, w, k):
    """Target vector of one pixel: w * onehot(a) + (1 - w) * onehot(b) over the labelled share (module rule)."""
    num, den = np.zeros(k), 0.0
    for label, weight in ((a, w), (b, 1.0 - w)):
        if 0 <= label < k and label != IGNORE:
            num[label] += weight
            den += weight
    return num / den if den > 0 else np.zeros(k)


@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 17, 23)])
def test_mix_targets_against_naive_loop(shape):
    g = torch.Generator().manual_seed(shape[1])
    k = 4
    target = torch.randint(0, k, shape, generator=g)
    target[torch.rand(shape, generator=g) < 0.2] = IGNORE
    target[0, 0, 0] = 7  # out of range: unlabelled too
    index = torch.randperm(shape[0], generator=g)
    weights = torch.rand(shape[1:], generator=g)
    weights[0, :] = 1.0
    weights[1, :] = 0.0
    out = mix_targets(target, index, weights, k, IGNORE)
    t, w = target.numpy(), weights.numpy().astype(np.float64)
    for b in range(shape[0]):
        for y in range(shape[1]):
            for x in range(shape[2]):
                expect = naive_pixel(t[b, y, x], t[index[b], y, x], w[y, x], k)
                np.testing.assert_allclose(out[b, :, y, x].numpy(), expect, atol=1e-6)
    # soft inputs: the same rule on the probabilities (one-hot in, the same answer out)
    soft = F.one_hot(torch.where((target < k), target, 0), k).permute(0, 3, 1, 2).float()
    soft = soft * (target < k)[:, None]
    torch.testing.assert_close(mix_targets(soft, index, weights, k, IGNORE), out)
    with pytest.raises(ValueError, match="soft"):
        mix_targets(torch.rand(2, 1, 4, 4), torch.tensor([1, 0]), 0.5, 2, IGNORE)


def test_copy_targets_and_pixel_weights_against_loops():
    g = torch.Generator().manual_seed(4)
    cells = torch.rand(3, 4, generator=g) < 0.5
    full = pixel_weights(cells, (8, 8), (21, 30))
    for y in range(21):
        for x in range(30):
            assert bool(full[y, x]) == bool(cells[y // 8, x // 8])
    target = torch.randint(0, 3, (2, 4, 21, 30), generator=g)  # multilabel channels: copied exactly
    out = copy_targets(target, torch.tensor([1, 0]), full)
    assert torch.equal(out[0][:, full], target[1][:, full]) and torch.equal(out[0][:, ~full], target[0][:, ~full])
    with pytest.raises(ValueError, match="covers"):
        pixel_weights(cells, (8, 8), (25, 30))


@pytest.mark.parametrize(("size", "block", "gamma"), [((12, 16), 3, 0.5), ((6, 5), 7, 0.9), ((24, 32), 5, 0.0)])
def test_patchup_mask_against_naive_dilation(size, block, gamma):
    h, w = size
    centres = np.random.default_rng(5).random(size)
    adj = min(1.0, gamma * h * w / (block**2 * max(h - block + 1, 1) * max(w - block + 1, 1)))
    centres = centres < adj
    r = block // 2
    expect = np.zeros(size, bool)
    for y in range(h):
        for x in range(w):
            expect[y, x] = centres[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].any()
    assert np.array_equal(patchup_mask(size, block, gamma, np.random.default_rng(5)), expect)


def test_degenerate_cases(model):
    images = torch.rand(1, 3, 64, 64, dtype=torch.float64)  # train-mode BatchNorm needs 2 values at stage 5
    target = torch.randint(0, 3, (1, 64, 64))
    state = copy.deepcopy(model.state_dict())
    fm = FeatureMixing([ManifoldMixup(p=1.0, stages=(2,))])
    logits, out = fm.forward(model, images, target, IGNORE)  # a batch of one: nothing to mix with
    model.load_state_dict(state)
    assert out is target
    torch.testing.assert_close(logits, model(images))
    model.load_state_dict(state)
    images2 = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    target2 = torch.randint(0, 3, (2, 32, 32))
    target2[0, 0] = IGNORE
    never = FeatureMixing([ManifoldMixup(p=0.0), PatchUp(p=0.0)])
    assert all(never.draw(8) is None for _ in range(20))
    plain = model(images2)
    model.load_state_dict(state)
    mixer = ManifoldMixup(p=1.0, stages=(3,))
    for lam, own in ((1.0, True), (0.0, False)):
        fm = fixed_plan(FeatureMixing([mixer]), mixer, 3, [1, 0], lam)
        logits, out = fm.forward(model, images2, target2, IGNORE)
        model.load_state_dict(state)
        expect = plain if own else manual_forward(model, images2, 3, lambda f: f[torch.tensor([1, 0])])
        model.load_state_dict(state)
        torch.testing.assert_close(logits, expect, rtol=1e-9, atol=1e-9)
        labels = target2 if own else target2[[1, 0]]
        valid = labels != IGNORE
        assert torch.equal(out.argmax(1)[valid], labels[valid])
        assert torch.all(out.sum(1)[~valid] == 0)  # unlabelled where all the weight lies stays unlabelled


def test_draws_repeat_after_reseeding_like_a_resumed_epoch():
    mixers = [ManifoldMixup(p=0.5, stages=(0, 1, 2)), PatchUp(p=0.5)]
    torch.manual_seed(123)
    a = FeatureMixing(mixers)
    first = [a.draw(4) for _ in range(24)]
    b = FeatureMixing(mixers)
    torch.manual_seed(123)  # the trainer reseeds at every epoch start
    again = [b.draw(4) for _ in range(24)]
    key = [(None if d is None else (type(d[0]).__name__, d[1], tuple(d[2]), d[3])) for d in first]
    assert key == [(None if d is None else (type(d[0]).__name__, d[1], tuple(d[2]), d[3])) for d in again]
    assert any(d is not None for d in first) and any(d is None for d in first)
    torch.manual_seed(124)  # another epoch: other mixes
    other = [b.draw(4) for _ in range(24)]
    assert key != [(None if d is None else (type(d[0]).__name__, d[1], tuple(d[2]), d[3])) for d in other]


def test_autocast_and_backward(model):
    m = copy.deepcopy(model).float()
    images, target = torch.rand(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    mixer = PatchUp(p=1.0, block=3, gamma=0.6, mode="soft", stages=(2,))
    fm = fixed_plan(FeatureMixing([mixer]), mixer, 2, [1, 0], 0.4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, out = fm.forward(m, images, target, IGNORE)
    assert logits.dtype == torch.bfloat16 and out.dtype == torch.float32
    (logits.float() * out).sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    ema = copy.deepcopy(m)  # what ModelEMA keeps: no hook travels with it
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in ema.modules())


def test_stage_probe_and_unhookable_stages():
    torch.manual_seed(0)
    mit = build_segmentation_model({"arch": "Unet", "encoder": "mit_b0", "encoder_weights": None}, 2)
    assert encoder_stages(encoder_of(mit)) == {}
    fm = build_feature_mixing([{"ManifoldMixup": {"p": 1.0, "stages": [0, 2]}}], encoder_name="mit_b0")
    with pytest.raises(ValueError, match=r"augment.feature_mix\[0\].*stage 2.*mit_b0.*\[0\]"):
        fm.forward(mit, torch.rand(2, 3, 64, 64), torch.zeros(2, 64, 64, dtype=torch.long), IGNORE)
    with pytest.raises(ValueError, match="no net.encoder|has none"):
        encoder_of(torch.nn.Conv2d(3, 2, 1))


@pytest.mark.parametrize(
    ("steps", "mode", "match"),
    [
        ([{"ManifoldMixUp": {}}], "multiclass", "did you mean 'ManifoldMixup'"),
        ([{"PatchUp": {"blok": 3}}], "multiclass", "did you mean 'block'"),
        ([{"PatchUp": {"block": 4}}], "multiclass", "odd"),
        ([{"PatchUp": {"mode": "hrad"}}], "multiclass", "did you mean 'hard'"),
        ([{"ManifoldMixup": {"stages": []}}], "multiclass", "stages"),
        ([{"ManifoldMixup": {"p": 1.5}}], "multiclass", r"p = 1.5"),
        ([{"ManifoldMixup": {"alpha": 0}}], "multiclass", "alpha"),
        ([{"ManifoldMixup": {}}], "multilabel", "multilabel"),
        ([{"PatchUp": {"mode": "soft"}}], "multilabel", "multilabel"),
        ({"PatchUp": {}}, "multiclass", "must be a list"),
    ],
)
def test_config_errors(steps, mode, match):
    with pytest.raises(ValueError, match=match):
        build_feature_mixing(steps, mode)


def test_hard_patchup_is_allowed_in_multilabel_and_empty_is_off():
    assert build_feature_mixing([], "multiclass") is None
    fm = build_feature_mixing([{"PatchUp": {"mode": "hard", "stages": [1, 2]}}], "multilabel")
    assert fm.mixers == [PatchUp(mode="hard", stages=(1, 2))]


@pytest.mark.parametrize("mode", ["multiclass", "binary"])
def test_task_loss_is_the_combo_loss_of_the_mixed_forward(tmp_path, mode):
    from segdet.config import load_config
    from segdet.segmentation.task import SegmentationTask, binary_target
    from segdet.task import DataSpec

    path = tmp_path / "c.yaml"
    path.write_text("task: segmentation\n")
    cfg = load_config(path, [f"data.mode={mode}", "augment.feature_mix=[{ManifoldMixup: {p: 1.0, stages: [2]}}]"])
    task = SegmentationTask(cfg)
    task.check()
    torch.manual_seed(0)
    classes = ("background", "fg") if mode == "binary" else ("a", "b", "c")
    model = task.build_model(DataSpec(classes, mode=mode)).double()
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    mask = torch.randint(0, len(classes), (2, 32, 32), generator=g)
    mask[1, :4] = IGNORE
    fixed_plan(task._make_feature_mix(), task._make_feature_mix().mixers[0], 2, [1, 0], 0.25)
    state = copy.deepcopy(model.state_dict())
    total, terms = task.loss(model, {"image": images, "mask": mask})
    model.load_state_dict(state)
    logits = manual_forward(model, images, 2, lambda f: 0.25 * f + 0.75 * f[torch.tensor([1, 0])])
    target = mix_targets(mask, torch.tensor([1, 0]), 0.25, len(classes), IGNORE)
    if mode == "binary":
        target = binary_target(target, IGNORE)
    torch.testing.assert_close(total, task._make_loss()(logits, target))
    assert set(terms) == {"ce", "dice"} or set(terms) == {"bce", "dice"}


def test_build_model_checks_the_stages_before_training(tmp_path):
    from segdet.config import load_config
    from segdet.segmentation.task import SegmentationTask
    from segdet.task import DataSpec

    path = tmp_path / "c.yaml"
    path.write_text("task: segmentation\n")
    cfg = load_config(path, ["model.encoder=mit_b0", "augment.feature_mix=[{PatchUp: {stages: [3]}}]"])
    with pytest.raises(ValueError, match=r"stage 3 is not a hookable stage of model.encoder mit_b0"):
        SegmentationTask(cfg).build_model(DataSpec(("a", "b")))
