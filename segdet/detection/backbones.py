"""R-CNN detectors on a MobileNetV3-Large FPN that starts at stride 8, assembled from torchvision parts.

torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` takes its two FPN inputs from the last two
stages of MobileNetV3, and both of them have stride 32: a 96x128 image becomes a 3x4 grid, so
objects a few dozen pixels wide share a handful of anchor positions and the detector learns them
slowly (segdet's built-in data reached mAP50 0.30 after 15 epochs). The builders here take the
stride-8, 16 and 32 stages instead (FPN outputs ``"0"``, ``"1"``, ``"2"`` plus the max-pooled
``"pool"`` at stride 64) with one anchor size per level, twice its stride (16, 32, 64, 128) at
the aspect ratios 0.5, 1, 2: the same data reached mAP50 0.92 in the same 15 epochs. torchvision
has the parts (``_mobilenet_extractor``, ``FasterRCNN``, ``MaskRCNN``) but no builder with these
levels, hence this module. The weights are random (segdet downloads nothing); the backbone uses
ordinary batch norm, as torchvision's builders do for an untrained backbone.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["P3_ANCHOR_SIZES", "fasterrcnn_mobilenet_v3_large_p3_fpn", "maskrcnn_mobilenet_v3_large_p3_fpn"]

#: the anchor size of each level (strides 8, 16, 32, 64)
P3_ANCHOR_SIZES: tuple[tuple[int, ...], ...] = ((16,), (32,), (64,), (128,))
_RATIOS = (0.5, 1.0, 2.0)
_STAGES = [2, 3, 4]  # MobileNetV3-Large stages at strides 8, 16 and 32


def _backbone() -> nn.Module:
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor

    return _mobilenet_extractor(
        mobilenet_v3_large(weights=None, norm_layer=nn.BatchNorm2d), True, 6, returned_layers=_STAGES
    )


def _rpn_parts(out_channels: int) -> dict[str, nn.Module]:
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.rpn import RPNHead

    generator = AnchorGenerator(P3_ANCHOR_SIZES, (_RATIOS,) * len(P3_ANCHOR_SIZES))
    return {"rpn_anchor_generator": generator, "rpn_head": RPNHead(out_channels, len(_RATIOS))}


def _no_weights(weights: Any, weights_backbone: Any) -> None:
    if weights is not None or weights_backbone is not None:
        raise ValueError(
            "the MobileNetV3 P3 detectors have no downloadable weights; use model.weights for a local file"
        )


def fasterrcnn_mobilenet_v3_large_p3_fpn(
    *, weights: Any = None, weights_backbone: Any = None, num_classes: int = 91, **kwargs: Any
) -> nn.Module:
    """Faster R-CNN on a MobileNetV3-Large FPN over strides 8-64 (random weights).

    Args:
        weights: must be None (kept for the torchvision builder signature).
        weights_backbone: must be None, likewise.
        num_classes: labels including the background.
        **kwargs: passed on to torchvision's ``FasterRCNN`` (``min_size``, ``rpn_*``, ``box_*``).
    """
    from torchvision.models.detection import FasterRCNN

    _no_weights(weights, weights_backbone)
    backbone = _backbone()
    return FasterRCNN(backbone, num_classes, **_rpn_parts(backbone.out_channels), **kwargs)


def maskrcnn_mobilenet_v3_large_p3_fpn(
    *, weights: Any = None, weights_backbone: Any = None, num_classes: int = 91, **kwargs: Any
) -> nn.Module:
    """Mask R-CNN on a MobileNetV3-Large FPN over strides 8-64 (random weights).

    Args:
        weights: must be None (kept for the torchvision builder signature).
        weights_backbone: must be None, likewise.
        num_classes: labels including the background.
        **kwargs: passed on to torchvision's ``MaskRCNN`` (``min_size``, ``rpn_*``, ``box_*``,
            ``mask_*``).
    """
    from torchvision.models.detection import MaskRCNN

    _no_weights(weights, weights_backbone)
    backbone = _backbone()
    return MaskRCNN(backbone, num_classes, **_rpn_parts(backbone.out_channels), **kwargs)
