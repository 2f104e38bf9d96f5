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
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        losses.box_iou_loss(torch.zeros(3, 5), torch.zeros(3, 5))
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
