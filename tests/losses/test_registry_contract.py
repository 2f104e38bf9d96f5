"""The contract every loss in ``losses.LOSSES`` keeps, for each mode it supports.

The cases are read from the registry, so a loss added to ``losses.LOSSES`` is held to this
contract without being listed here. An entry supports a mode when
``cls(mode=mode, ignore_index=255)`` builds (the way :class:`losses.ComboLoss` builds it); any
other mode must be refused with a ValueError naming it. For every supported mode:

- ``reduction="mean"`` gives a finite scalar in the input's float dtype, with a finite gradient;
- every hard and soft target shape of ``losses.constants`` works, and a soft target holding a
  hard target's 0/1 values scores the same;
- float64 gradcheck passes for hard targets (some pixels ignored) and soft targets;
- a target with every pixel ignored scores 0 with zero gradient (hard: every pixel is
  ``ignore_index``; soft multiclass: every probability vector is zero);
- an empty batch (N = 0) scores 0 with a zero gradient (``sum`` 0, ``none`` an empty result),
  where torch's mean-reduced losses give NaN (0 / 0);
- a NaN logit gives a NaN loss;
- logits of the wrong rank or channel count, a target of the wrong shape, an unknown mode and an
  unknown reduction raise ValueError/TypeError whose message names the offending value;
- at a realistic size, (2, C, 128, 128) with ignored rows, float32 agrees with float64;
- ``ComboLoss({name: 1}, mode)`` gives the entry's value.

Formulas are checked against references in the other modules of tests/losses.
"""

import inspect
import re

import pytest
import torch
import torch.nn.functional as F

import losses
from losses import LOSSES, MODES

N, C, H, W = 2, 3, 3, 4
IGNORE = 255

# Registry name -> why float64 gradcheck cannot check it. Lovász is piecewise linear in the
# logits; gradcheck still holds away from ties in the sorted errors, which random inputs avoid.
GRADCHECK_SKIP: dict[str, str] = {}


def _supports(cls: type, mode: str) -> bool:
    try:
        cls(mode=mode, ignore_index=IGNORE)
    except ValueError:
        return False
    return True


def _has_option(cls: type, option: str) -> bool:
    return option in inspect.signature(cls).parameters


CASES = [(name, mode) for name, cls in sorted(LOSSES.items()) for mode in MODES if _supports(cls, mode)]
IDS = [f"{name}-{mode}" for name, mode in CASES]
REFUSED = [(name, mode) for name, cls in sorted(LOSSES.items()) for mode in MODES if not _supports(cls, mode)]
NAMES = sorted(LOSSES)


def _channels(mode: str) -> int:
    return 1 if mode == "binary" else C


def _logits(mode: str, seed: int = 0, dtype: torch.dtype = torch.float64, size=(H, W)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, _channels(mode), *size, generator=g, dtype=torch.float64).to(dtype)


def _labels(mode: str, seed: int = 1, size=(H, W)) -> torch.Tensor:
    """Hard labels in their canonical shape: (N, *S) for binary and multiclass, (N, C, *S) multilabel."""
    g = torch.Generator().manual_seed(seed)
    if mode == "multiclass":
        return torch.randint(0, C, (N, *size), generator=g)
    if mode == "binary":
        return torch.randint(0, 2, (N, *size), generator=g)
    return torch.randint(0, 2, (N, C, *size), generator=g)


def _with_ignored(labels: torch.Tensor) -> torch.Tensor:
    out = labels.clone()
    out[0, ..., 0, :2] = IGNORE
    out[1, ..., 2, 1] = IGNORE
    return out


