"""Target checks that do not wait for the device: NaN at once, the ValueError one call later.

On CUDA the checks of ``losses._deferred`` keep their verdict on the device. These tests route
CPU tensors through that path (``on_host`` patched to False), so it runs on any machine; the
last test runs real CUDA calls under ``torch.cuda.set_sync_debug_mode("error")``, which fails on
any host-device synchronisation.
"""

import pytest
import torch

import losses
import losses._deferred as deferred
from losses import LOSSES, MODES

N, C, H, W = 2, 3, 4, 5


@pytest.fixture
def device_path(monkeypatch):
    monkeypatch.setattr(deferred, "on_host", lambda device: False)
    yield
    deferred._PENDING.clear()


def _supports(cls, mode):
    try:
        cls(mode=mode, ignore_index=255)
    except ValueError:
        return False
    return True


CASES = [(name, mode) for name, cls in sorted(LOSSES.items()) for mode in MODES if _supports(cls, mode)]


def _inputs(mode, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else C
    x = torch.randn(N, c, H, W, generator=g, dtype=torch.float64)
    if mode == "multiclass":
        y = torch.randint(0, C, (N, H, W), generator=g)
    else:
        y = torch.randint(0, 2, (N, c, H, W), generator=g)
    y[0, ..., 0, 0] = 255
    return x, y


def _bad(mode, y):
    bad = y.clone()
    bad[1, ..., 2, 3] = 7 if mode == "multiclass" else 2  # out of range, not ignore_index
    return bad


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_the_device_path_gives_the_same_value_and_a_late_clear_error(name, mode, monkeypatch):
    x, y = _inputs(mode)
    loss = LOSSES[name](mode=mode, ignore_index=255)
    expected = loss(x, y)
    with pytest.raises(ValueError, match=r"\[7\]|\[2\]"):  # on the host: at once, naming the value
        loss(x, _bad(mode, y))
    monkeypatch.setattr(deferred, "on_host", lambda device: False)
    try:
        assert torch.equal(loss(x, y), expected)
        xg = x.clone().requires_grad_(True)
        out = loss(xg, _bad(mode, y))  # no error yet, no index out of range: the loss is NaN
        assert torch.isnan(out)
        out.backward()
        with pytest.raises(ValueError, match=r"an earlier call on cpu got .* from 0 to [27]"):
            loss(x, y)
        assert torch.equal(loss(x, y), expected)  # reported once; later calls are clean
    finally:
        deferred._PENDING.clear()


def test_check_deferred_raises_the_failed_check(device_path):
    x = torch.rand(N, C, H, W)
    t = torch.rand(N, C, H, W) * 1.5  # soft multiclass: values above 1, sums above 1
    assert torch.isnan(losses.dice_loss(x, t, "multiclass"))
    with pytest.raises(ValueError, match=r"dice_loss: an earlier call on cpu got a soft multiclass target"):
        losses.check_deferred()
    losses.check_deferred()  # nothing left


def test_sigmoid_focal_on_the_device_path(device_path):
    x, t = torch.randn(2, 6, 3), torch.zeros(2, 6, 3)
    t[0, 0, 0] = 2.0
    assert torch.isnan(losses.sigmoid_focal_loss(x, t, normalizer=1))
    with pytest.raises(ValueError, match=r"sigmoid_focal_loss: an earlier call .* targets from 0 to 2"):
        losses.check_deferred()


def test_the_queue_of_pending_checks_is_bounded(device_path):
    x, y = _inputs("binary")
    for _ in range(deferred.MAX_PENDING + 10):
        losses.dice_loss(x, y, "binary", ignore_index=255)
    assert len(deferred._PENDING) <= deferred.MAX_PENDING


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_no_host_sync_on_cuda(name, mode):
    x, y = _inputs(mode)
    x, y = x.float().cuda().requires_grad_(True), y.cuda()
    loss = LOSSES[name](mode=mode, ignore_index=255)
    loss(x, y).backward()  # first call: cached constants are copied once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss(x, y).backward()
        out = loss(x, _bad(mode, y))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isnan(out)
    with pytest.raises(ValueError, match="an earlier call on cuda"):
        losses.check_deferred()
