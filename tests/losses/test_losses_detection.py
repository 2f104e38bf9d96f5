"""Box IoU losses and the dense sigmoid focal loss against torchvision.ops."""

import pytest
import torch
import torchvision.ops as tvo

import losses

TV = {
    "giou": tvo.generalized_box_iou_loss,
    "diou": tvo.distance_box_iou_loss,
    "ciou": tvo.complete_box_iou_loss,
}


def _boxes(seed, n=16):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 50
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 30 + 0.5
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_box_losses_match_torchvision(kind):
    p, t = _boxes(0), _boxes(1)
    ours = losses.box_iou_loss(p, t, kind, reduction="none")
    ref = 1 - tvo.box_iou(p, t).diagonal() if kind == "iou" else TV[kind](p, t)
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_degenerate_boxes(kind):
    # torchvision #7746: a zero-size box against itself scores GIoU loss 1; segdet scores 0.
    point = torch.tensor([[3.0, 4.0, 3.0, 4.0], [1.0, 1.0, 5.0, 1.0]], requires_grad=True)
    same = losses.box_iou_loss(point, point.detach().clone(), kind, reduction="none")
    same.sum().backward()
    assert torch.equal(same.detach(), torch.zeros(2))
    assert torch.isfinite(point.grad).all()
    far = torch.tensor([[10.0, 10.0, 10.0, 10.0], [0.0, 0.0, 2.0, 2.0]])
    other = losses.box_iou_loss(point.detach(), far, kind, reduction="none")
    assert torch.isfinite(other).all() and (other >= 1).all()
    empty = torch.zeros(0, 4, requires_grad=True)
    assert losses.box_iou_loss(empty, empty.detach(), kind).item() == 0.0


def test_box_loss_bad_shapes():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\).*\(3, 5\)"):
        losses.box_iou_loss(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 4\).*broadcastable"):
        losses.box_iou_loss(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="kind"):
        losses.box_iou_loss(torch.zeros(3, 4), torch.zeros(3, 4), "eiou")


def test_dense_sigmoid_focal_matches_torchvision_with_normaliser():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 50, 6, generator=g, dtype=torch.float64)
    t = (torch.rand(2, 50, 6, generator=g) > 0.95).double()
    num_pos = t.sum()
    ours = losses.sigmoid_focal_loss(x, t, normalizer=num_pos)
    ref = tvo.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum") / num_pos
    assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    # no positives: divide by 1, not 0
    zero = torch.zeros_like(t)
    no_pos = losses.sigmoid_focal_loss(x, zero, normalizer=zero.sum())
    assert torch.allclose(no_pos, tvo.sigmoid_focal_loss(x, zero, reduction="sum"))
    valid = torch.rand(2, 50, 1, generator=g) > 0.3
    masked = losses.sigmoid_focal_loss(x, t, valid=valid)
    full = tvo.sigmoid_focal_loss(x, t, reduction="none")
    assert torch.allclose(masked, (full * valid).sum())


def test_box_losses_reduce_half_precision_in_float32():
    p, t = _boxes(4).float(), _boxes(5).float()
    for kind in ("giou", "ciou"):
        half = losses.box_iou_loss(p.half(), t.half(), kind)
        assert half.dtype == torch.float32
        assert torch.allclose(half, losses.box_iou_loss(p.half().float(), t.half().float(), kind))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_box_losses_broadcast_over_leading_axes_like_torchvision(kind):
    # (B, K, 4) boxes against (B, K, 4), (K, 4) and one (4,) box: torchvision's box losses take
    # (..., 4) and broadcast the second argument; so does segdet's (either argument).
    p = _boxes(6, n=12).reshape(3, 4, 4)
    t = _boxes(7, n=12).reshape(3, 4, 4)
    one = _boxes(8, n=1)[0]
    for a, b in ((p, t), (p, t[0]), (p, one)):
        ours = losses.box_iou_loss(a, b, kind, reduction="none")
        if kind == "iou":
            aa, bb = torch.broadcast_tensors(a, b)
            ref = 1 - tvo.box_iou(aa.reshape(-1, 4), bb.reshape(-1, 4)).diagonal().reshape(aa.shape[:-1])
        else:
            ref = TV[kind](a, b)
        assert ours.shape == ref.shape
        assert torch.allclose(ours, ref, atol=1e-6, rtol=0)
    assert torch.allclose(losses.box_iou_loss(p, t, kind), losses.box_iou_loss(p, t, kind, reduction="none").mean())
    assert torch.allclose(losses.box_iou_loss(one, p, kind, "none"), losses.box_iou_loss(p, one, kind, "none"))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_the_functional_detection_losses_script():
    box = torch.jit.script(losses.box_iou_loss)
    focal = torch.jit.script(losses.sigmoid_focal_loss)
    p, t = _boxes(9, n=10).reshape(2, 5, 4), _boxes(10, n=10).reshape(2, 5, 4)
    for kind in ("iou", "giou", "diou", "ciou"):
        assert torch.allclose(box(p, t, kind, "none"), losses.box_iou_loss(p, t, kind, "none"), atol=1e-12)
    assert torch.allclose(box(p, t), TV["giou"](p, t, reduction="mean"), atol=1e-6)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 30, 5, generator=g, dtype=torch.float64)
    y = (torch.rand(2, 30, 5, generator=g) > 0.9).double()
    ref = tvo.sigmoid_focal_loss(x, y, alpha=0.25, gamma=2.0, reduction="sum")
    assert torch.allclose(focal(x, y, normalizer=4.0), ref / 4, atol=1e-9)
    assert torch.allclose(
        focal(x, y, 0.5, 1.5, torch.tensor(0.0, dtype=torch.float64)), tvo.sigmoid_focal_loss(x, y, 0.5, 1.5, "sum")
    )
    valid = torch.rand(2, 30, 1, generator=g) > 0.2
    assert torch.allclose(
        focal(x, y, valid=valid, reduction="mean"), losses.sigmoid_focal_loss(x, y, valid=valid, reduction="mean")
    )
    y[0, 0, 0] = 2.0  # scripted: no message, but never a silent number
    assert torch.isnan(focal(x, y))
    with pytest.raises(Exception, match="kind=eiou"):
        box(p, t, "eiou")
    assert torch.jit.script(losses.BoxIoULoss("ciou"))(p, t).shape == ()