def _same_labels_every_shape(mode: str, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The hard and 0/1 soft target shapes ``mode`` accepts, all holding ``labels``."""
    if mode == "multiclass":
        return {
            "(N, H, W) long": labels,
            "(N, 1, H, W) long": labels[:, None],
            "(N, C, H, W) float one-hot": F.one_hot(labels, C).permute(0, 3, 1, 2).double(),
        }
    if mode == "binary":
        return {
            "(N, H, W) long": labels,
            "(N, 1, H, W) long": labels[:, None],
            "(N, H, W) bool": labels.bool(),
            "(N, H, W) float": labels.double(),
            "(N, 1, H, W) float": labels[:, None].double(),
        }
    return {"(N, C, H, W) long": labels, "(N, C, H, W) bool": labels.bool(), "(N, C, H, W) float": labels.double()}


def _soft(mode: str, seed: int = 2) -> torch.Tensor:
    """A soft target of the logits' shape: probabilities over C (multiclass) or per channel."""
    g = torch.Generator().manual_seed(seed)
    if mode == "multiclass":
        return torch.softmax(torch.randn(N, C, H, W, generator=g, dtype=torch.float64), 1)
    return torch.rand(N, _channels(mode), H, W, generator=g, dtype=torch.float64)


def _target(mode: str, kind: str) -> torch.Tensor:
    return _with_ignored(_labels(mode)) if kind == "hard" else _soft(mode)


def _all_ignored(mode: str, kind: str) -> torch.Tensor:
    if kind == "hard":
        return torch.full_like(_labels(mode), IGNORE)
    if mode == "multiclass":
        return torch.zeros(N, C, H, W, dtype=torch.float64)  # no labelled mass anywhere
    return torch.full((N, _channels(mode), H, W), float(IGNORE), dtype=torch.float64)


def _build(name: str, mode: str, **options) -> torch.nn.Module:
    return LOSSES[name](mode=mode, ignore_index=IGNORE, **options)


def _scalar_and_grad(loss: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    out = loss(x, y)
    out.backward()
    return out.detach(), x.grad


def test_every_entry_supports_a_mode():
    for name, cls in LOSSES.items():
        assert any(_supports(cls, mode) for mode in MODES), f"{name}: {cls.__name__} builds in no mode"


@pytest.mark.parametrize("name,mode", REFUSED, ids=[f"{n}-{m}" for n, m in REFUSED])
def test_a_refused_mode_is_named(name, mode):
    with pytest.raises(ValueError, match=re.escape(f"'{mode}'")):
        _build(name, mode)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_mean_is_a_finite_scalar(name, mode, dtype):
    options = {"reduction": "mean"} if _has_option(LOSSES[name], "reduction") else {}
    out, grad = _scalar_and_grad(_build(name, mode, **options), _logits(mode, dtype=dtype), _target(mode, "hard"))
    assert out.shape == () and out.dtype == dtype
    assert torch.isfinite(out) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_every_target_shape_works_and_0_1_soft_targets_equal_hard_ones(name, mode):
    loss, x = _build(name, mode), _logits(mode)
    forms = _same_labels_every_shape(mode, _labels(mode))
    values = {form: loss(x, y) for form, y in forms.items()}
    first = next(iter(values))
    for form, value in values.items():
        assert value.shape == () and torch.isfinite(value), form
        assert torch.allclose(value, values[first], atol=1e-12, rtol=0), (form, value, first, values[first])
    out, grad = _scalar_and_grad(loss, x, _soft(mode))
    assert out.shape == () and torch.isfinite(out) and torch.isfinite(grad).all()


def _gradcheck_cases() -> list:
    return [
        pytest.param(
            name,
            mode,
            kind,
            marks=[pytest.mark.skip(reason=GRADCHECK_SKIP[name])] if name in GRADCHECK_SKIP else [],
            id=f"{name}-{mode}-{kind}",
        )
        for name, mode in CASES
        for kind in ("hard", "soft")
    ]


@pytest.mark.parametrize("name,mode,kind", _gradcheck_cases())
def test_gradcheck(name, mode, kind):
    loss, y = _build(name, mode), _target(mode, kind)
    x = _logits(mode).requires_grad_(True)
    # fast mode checks v^T J u for random directions u, v: a wrong gradient fails it just the
    # same, at a fraction of the cost (test_losses_numerics runs the full check on the custom
    # backward of the region sums).
    assert torch.autograd.gradcheck(lambda z: loss(z, y), (x,), fast_mode=True)


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_every_pixel_ignored_is_zero_with_zero_gradient(name, mode, kind):
    out, grad = _scalar_and_grad(_build(name, mode), _logits(mode), _all_ignored(mode, kind))
    assert out.item() == 0.0
    assert torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_an_empty_batch_scores_zero_with_a_zero_gradient(name, mode):
    x = torch.zeros(0, _channels(mode), H, W, dtype=torch.float64, requires_grad=True)
    y = _labels(mode)[:0]
    out = _build(name, mode)(x, y)
    out.backward()
    assert out.shape == () and out.item() == 0.0
    assert x.grad.shape == x.shape
    if _has_option(LOSSES[name], "reduction"):
        assert _build(name, mode, reduction="sum")(x, y).item() == 0.0
        assert _build(name, mode, reduction="none")(x, y).numel() in (0, _channels(mode))


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_a_nan_logit_gives_a_nan_loss(name, mode):
    x = _logits(mode)
    x[1, -1, 1, 2] = float("nan")
    assert torch.isnan(_build(name, mode)(x, _target(mode, "hard")))


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_logits_of_the_wrong_rank_are_named(name, mode):
    loss = _build(name, mode)
    with pytest.raises((ValueError, TypeError), match=re.escape("(4,)")):
        loss(torch.randn(4, dtype=torch.float64), _labels(mode))


@pytest.mark.parametrize("name", [n for n, m in CASES if m == "binary"])
def test_binary_logits_with_several_channels_are_named(name):
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    with pytest.raises(ValueError, match=re.escape(str(tuple(x.shape)))):
        _build(name, "binary")(x, _labels("binary"))


@pytest.mark.parametrize("kind", ["hard", "soft"])
@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_a_target_of_the_wrong_shape_is_named(name, mode, kind):
    bad = _labels(mode, size=(H + 1, W)) if kind == "hard" else torch.rand(N, _channels(mode), H, W + 2)
    with pytest.raises((ValueError, TypeError), match=re.escape(str(tuple(bad.shape)))):
        _build(name, mode)(_logits(mode), bad)


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_mode_is_named(name):
    with pytest.raises(ValueError, match="'multi-class'"):
        _build(name, "multi-class")


def _reduction_cases() -> list:
    cases = []
    for name in NAMES:
        cls = LOSSES[name]
        reason = f"{cls.__name__} has no reduction option (it always takes the mean)"
        marks = [] if _has_option(cls, "reduction") else [pytest.mark.skip(reason=reason)]
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


@pytest.mark.parametrize("name", _reduction_cases())
def test_an_unknown_reduction_is_named(name):
    mode = next(m for n, m in CASES if n == name)
    with pytest.raises(ValueError, match="'average'"):
        _build(name, mode, reduction="average")


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_float32_agrees_with_float64_at_a_realistic_size(mode):
    size = (128, 128)
    y = _labels(mode, size=size)
    y[0, ..., :16, :] = IGNORE
    x64 = _logits(mode, size=size)
    x32 = x64.float()
    wrong = []
    for name in [n for n, m in CASES if m == mode]:
        loss = _build(name, mode)
        ref = loss(x64, y)
        out, grad = _scalar_and_grad(loss, x32, y)
        if out.dtype != torch.float32 or not torch.isfinite(grad).all():
            wrong.append(f"{name}: dtype {out.dtype}, finite gradient {bool(torch.isfinite(grad).all())}")
        elif not torch.allclose(out.double(), ref, rtol=1e-5, atol=1e-6):
            wrong.append(f"{name}: float32 {out.item()!r}, float64 {ref.item()!r}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("name,mode", CASES, ids=IDS)
def test_combo_builds_the_entry_by_its_name(name, mode):
    x, y = _logits(mode), _target(mode, "hard")
    combo = losses.ComboLoss({name: 1.0}, mode, ignore_index=IGNORE)
    assert torch.equal(combo(x, y), _build(name, mode)(x, y))
