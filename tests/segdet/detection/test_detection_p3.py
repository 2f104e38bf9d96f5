"""The MobileNetV3 P3 detectors: FPN levels at strides 8-64, one anchor size per level, both heads train."""

import pytest
import torch

from segdet.detection import build_detector
from segdet.detection.backbones import P3_ANCHOR_SIZES


@pytest.mark.parametrize("h, w", [(96, 128), (64, 64)])
def test_feature_strides_and_anchor_grid(h, w):
    det = build_detector("fasterrcnn_mobilenet_v3_large_p3_fpn", 3, min_size=min(h, w), max_size=max(h, w)).eval()
    with torch.no_grad():
        feats = det.model.backbone(torch.rand(1, 3, h, w))
    # ceil division: a stride-2 convolution with padding 1 rounds up
    grids = [(h, w)]
    for _ in range(4):
        grids.append((-(-grids[-1][0] // 2), -(-grids[-1][1] // 2)))
    shapes = {k: tuple(v.shape[-2:]) for k, v in feats.items()}
    assert list(shapes) == ["0", "1", "2", "pool"]
    assert shapes["0"] == grids[3]  # stride 8
    assert shapes["1"] == grids[4]  # stride 16
    gen = det.model.rpn.anchor_generator
    assert gen.sizes == P3_ANCHOR_SIZES
    anchors_per_image = sum(a * b for a, b in shapes.values()) * 3
    images = det.model.transform([torch.rand(3, h, w)])[0]
    assert gen(images, list(feats.values()))[0].shape == (anchors_per_image, 4)
    # torchvision's own MobileNetV3 FPN puts both levels at stride 32
    plain = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 3, min_size=min(h, w), max_size=max(h, w)).eval()
    with torch.no_grad():
        plain_shapes = {k: tuple(v.shape[-2:]) for k, v in plain.model.backbone(torch.rand(1, 3, h, w)).items()}
    assert plain_shapes["0"] == plain_shapes["1"] == (-(-h // 32), -(-w // 32))


@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v3_large_p3_fpn", "maskrcnn_mobilenet_v3_large_p3_fpn"])
def test_a_few_steps_lower_the_loss(arch):
    torch.manual_seed(0)
    det = build_detector(arch, 2, min_size=64, max_size=64, box_head_size=64, box_roi_size=5).train()
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 8:30, 8:30] = 1
    masks[1, 36:60, 30:58] = 1
    target = {"boxes": torch.tensor([[8.0, 8, 30, 30], [30.0, 36, 58, 60]]), "labels": torch.tensor([0, 1])}
    if "mask" in arch:
        target["masks"] = masks
    image = torch.rand(3, 64, 64) * 0.2
    image[:, masks.bool().any(0)] += 0.7
    opt = torch.optim.AdamW(det.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss = sum(det([image], [target]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    det.eval()
    with torch.no_grad():
        out = det([image])[0]
    assert ("masks" in out) == ("mask" in arch)


def test_refuses_downloadable_weights():
    from segdet.detection.backbones import fasterrcnn_mobilenet_v3_large_p3_fpn

    with pytest.raises(ValueError, match="no downloadable weights"):
        fasterrcnn_mobilenet_v3_large_p3_fpn(weights="DEFAULT", num_classes=3)
