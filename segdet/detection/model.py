"""torchvision detectors by name, built without downloading weights.

Every detector is wrapped in :class:`Detector`, which owns the mapping between segdet's 0-based
class indices and the model's own label space: Faster/Mask R-CNN and SSD reserve label 0 for
background (data class ``k`` is model label ``k + 1``), RetinaNet and FCOS score each class with
its own sigmoid and use the 0-based index as is. Outside the wrapper labels are always 0-based.

Images go in as a list of (C, H, W) float tensors in [0, 1]; the torchvision transform inside the
model normalises them (ImageNet mean/std), resizes to ``min_size``/``max_size`` and maps the
predicted boxes back to each input's own resolution, so train, eval and predict share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from segdet._suggest import did_you_mean

__all__ = ["DETECTORS", "Detector", "build_detector", "needs_masks"]


@dataclass(frozen=True)
class _Spec:
    builder: str
    label_offset: int  # 1 where label 0 is background
    resizable: bool  # accepts min_size / max_size
    score_key: str  # keyword of the score threshold
    dets_key: str  # keyword of the detections-per-image cap
    masks: bool = False


_RCNN = dict(label_offset=1, resizable=True, score_key="box_score_thresh", dets_key="box_detections_per_img")
_DENSE = dict(label_offset=0, resizable=True, score_key="score_thresh", dets_key="detections_per_img")
_SSD = dict(label_offset=1, resizable=False, score_key="score_thresh", dets_key="detections_per_img")

_SPECS: dict[str, _Spec] = {
    "fasterrcnn_resnet50_fpn": _Spec("fasterrcnn_resnet50_fpn", **_RCNN),
    "fasterrcnn_resnet50_fpn_v2": _Spec("fasterrcnn_resnet50_fpn_v2", **_RCNN),
    "fasterrcnn_mobilenet_v3_large_fpn": _Spec("fasterrcnn_mobilenet_v3_large_fpn", **_RCNN),
    "fasterrcnn_mobilenet_v3_large_320_fpn": _Spec("fasterrcnn_mobilenet_v3_large_320_fpn", **_RCNN),
    "fasterrcnn_mobilenet_v3_large_p3_fpn": _Spec("fasterrcnn_mobilenet_v3_large_p3_fpn", **_RCNN),
    "maskrcnn_resnet50_fpn": _Spec("maskrcnn_resnet50_fpn", masks=True, **_RCNN),
    "maskrcnn_resnet50_fpn_v2": _Spec("maskrcnn_resnet50_fpn_v2", masks=True, **_RCNN),
    "maskrcnn_mobilenet_v3_large_p3_fpn": _Spec("maskrcnn_mobilenet_v3_large_p3_fpn", masks=True, **_RCNN),
    "retinanet_resnet50_fpn": _Spec("retinanet_resnet50_fpn", **_DENSE),
    "retinanet_resnet50_fpn_v2": _Spec("retinanet_resnet50_fpn_v2", **_DENSE),
    "fcos_resnet50_fpn": _Spec("fcos_resnet50_fpn", **_DENSE),
    "ssdlite320_mobilenet_v3_large": _Spec("ssdlite320_mobilenet_v3_large", **_SSD),
    "ssd300_vgg16": _Spec("ssd300_vgg16", **_SSD),
}

#: names accepted by :func:`build_detector`
DETECTORS: tuple[str, ...] = tuple(_SPECS)


class Detector(nn.Module):
    """A torchvision detector speaking segdet's 0-based labels.

    Args:
        model: the torchvision detection model.
        num_classes: number of data classes (no background).
        label_offset: added to data labels before the model sees them (1 where label 0 is
            background), subtracted from its predictions.
        needs_masks: the model trains on instance masks (Mask R-CNN).

    Forward:
        ``images``: list of B (C, H_i, W_i) float tensors in [0, 1]. ``targets`` (training only):
        list of B dicts with ``boxes`` (N, 4) float xyxy pixels, ``labels`` (N,) int64 0-based,
        ``masks`` (N, H_i, W_i) uint8 for Mask R-CNN. Training returns the dict of losses;
        eval returns B dicts with ``boxes`` (M, 4), ``scores`` (M,), ``labels`` (M,) 0-based and
        ``masks`` (M, 1, H_i, W_i) probabilities for Mask R-CNN, at each input's resolution.

    Example:
        >>> det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 3, min_size=64, max_size=96)
        >>> _ = det.eval()
        >>> out = det([torch.rand(3, 48, 64)])
        >>> sorted(out[0])
        ['boxes', 'labels', 'scores']
    """

    def __init__(self, model: nn.Module, num_classes: int, label_offset: int, needs_masks: bool = False) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.label_offset = label_offset
        self.needs_masks = needs_masks

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        """Training: the loss terms of the images against 0-based targets; eval: detections with 0-based labels."""
        if self.training:
            if targets is None:
                raise ValueError("a detector in training mode needs targets; call model.eval() to predict")
            shifted = []
            for t in targets:
                s = {"boxes": t["boxes"].float().reshape(-1, 4), "labels": t["labels"].long() + self.label_offset}
                if self.needs_masks:
                    if "masks" not in t:
                        raise ValueError(
                            "Mask R-CNN trains on instance masks but the batch has no 'masks'; "
                            "use a dataset with instance masks or a box-only detector"
                        )
                    s["masks"] = t["masks"]
                shifted.append(s)
            return self.model(images, shifted)
        outputs = self.model(images)
        for out in outputs:
            out["labels"] = out["labels"] - self.label_offset
        return outputs

    def set_anchor_sizes(self, sizes: tuple[tuple[float, ...], ...]) -> None:
        """Give the anchor generator new sizes (per FPN level), kept in the weights as ``anchor_sizes``.

        The aspect ratios and the number of anchors per level stay, so the heads fit unchanged.
        The sizes are a buffer of the state dict: loading weights that hold one (a run trained
        with ``model.anchors: fit``) sets the generator to them, whatever this model's sizes were.

        Raises:
            ValueError: a detector without an anchor generator, or sizes of another layout.
        """
        import torch
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        owner, gen = self._anchor_owner()
        old = tuple(len(level) for level in gen.sizes)
        tensor = torch.tensor(sizes, dtype=torch.float32)  # float32: the values a checkpoint gives back exactly
        sizes = tuple(tuple(level) for level in tensor.tolist())
        if tuple(len(level) for level in sizes) != old:
            raise ValueError(f"anchor sizes {sizes} do not have the layout {old} (sizes per level) of this detector")
        if "anchor_sizes" not in self._buffers:
            self._built_anchor_sizes = tuple(tuple(level) for level in gen.sizes)
        owner.anchor_generator = AnchorGenerator(sizes, gen.aspect_ratios)
        self.register_buffer("anchor_sizes", tensor)

    def _anchor_owner(self) -> tuple[nn.Module, Any]:
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        for owner in (getattr(self.model, "rpn", None), self.model):
            gen = getattr(owner, "anchor_generator", None)
            if isinstance(gen, AnchorGenerator):
                return owner, gen
        raise ValueError(f"{type(self.model).__name__} has no anchor generator whose sizes could be set")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors):
        """Weights holding ``anchor_sizes`` (a fitted run) set the generator before the tensors are copied."""
        key = prefix + "anchor_sizes"
        if key in state_dict:
            self.set_anchor_sizes(tuple(tuple(level) for level in state_dict[key].tolist()))
        elif "anchor_sizes" in self._buffers:  # weights trained with the sizes this model was built with
            from torchvision.models.detection.anchor_utils import AnchorGenerator

            owner, gen = self._anchor_owner()
            owner.anchor_generator = AnchorGenerator(self._built_anchor_sizes, gen.aspect_ratios)
            del self._buffers["anchor_sizes"]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors)


def build_detector(
    name: str,
    num_classes: int,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    score_thresh: float | None = 0.05,
    detections_per_img: int = 100,
    box_head_size: int | None = None,
    box_roi_size: int | None = None,
    **kwargs: Any,
) -> Detector:
    """Build a torchvision detector with random weights (``weights=None, weights_backbone=None``).

    Args:
        name: one of :data:`DETECTORS`.
        num_classes: number of data classes, background excluded; the background label is added
            where the model needs one.
        min_size: shorter side the model resizes inputs to (not for the fixed-size SSD models).
        max_size: cap on the longer side after resizing.
        score_thresh: detections below this score are discarded at inference (0.05 keeps enough
            low-score detections for COCO mAP); None keeps torchvision's default.
        detections_per_img: cap on the detections per image (100, as COCO's maxDets).
        box_head_size: R-CNN only: width of the two fully connected layers of the box head
            (torchvision: 1024). On a CPU these layers dominate a step; 256 is ~4x cheaper.
        box_roi_size: R-CNN only: side of the RoIAlign output fed to the box head (torchvision: 7).
        **kwargs: passed on to the torchvision builder.

    Returns:
        A :class:`Detector`.

    Raises:
        ValueError: unknown name (with the closest names), ``num_classes`` < 1, or a size given
            to a fixed-size model.

    Example:
        >>> det = build_detector("retinanet_resnet50_fpn", 2, min_size=64, max_size=64)
        >>> det.label_offset
        0
    """
    if name not in _SPECS:
        raise ValueError(
            f"unknown detector model.arch={name!r}{did_you_mean(name, DETECTORS, cutoff=0.4)}; "
            f"choose one of: {', '.join(DETECTORS)}"
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int (classes in the data), got {num_classes!r}")
    spec = _SPECS[name]
    args: dict[str, Any] = dict(weights=None, weights_backbone=None, num_classes=num_classes + spec.label_offset)
    if spec.resizable:
        if min_size is not None:
            args["min_size"] = int(min_size)
        if max_size is not None:
            args["max_size"] = int(max_size)
    elif min_size is not None or max_size is not None:
        raise ValueError(f"{name} works at a fixed input size; set model.min_size and model.max_size to null")
    if score_thresh is not None:
        args[spec.score_key] = float(score_thresh)
    args[spec.dets_key] = int(detections_per_img)
    _check_kwargs(name, spec, kwargs)
    args.update(kwargs)
    light = box_head_size is not None or box_roi_size is not None
    if light and spec.score_key != "box_score_thresh":
        raise ValueError(f"box_head_size/box_roi_size apply to Faster/Mask R-CNN only, not {name}")
    try:
        model = _builder(spec.builder)(**args)
    except TypeError as exc:
        raise ValueError(
            f"{name} does not accept the arguments {sorted(kwargs)} (model.detector_args): {exc}"
        ) from None
    if light:
        heads = _light_box_head(num_classes + spec.label_offset, box_head_size or 1024, box_roi_size or 7)
        for attr, module in heads.items():
            setattr(model.roi_heads, attr, module)
    return Detector(model, num_classes, spec.label_offset, needs_masks=spec.masks)


def _light_box_head(num_labels: int, size: int, roi: int) -> dict[str, nn.Module]:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    if size < 1 or roi < 1:
        raise ValueError(f"box_head_size and box_roi_size must be >= 1, got {size} and {roi}")
    return {
        "box_roi_pool": MultiScaleRoIAlign(["0", "1", "2", "3"], roi, 2),
        "box_head": TwoMLPHead(256 * roi * roi, size),
        "box_predictor": FastRCNNPredictor(size, num_labels),
    }


def _builder(name: str) -> Any:
    """The torchvision builder of that name, or segdet's for the MobileNetV3 P3 detectors (``backbones.py``)."""
    import torchvision.models.detection as tvd

    from . import backbones

    return getattr(backbones, name, None) or getattr(tvd, name)


_MODEL_CLASSES = {
    "fasterrcnn": "FasterRCNN",
    "maskrcnn": "MaskRCNN",
    "retinanet": "RetinaNet",
    "fcos": "FCOS",
    "ssd": "SSD",
}


def _check_kwargs(name: str, spec: _Spec, kwargs: dict[str, Any]) -> None:
    """Torchvision passes unknown keywords on to its transform, which drops them: catch typos here."""
    if not kwargs:
        return
    import inspect

    import torchvision.models.detection as tvd
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    prefix = next(p for p in _MODEL_CLASSES if name.startswith(p))
    cls = getattr(tvd, _MODEL_CLASSES[prefix], None) or getattr(tvd.ssd, _MODEL_CLASSES[prefix])
    allowed: set[str] = set()
    for fn in [
        _builder(spec.builder),
        GeneralizedRCNNTransform.__init__,
        *(c.__init__ for c in cls.__mro__ if c.__module__.startswith("torchvision")),
    ]:
        allowed |= {
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"
        }
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"model.detector_args: {name} has no argument {key!r}{did_you_mean(key, allowed, n=2)}")


def needs_masks(name: str) -> bool:
    """True when the detector ``name`` trains on instance masks (Mask R-CNN)."""
    return name in _SPECS and _SPECS[name].masks
