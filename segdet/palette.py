"""A fixed colour palette for class-index masks, shared by overlays and data previews."""

from __future__ import annotations

import numpy as np


def class_palette(num_classes: int) -> np.ndarray:
    """Distinct RGB colours, one per class, the same on every call.

    The Pascal VOC scheme: the bits of the class index are spread over the high bits of red,
    green and blue, so class 0 is black, 1 dark red, 2 dark green, 3 olive, ... and every index
    below 2**24 gets its own colour.

    Args:
        num_classes: number of colours.

    Returns:
        (num_classes, 3) uint8 RGB.

    Example:
        >>> class_palette(3).tolist()
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
    colours = np.zeros((num_classes, 3), dtype=np.uint8)
    for index in range(num_classes):
        code = index
        rgb = [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << bit
            code >>= 3
        colours[index] = rgb
    return colours


def box_colour(label: int, num_classes: int) -> tuple[int, int, int]:
    """RGB colour of a box of 0-based detection ``label``.

    The palette colour of mask class ``label + 1`` (class 0 is background), lightened so boxes
    stand out over mask overlays; white for a label outside ``[0, num_classes)``. The preview and
    detection drawings share it.
    """
    if not 0 <= label < num_classes:
        return (255, 255, 255)
    r, g, b = (min(255, int(v) + 90) for v in class_palette(num_classes + 1)[label + 1])
    return (r, g, b)


def colorize_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Paint a class-index mask with :func:`class_palette`.

    Args:
        mask: (H, W) integer class indices in ``[0, num_classes)``; other values (e.g. an
            ignore_index of 255) are painted white.
        num_classes: number of classes.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    palette = np.concatenate([class_palette(num_classes), np.full((1, 3), 255, np.uint8)])
    index = np.where((mask >= 0) & (mask < num_classes), mask, num_classes).astype(np.int64)
    return palette[index]


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    alpha: float = 0.5,
    transparent: int | None = 0,
) -> np.ndarray:
    """Blend the colourised mask over the image.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) integer class indices.
        num_classes: number of classes.
        alpha: weight of the mask colours (0 = image only, 1 = colours only).
        transparent: class left as the plain image (class 0, the background by convention, as in
            the ``segdet.preview`` grids); ``None`` colours every class.

    Returns:
        (H, W, 3) uint8 RGB, ``(1 - alpha) * image + alpha * colour`` (the image itself where the
        class is ``transparent``).

    Example:
        >>> overlay_mask(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), int), 2).shape
        (4, 4, 3)
    """
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image is {image.shape[:2]} but mask is {mask.shape}; they must match")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colours = colorize_mask(mask, num_classes).astype(np.float32)
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    out = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    if transparent is not None:
        keep = mask == transparent
        out[keep] = image[keep]
    return out
