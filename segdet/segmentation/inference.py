"""Logits of whole images at their own resolution: whole or sliding-window passes, flip and scale TTA.

One :class:`Inference` serves per-epoch validation, ``segdet eval`` and ``segdet predict`` (the
config's ``inference`` section), so the three score and draw the same logits.

- ``mode: whole``: the image in one forward pass (the model pads it to its stride).
- ``mode: slide``: tiles of ``tile`` pixels overlapping by ``overlap`` (a fraction of the tile);
  the last tile of a row or column is shifted inside the image, never padded. Overlapping logits
  are blended with a Gaussian weight (sigma = tile / 8 per axis, as MONAI's
  ``sliding_window_inference``) or a flat one (``mean``, mmseg's ``slide`` mode), accumulated in
  float32 into an image-sized buffer: memory follows the tile, plus one float32 logit map of the
  image.
- TTA: every ``scale`` in ``scales`` (the image resized by that factor, bilinear) and, at each
  scale, the unflipped pass plus one pass per ``flip`` direction (``h``: left-right, ``v``:
  up-down). Each pass's logits are flipped back and resized back to the image's size, and the
  passes are averaged (logits, before the argmax), as mmseg's ``TestTimeAug``.

Written here rather than taken from MONAI because segdet's model pads to its own stride and
takes [0, 1] images, and the same object must drive its evaluator and predictor without MONAI's
dependency tree; the blend weights follow MONAI's definition.

Example:
    >>> inf = Inference(mode="slide", tile=(256, 256), overlap=0.25, flip=("h",))
    >>> logits = inf(model, images)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BLENDS", "FLIPS", "MODES", "Inference", "gaussian_weight", "tile_starts"]

MODES = ("whole", "slide")
BLENDS = ("gaussian", "mean")
FLIPS = ("h", "v")


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` pixels.

    The step is ``max(1, floor(tile * (1 - overlap)))``; the last tile is shifted back so that it
    ends at ``length`` (inside the image).

    Example:
        >>> tile_starts(10, 4, 0.5)
        [0, 2, 4, 6]
        >>> tile_starts(10, 4, 0.0)
        [0, 4, 6]
    """
    if tile >= length:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / step) + 1
    return sorted({min(i * step, length - tile) for i in range(count)})


