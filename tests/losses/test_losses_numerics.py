"""gradcheck, degenerate inputs, reduced precision and input errors for every segmentation loss."""

import pytest
import torch

import losses

N, C, H, W = 2, 3, 2, 3

# (name, function, extra kwargs, modes)
SEG = [
    ("dice", losses.dice_loss, {}, ("binary", "multiclass", "multilabel")),
    ("dice_smooth", losses.dice_loss, {"smooth": 1.0, "per_image": True}, ("binary", "multiclass", "multilabel")),
    ("jaccard", losses.jaccard_loss, {"log_loss": True}, ("binary", "multiclass", "multilabel")),
    ("tversky", losses.tversky_loss, {"alpha": 0.3, "beta": 0.7, "gamma": 1.5}, ("binary", "multiclass", "multilabel")),
    ("bce", losses.bce_loss, {"pos_weight": 2.0, "label_smoothing": 0.1}, ("binary", "multiclass", "multilabel")),
    ("balanced_bce", losses.balanced_bce_loss, {}, ("binary", "multiclass", "multilabel")),
    ("focal", losses.focal_loss, {"alpha": 0.25}, ("binary", "multilabel")),
    ("focal_softmax", losses.focal_loss, {"alpha": [0.2, 0.3, 0.5]}, ("multiclass",)),
    ("lovasz", losses.lovasz_loss, {"per_image": True}, ("binary", "multiclass", "multilabel")),
    ("ce", losses.cross_entropy_loss, {"label_smoothing": 0.1}, ("multiclass",)),
    ("dice_bce", losses.dice_bce_loss, {}, ("binary", "multilabel")),
]
CASES = [(name, fn, kw, mode) for name, fn, kw, modes in SEG for mode in modes]
IDS = [f"{name}-{mode}" for name, _, _, mode in CASES]


def _inputs(mode, dtype=torch.float64, seed=0, soft=False):
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else C
    x = torch.randn(N, c, H, W, generator=g, dtype=torch.float64)
    if soft:
        t = torch.rand(N, c, H, W, generator=g, dtype=torch.float64)
        if mode == "multiclass":
            t = t / t.sum(1, keepdim=True)
            t[0, :, 0, 0] = 0  # MixUp of two unlabelled pixels
            t[1, :, 1, 1] *= 0.5  # half-labelled pixel
        return x.to(dtype), t
    if mode == "multiclass":
        y = torch.randint(0, C, (N, H, W), generator=g)
        y[0, 0, :2] = 255
    else:
        y = torch.randint(0, 2, (N, c, H, W), generator=g)
        y[0, 0, 0, :2] = 255
    return x.to(dtype), y


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("name,fn,kw,mode", CASES, ids=IDS)
def test_gradcheck(name, fn, kw, mode, soft):
    x, y = _inputs(mode, soft=soft)
    ii = None if soft else 255
    x.requires_grad_(True)
    # fast mode checks random directions; the hand-written backward of the region sums is also
    # checked in full below.
    assert torch.autograd.gradcheck(lambda z: fn(z, y, mode, ignore_index=ii, **kw), (x,), fast_mode=True)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(
    "fn,mode",
    [(losses.dice_loss, "multiclass"), (losses.tversky_loss, "multilabel"), (losses.dice_bce_loss, "multilabel")],
)
def test_gradcheck_full_for_the_custom_backward(fn, mode, soft):
    x, y = _inputs(mode, soft=soft)
    ii = None if soft else 255
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: fn(z, y, mode, ignore_index=ii), (x,))


@pytest.mark.parametrize("name,fn,kw,mode", CASES, ids=IDS)
def test_every_pixel_ignored_is_zero_with_zero_gradient(name, fn, kw, mode):
    x, y = _inputs(mode)
    x.requires_grad_(True)
    y = torch.full_like(y, 255)
    loss = fn(x, y, mode, ignore_index=255, **kw)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(x.grad) == 0


