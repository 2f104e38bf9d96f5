"""AutoAugment, RandAugment and TrivialAugment as albumentations pipelines that move masks and boxes.

torchvision's policies take images only (its v2 versions raise on masks and boxes). Here every
operation is an albumentations transform, so in a ``Compose`` (or ``augment.MixDataset``) the
geometric ones move the semantic mask (nearest, empty area ``fill_mask``), the instance masks
and the boxes (the corners mapped, then clipped) with the image, and the colour ones touch the
image only. The operation spaces and magnitude ranges are the published ones, as torchvision
lists them:

- RandAugment (Cubuk et al. 2020), 31 bins: shear 0..0.3 (``atan`` in degrees), translate
  0..150/331 of the side, rotate 0..30 deg, brightness / colour / contrast / sharpness factor
  ``1 +- 0..0.9``, posterize 8..4 bits, solarize threshold 255..0, autocontrast, equalize,
  identity; ``num_ops`` operations, each at bin ``magnitude``, signed ones with a random sign.
- TrivialAugment (Muller & Hutter 2021, "wide" space), 31 bins: shear 0..0.99, translate
  0..32 px, rotate 0..135 deg, factors ``1 +- 0..0.99``, posterize 8..2 bits, the rest as
  above; one operation at a uniformly drawn bin and sign.
- AutoAugment (Cubuk et al. 2019), the ImageNet policy: one of 25 sub-policies of two
  operations, each applied with its probability at its bin of a 10-bin space (translate
  0..150/331, the others as RandAugment; invert added).

Each builder returns a plain albumentations composition (``SomeOf`` / ``OneOf`` of fixed
transforms), so a pipeline's seed (``set_random_seed``, as ``MixDataset`` seeds every sample)
draws the same choices every time. albumentations is imported when a policy is built, so
``import augment`` needs no torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["POLICIES", "auto_augment", "rand_augment", "trivial_augment"]

#: signed operations: the magnitude is applied with a random sign
_SIGNED = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness")
_RAND_OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
    "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)  # fmt: skip

#: the ImageNet policy of AutoAugment: (operation, probability, bin of the 10-bin space or None)
IMAGENET_POLICY = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)


def _space(bins: int, wide: bool) -> dict[str, np.ndarray]:
    """Magnitude of every bin per operation (translate as a fraction of the side, or pixels when ``wide``)."""
    if wide:
        factors, shear, rotate, translate = np.linspace(0, 0.99, bins), np.linspace(0, 0.99, bins), 135.0, None
        posterize = 8 - np.round(np.arange(bins) / ((bins - 1) / 6)).astype(int)
    else:
        factors, shear, rotate, translate = np.linspace(0, 0.9, bins), np.linspace(0, 0.3, bins), 30.0, 150.0 / 331.0
        posterize = 8 - np.round(np.arange(bins) / ((bins - 1) / 4)).astype(int)
    space = {
        "ShearX": shear,
        "ShearY": shear,
        "TranslateX": np.linspace(0, 32.0, bins) if translate is None else np.linspace(0, translate, bins),
        "TranslateY": np.linspace(0, 32.0, bins) if translate is None else np.linspace(0, translate, bins),
        "Rotate": np.linspace(0, rotate, bins),
        "Posterize": posterize,
        "Solarize": np.linspace(255.0, 0.0, bins),
    }
    for name in ("Brightness", "Color", "Contrast", "Sharpness"):
        space[name] = factors
    return space


@functools.cache
def _sharpness_class() -> type:
    import albumentations as A

    class Sharpness(A.ImageOnlyTransform):
        """PIL's ``ImageEnhance.Sharpness``: blend with the 3x3 smoothed image (kernel 1 1 1 / 1 5 1 / 1 1 1, /13).

        ``factor`` 1 is the image, 0 the smoothed one, 2 twice as sharp; the border rows and columns
        are not smoothed (as PIL and torchvision).
        """

        def __init__(self, factor: float = 1.0, p: float = 1.0):
            super().__init__(p=p)
            self.factor = float(factor)

        def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
            import cv2

            x = img.astype(np.float32)
            kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
            smooth = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REPLICATE).reshape(x.shape)
            if x.shape[0] > 2 and x.shape[1] > 2:
                smooth = np.round(smooth) if img.dtype == np.uint8 else smooth
                blurred = x.copy()
                blurred[1:-1, 1:-1] = smooth[1:-1, 1:-1]
            else:
                blurred = x
            out = blurred + self.factor * (x - blurred)
            if img.dtype == np.uint8:
                return np.clip(np.round(out), 0, 255).astype(np.uint8)
            return np.clip(out, 0.0, 1.0).astype(img.dtype)

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ("factor",)

    return Sharpness


@functools.cache
def _affine_class() -> type:
    import albumentations as A

    class Affine(A.Affine):
        """``A.Affine`` whose instance masks get 0 where pixels come in from outside the image.

        ``fill_mask`` (``ignore_index`` for semantic masks) would otherwise turn the new area into
        part of every instance.
        """

        def apply_to_masks(self, masks: Any, **params: Any) -> Any:
            semantic = self.fill_mask
            self.fill_mask = 0
            try:
                return super().apply_to_masks(masks, **params)
            finally:
                self.fill_mask = semantic

    return Affine


def _op(name: str, magnitude: float, fill: Any, fill_mask: Any, interpolation: int, relative: bool) -> Any:
    """One operation at a signed magnitude as an albumentations transform with ``p=1``."""
    import albumentations as A

    affine = _affine_class()
    geometric = {"border_mode": 0, "fill": fill, "fill_mask": fill_mask, "interpolation": interpolation, "p": 1.0}
    if name == "Identity":
        return A.NoOp(p=1.0)
    if name in ("ShearX", "ShearY"):
        degrees = math.degrees(math.atan(magnitude))
        return affine(shear={"x": degrees, "y": 0.0} if name == "ShearX" else {"x": 0.0, "y": degrees}, **geometric)
    if name in ("TranslateX", "TranslateY"):
        axis = "x" if name == "TranslateX" else "y"
        other = "y" if axis == "x" else "x"
        if relative:
            return affine(translate_percent={axis: magnitude, other: 0.0}, **geometric)
        return affine(translate_px={axis: int(round(magnitude)), other: 0}, **geometric)
    if name == "Rotate":
        return affine(rotate=magnitude, **geometric)
    if name == "Brightness":
        return A.ColorJitter(brightness=(1 + magnitude,) * 2, contrast=(1, 1), saturation=(1, 1), hue=(0, 0), p=1.0)
    if name == "Color":
        return A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1 + magnitude,) * 2, hue=(0, 0), p=1.0)
    if name == "Contrast":
        return A.ColorJitter(brightness=(1, 1), contrast=(1 + magnitude,) * 2, saturation=(1, 1), hue=(0, 0), p=1.0)
    if name == "Sharpness":
        return _sharpness_class()(factor=1 + magnitude, p=1.0)
    if name == "Posterize":  # 8 bits keep the image
        return A.NoOp(p=1.0) if int(magnitude) >= 8 else A.Posterize(num_bits=int(magnitude), p=1.0)
    if name == "Solarize":
        return A.Solarize(threshold_range=(magnitude / 255.0,) * 2, p=1.0)
    if name == "AutoContrast":
        return A.AutoContrast(method="pil", p=1.0)
    if name == "Equalize":
        return A.Equalize(mode="pil", p=1.0)
    if name == "Invert":
        return A.InvertImg(p=1.0)
    raise ValueError(f"unknown policy operation {name!r}")


def _signed(name: str, magnitude: float, make: Callable[[float], Any], p: float = 1.0) -> Any:
    """The operation at ``+magnitude`` or ``-magnitude`` with equal chance (unsigned ones as they are)."""
    import albumentations as A

    if name not in _SIGNED or magnitude == 0:
        op = make(magnitude)
        op.p = p
        return op
    return A.OneOf([make(magnitude), make(-magnitude)], p=p)


def _check_interpolation(interpolation: int) -> None:
    if interpolation not in (0, 1, 2, 3, 4):
        raise ValueError(f"interpolation must be a cv2.INTER_* flag (0..4), got {interpolation!r}")


def rand_augment(
    num_ops: int = 2,
    magnitude: int = 9,
    num_magnitude_bins: int = 31,
    fill: Any = 0,
    fill_mask: Any = 255,
    interpolation: int = 1,
) -> Any:
    """RandAugment: ``num_ops`` operations drawn with replacement, each at bin ``magnitude`` (module docstring).

    Raises:
        ValueError: ``num_ops < 1``, ``magnitude`` outside ``0..num_magnitude_bins - 1``, fewer than 2 bins.
    """
    import albumentations as A

    if isinstance(num_magnitude_bins, bool) or not isinstance(num_magnitude_bins, int) or num_magnitude_bins < 2:
        raise ValueError(f"RandAugment num_magnitude_bins must be an int >= 2, got {num_magnitude_bins!r}")
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
        raise ValueError(f"RandAugment num_ops must be an int >= 1, got {num_ops!r}")
    if isinstance(magnitude, bool) or not isinstance(magnitude, int) or not 0 <= magnitude < num_magnitude_bins:
        raise ValueError(
            f"RandAugment magnitude is a bin in 0..{num_magnitude_bins - 1} (num_magnitude_bins={num_magnitude_bins}), "
            f"got {magnitude!r}"
        )
    _check_interpolation(interpolation)
    space = _space(num_magnitude_bins, wide=False)
    ops = []
    for name in _RAND_OPS:
        m = float(space[name][magnitude]) if name in space else 0.0
        ops.append(_signed(name, m, lambda v, n=name: _op(n, v, fill, fill_mask, interpolation, True)))
    return A.SomeOf(ops, n=num_ops, replace=True, p=1.0)


def trivial_augment(num_magnitude_bins: int = 31, fill: Any = 0, fill_mask: Any = 255, interpolation: int = 1) -> Any:
    """TrivialAugment (wide space): one operation at a uniformly drawn bin and sign (module docstring).

    Raises:
        ValueError: fewer than 2 bins.
    """
    import albumentations as A

    if isinstance(num_magnitude_bins, bool) or not isinstance(num_magnitude_bins, int) or num_magnitude_bins < 2:
        raise ValueError(f"TrivialAugment num_magnitude_bins must be an int >= 2, got {num_magnitude_bins!r}")
    _check_interpolation(interpolation)
    space = _space(num_magnitude_bins, wide=True)
    ops = []
    for name in _RAND_OPS:
        if name not in space:
            ops.append(_op(name, 0.0, fill, fill_mask, interpolation, False))
            continue
        each = [
            _signed(name, float(m), lambda v, n=name: _op(n, v, fill, fill_mask, interpolation, False))
            for m in space[name]
        ]
        ops.append(A.OneOf(each, p=1.0))
    return A.OneOf(ops, p=1.0)


def auto_augment(policy: str = "imagenet", fill: Any = 0, fill_mask: Any = 255, interpolation: int = 1) -> Any:
    """AutoAugment: one sub-policy of :data:`IMAGENET_POLICY`, its two operations with their probabilities.

    Raises:
        ValueError: a policy other than ``"imagenet"``.
    """
    import albumentations as A

    if policy != "imagenet":
        raise ValueError(f"AutoAugment policy must be 'imagenet' (the one learned for natural images), got {policy!r}")
    _check_interpolation(interpolation)
    space = _space(10, wide=False)
    subs = []
    for pair in IMAGENET_POLICY:
        ops = []
        for name, p, b in pair:
            m = float(space[name][b]) if b is not None and name in space else 0.0
            ops.append(_signed(name, m, lambda v, n=name: _op(n, v, fill, fill_mask, interpolation, True), p=p))
        subs.append(A.Sequential(ops, p=1.0))
    return A.OneOf(subs, p=1.0)


#: config names -> builders (``augment.train: [{RandAugment: {num_ops: 2, magnitude: 9}}]``)
POLICIES = {"AutoAugment": auto_augment, "RandAugment": rand_augment, "TrivialAugment": trivial_augment}
