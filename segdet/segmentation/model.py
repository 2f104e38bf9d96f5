"""Segmentation models: any segmentation-models-pytorch architecture and encoder by name.

The network is wrapped in :class:`SegmentationModel`, which takes images in ``[0, 1]``, normalises
them with the configured mean/std and pads them to the output stride, so training, evaluation and
prediction feed the model the same way.

Example:
    >>> model = build_segmentation_model({"arch": "Unet", "encoder": "resnet18",
    ...                                   "encoder_weights": None, "weights": None}, num_classes=4)
    >>> model(torch.rand(2, 3, 96, 128)).shape
    torch.Size([2, 4, 96, 128])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from segdet._suggest import did_you_mean
from segdet.checkpoint import load_weights

__all__ = [
    "SegmentationModel",
    "build_segmentation_model",
    "check_model_names",
    "load_weights",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegmentationModel(nn.Module):
    """An smp network behind input normalisation and stride padding.

    Args:
        net: a module mapping (B, C, H, W) normalised images with H, W multiples of ``stride`` to
            (B, K, H, W) logits.
        mean: per-channel mean, images in ``[0, 1]``.
        std: per-channel standard deviation.
        stride: the network's output stride; inputs are zero-padded (bottom/right) to a multiple
            of it and the logits cropped back.

    Shapes:
        input (B, C, H, W) float in ``[0, 1]`` -> logits (B, K, H, W).
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        stride: int = 32,
    ) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"model.mean has {len(mean)} values but model.std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"model.std must be positive, got {list(std)}")
        self.net = net
        self.stride = stride
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, H, W) of images (B, C, H, W) in ``[0, 1]``."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        x = (x - self.mean) / self.std
        out = self.net(x)
        if ph or pw:
            out = out[..., :h, :w]
        return out


def build_segmentation_model(model_cfg: Mapping[str, Any], num_classes: int, in_channels: int = 3) -> SegmentationModel:
    """Create ``model_cfg["arch"]`` with ``model_cfg["encoder"]`` and ``num_classes`` outputs.

    Args:
        model_cfg: the ``model`` section of the config (``arch``, ``encoder``, ``encoder_weights``,
            ``weights``, optional ``mean``/``std``).
        num_classes: output channels (classes, background included).
        in_channels: image channels.

    Raises:
        ValueError: unknown architecture or encoder (with the closest names), or unusable weights.
    """
    import segmentation_models_pytorch as smp

    if num_classes < 1:
        raise ValueError(f"a segmentation model needs at least one class, got num_classes={num_classes}")
    arch, encoder = check_model_names(model_cfg), model_cfg["encoder"]
    try:
        net = smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=model_cfg.get("encoder_weights"),
            in_channels=in_channels,
            classes=num_classes,
        )
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot build model.arch={arch} with model.encoder={encoder}: {exc}") from exc
    model = SegmentationModel(net, model_cfg.get("mean", IMAGENET_MEAN), model_cfg.get("std", IMAGENET_STD))
    if model_cfg.get("weights"):
        load_weights(model, model_cfg["weights"])
    return model


def check_model_names(model_cfg: Mapping[str, Any]) -> str:
    """Check ``model.arch`` and ``model.encoder`` against smp's lists; return smp's spelling of the arch.

    Raises:
        ValueError: unknown name, with the closest valid names.
    """
    import segmentation_models_pytorch as smp
    from segmentation_models_pytorch.encoders import get_encoder_names

    arch, encoder = model_cfg["arch"], model_cfg["encoder"]
    archs = [a.__name__ for a in smp.MODEL_ARCHITECTURES_MAPPING.values()]
    by_lower = {name.lower(): name for name in archs}
    if arch.lower() not in by_lower:
        raise ValueError(
            f"model.arch {arch!r} is not an smp architecture{did_you_mean(arch, archs, cutoff=0.5)}; "
            f"available: {', '.join(archs)}"
        )
    encoders = get_encoder_names()
    if encoder not in encoders:
        raise ValueError(
            f"model.encoder {encoder!r} is not an smp encoder{did_you_mean(encoder, encoders, cutoff=0.5)}"
        )
    return by_lower[arch.lower()]