def gaussian_weight(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(height, width) float32 Gaussian blend weight: 1 at the centre, sigma = size / 8 per axis.

    Weights are clamped below at 1e-3 of the peak, so the corners of a tile still count where no
    other tile covers them (the image's corners).
    """

    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2
        return torch.exp(-0.5 * (x / (n / 8)) ** 2)

    w = axis(height)[:, None] * axis(width)[None, :]
    return (w / w.max()).clamp_min(1e-3).to(torch.float32)


@dataclass(frozen=True)
class Inference:
    """How logits of a whole image are computed (the config's ``inference`` section).

    Args:
        mode: ``whole`` or ``slide``.
        tile: ``(height, width)`` of a sliding-window tile (``slide`` only).
        overlap: fraction of a tile shared with its neighbour, in ``[0, 1)``.
        blend: ``gaussian`` or ``mean`` weights of overlapping tiles.
        batch: tiles per forward pass (``slide``).
        flip: TTA flip directions, a subset of ``("h", "v")``.
        scales: TTA scales (positive); ``(1.0,)`` is no rescaling.

    Raises:
        ValueError: a value outside its range, naming the ``inference.<key>`` and the fix.
    """

    mode: str = "whole"
    tile: tuple[int, int] | None = None
    overlap: float = 0.25
    blend: str = "gaussian"
    batch: int = 4
    flip: tuple[str, ...] = ()
    scales: tuple[float, ...] = (1.0,)
    _weights: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"inference.mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.blend not in BLENDS:
            raise ValueError(f"inference.blend {self.blend!r} is not one of {', '.join(BLENDS)}")
        if self.tile is not None:
            tile = tuple(self.tile)
            if len(tile) != 2 or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in tile):
                raise ValueError(
                    f"inference.tile must be [height, width] in pixels (two positive ints), got {self.tile!r}"
                )
            object.__setattr__(self, "tile", tile)
        if self.mode == "slide" and self.tile is None:
            raise ValueError("inference.mode slide needs inference.tile: [height, width], e.g. [512, 512]")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise ValueError(f"inference.overlap must lie in [0, 1), got {self.overlap!r}; 0.25 is usual")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"inference.batch must be a positive int (tiles per forward pass), got {self.batch!r}")
        flips = tuple(self.flip)
        bad = [f for f in flips if f not in FLIPS]
        if bad or len(set(flips)) != len(flips):
            raise ValueError(f"inference.flip must list distinct directions from {list(FLIPS)}, got {list(flips)}")
        object.__setattr__(self, "flip", flips)
        scales = tuple(self.scales)
        if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0 for s in scales):
            raise ValueError(f"inference.scales must be a non-empty list of positive factors, got {list(scales)}")
        object.__setattr__(self, "scales", tuple(float(s) for s in scales))

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Inference:
        """The inference of a config's ``inference`` section (absent keys take the defaults above)."""
        known = ("mode", "tile", "overlap", "blend", "batch", "flip", "scales")
        args = {k: section[k] for k in known if k in section}
        for key in ("tile", "flip", "scales"):
            if isinstance(args.get(key), list):
                args[key] = tuple(args[key])
        return cls(**args)

    @property
    def plain(self) -> bool:
        """One whole-image pass, no TTA: the model's output as it is."""
        return self.mode == "whole" and not self.flip and self.scales == (1.0,)

    def __call__(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) float32 logits of (B, C, H, W) images in [0, 1].

        Raises:
            ValueError: in ``slide`` mode, an image smaller than the tile.
        """
        height, width = images.shape[-2:]
        if self.mode == "slide" and (self.tile[0] > height or self.tile[1] > width):
            raise ValueError(
                f"inference.tile {list(self.tile)} is larger than a {height}x{width} image; use a tile of at most "
                f"[{height}, {width}] or inference.mode: whole"
            )
        total = None
        passes = 0
        for scale in self.scales:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            x = images if size == (height, width) else _resize(images, size)
            for flip in (None, *self.flip):
                dims = {"h": [-1], "v": [-2]}.get(flip)
                xf = x.flip(dims) if dims else x
                logits = self._forward(model, xf)
                if dims:
                    logits = logits.flip(dims)
                if logits.shape[-2:] != (height, width):
                    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
                total = logits if total is None else total.add_(logits)
                passes += 1
        return total if passes == 1 else total.div_(passes)

    def _forward(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "whole" or (self.tile[0] >= x.shape[-2] and self.tile[1] >= x.shape[-1]):
            return model(x).float()
        return self._slide(model, x)

    def _slide(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        th, tw = min(self.tile[0], height), min(self.tile[1], width)  # a rescaled image may be smaller
        boxes = [
            (i, y, xs)
            for i in range(b)
            for y in tile_starts(height, th, self.overlap)
            for xs in tile_starts(width, tw, self.overlap)
        ]
        weight = self._weight(th, tw, x.device)
        out = norm = None
        for start in range(0, len(boxes), self.batch):
            chunk = boxes[start : start + self.batch]
            tiles = torch.stack([x[i, :, y : y + th, xs : xs + tw] for i, y, xs in chunk])
            logits = model(tiles).float()
            if out is None:
                out = torch.zeros((b, logits.shape[1], height, width), dtype=torch.float32, device=x.device)
                norm = torch.zeros((b, 1, height, width), dtype=torch.float32, device=x.device)
            for (i, y, xs), tile_logits in zip(chunk, logits):
                out[i, :, y : y + th, xs : xs + tw].addcmul_(tile_logits, weight)
                norm[i, :, y : y + th, xs : xs + tw].add_(weight)
        return out.div_(norm)

    def _weight(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width, str(device))
        if key not in self._weights:
            if self.blend == "gaussian":
                self._weights[key] = gaussian_weight(height, width, device)
            else:
                self._weights[key] = torch.ones((height, width), dtype=torch.float32, device=device)
        return self._weights[key]


def _resize(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    shrink = size[0] < images.shape[-2] or size[1] < images.shape[-1]
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)