@pytest.mark.parametrize("name,fn,kw,mode", CASES, ids=IDS)
def test_empty_masks_and_extreme_logits_are_finite(name, fn, kw, mode):
    _, y = _inputs(mode)
    y = torch.zeros_like(y)  # empty masks: background everywhere
    for value in (-1e4, 1e4, 0.0):
        c = 1 if mode == "binary" else C
        x = torch.full((N, c, H, W), value, requires_grad=True)
        x.data[:, :, 0, 0] = -value
        x.data[:, 0, 1, 1] = 0.5 * value
        loss = fn(x, y, mode, **kw)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), (value, loss)


@pytest.mark.parametrize("name,fn,kw,mode", CASES, ids=IDS)
def test_half_and_bfloat16_reduce_in_float32(name, fn, kw, mode):
    x, y = _inputs(mode, dtype=torch.float32, seed=1)
    ref = fn(x, y, mode, ignore_index=255, **kw)
    for dtype in (torch.float16, torch.bfloat16):
        xr = x.to(dtype)
        out = fn(xr, y, mode, ignore_index=255, **kw)
        assert out.dtype == torch.float32
        assert torch.allclose(out, fn(xr.float(), y, mode, ignore_index=255, **kw), atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(x, y, mode, ignore_index=255, **kw)
    assert out.dtype == torch.float32 and torch.allclose(out, ref, atol=1e-6)


def test_fp16_dice_over_a_large_batch_does_not_overflow():
    # smp's fp16 Dice sums 8x256x256 probabilities in half precision and overflows to NaN/Inf.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 128, 128, generator=g).half()
    y = torch.randint(0, 2, (8, 1, 128, 128), generator=g)
    assert torch.allclose(losses.dice_loss(x, y, "binary"), losses.dice_loss(x.float(), y, "binary"), atol=1e-6)


def test_soft_multiclass_zero_vectors_count_as_ignored():
    x, t = _inputs("multiclass", soft=True)
    assert t[0, :, 0, 0].sum() == 0
    for fn in (losses.dice_loss, losses.focal_loss, losses.cross_entropy_loss, losses.lovasz_loss, losses.bce_loss):
        base = fn(x, t, "multiclass")
        changed = x.clone()
        changed[0, :, 0, 0] = torch.tensor([50.0, -50.0, 3.0], dtype=x.dtype)
        assert torch.allclose(fn(changed, t, "multiclass"), base, atol=1e-12), fn.__name__


MODULES = [
    losses.DiceLoss,
    losses.JaccardLoss,
    losses.TverskyLoss,
    losses.BCELoss,
    losses.BalancedBCELoss,
    losses.FocalLoss,
    losses.LovaszLoss,
]


@pytest.mark.parametrize("cls", MODULES)
def test_bad_inputs_raise_with_the_offending_value(cls):
    with pytest.raises(ValueError, match="multi-class"):
        cls("multi-class")
    loss = cls("multiclass", ignore_index=255)
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"\(2, 5, 5\)"):
        loss(x, torch.zeros(2, 5, 5, dtype=torch.long))
    bad = torch.zeros(2, 4, 4, dtype=torch.long)
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"\[7\]"):
        loss(x, bad)
    with pytest.raises(TypeError, match="integer"):
        loss(x, torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):  # dtype errors are ValueErrors too
        loss(x, torch.zeros(2, 4, 4))
    with pytest.raises(TypeError, match="floating"):
        loss(torch.zeros(2, 3, 4, 4, dtype=torch.long), bad)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        cls("binary")(x, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[2\]"):
        cls("multilabel")(x, torch.full((2, 3, 4, 4), 2))
    with pytest.raises(ValueError, match=r"1\.5"):
        cls("multilabel")(x, torch.full((2, 3, 4, 4), 1.5))


def test_ignore_index_inside_the_class_range():
    x, y = _inputs("multiclass")
    y = y.clamp_max(C - 1)
    keep = y != 0
    # ignoring class 0 equals dropping its pixels: compare with a 1-pixel-per-row reference
    a = losses.cross_entropy_loss(x, y, ignore_index=0)
    ref = torch.nn.functional.cross_entropy(x, y, reduction="none")[keep].mean()
    assert torch.allclose(a, ref)
    d = losses.dice_loss(x, y, "multiclass", ignore_index=0, reduction="none")
    assert d[0] == 0  # class 0 has no target pixels left: empty term scores 0 (smooth = 0)
