"""Class colours and the drawing helpers shared by mask overlays, detection drawings and previews.

One colour per class: mask class ``c`` is :func:`class_palette` colour ``c`` and a box of 0-based
detection label ``l`` is colour ``l + 1`` (class 0 is the background), so a box and the mask of
the same class have one colour in every picture segdet draws. Small images are enlarged by an
integer factor (nearest neighbour) before boxes, captions and legends are drawn at that scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Narrowest picture segdet draws: smaller images are enlarged by an integer factor to this width.
MIN_WIDTH = 256
#: The longest side an enlargement may reach (very thin images keep a smaller factor).
MAX_SIDE = 4096
#: Height in pixels of one legend row (class colour swatch and name).
LEGEND_ROW = 24
#: Font scale of legend text (``cv2.FONT_HERSHEY_SIMPLEX``, about 10 px capitals).
LEGEND_FONT = 0.5
# a legend name starts this many pixels right of its swatch's left edge
_SWATCH_CELL = 22

# Classes 1..20: red, green, blue and yellow, then saturated mid-lightness colours, each picked
# from an RGB grid in steps of 15 for the largest CIEDE2000 difference to the colours before it and to
# black, white and grey (the background, the hatching of ignored pixels, grey images).
# Every pair differs by at least 19 in CIEDE2000 (22 in Delta E 1976; the Pascal VOC colours
# of the same 21 classes come within 9).
_DISTINCT = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (120, 0, 210),
    (255, 135, 255),
    (255, 135, 30),
    (120, 75, 0),
    (0, 210, 210),
    (0, 105, 60),
    (255, 165, 165),
    (150, 135, 0),
    (165, 180, 255),
    (150, 90, 135),
    (15, 135, 135),
    (150, 105, 255),
    (165, 30, 0),
    (195, 210, 150),
    (60, 195, 255),
    (75, 90, 150),
)


def _spread_bits(codes: np.ndarray) -> np.ndarray:
    """The Pascal VOC colour of each code: its bits spread over the high bits of R, G and B."""
    rgb = np.zeros((len(codes), 3), np.int64)
    codes = codes.astype(np.int64)
    for bit in range(7, -1, -1):
        for channel in range(3):
            rgb[:, channel] |= ((codes >> channel) & 1) << bit
        codes = codes >> 3
    return rgb


def class_palette(num_classes: int) -> np.ndarray:
    """Distinct RGB colours, one per class, the same on every call.

    Class 0 (the background) is black; classes 1 to 20 get 20 hand-checked colours that stay
    apart from each other and from black, white and grey; later classes take the Pascal VOC
    colours (bits of a running code spread over red, green and blue) that are not used yet, so
    every index below 2**24 has its own colour. ``class_palette(n)[:k]`` equals
    ``class_palette(k)``.

    Args:
        num_classes: number of colours.

    Returns:
        (num_classes, 3) uint8 RGB.

    Example:
        >>> class_palette(4).tolist()
        [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200]]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
    if num_classes > 2**24:
        raise ValueError(f"num_classes must be at most 2**24 (one colour each), got {num_classes}")
    fixed = np.array(((0, 0, 0), *_DISTINCT), np.int64)
    if num_classes <= len(fixed):
        return fixed[:num_classes].astype(np.uint8)
    extra = num_classes - len(fixed)
    codes = _spread_bits(np.arange(1, extra + len(fixed) + 1))  # at most len(fixed) of them are taken
    packed = codes @ np.array([1 << 16, 1 << 8, 1])
    taken = np.isin(packed, fixed @ np.array([1 << 16, 1 << 8, 1]))
    return np.concatenate([fixed, codes[~taken][:extra]]).astype(np.uint8)


def box_colour(label: int, num_classes: int) -> tuple[int, int, int]:
    """RGB colour of a box of 0-based detection ``label``: the colour of mask class ``label + 1``.

    Class 0 is the background, so a box and the mask of its class share one colour (the
    preview, the segmentation overlays and the detection drawings use it); white for a label
    outside ``[0, num_classes)``.

    Example:
        >>> box_colour(0, 3), box_colour(5, 3)
        ((230, 25, 75), (255, 255, 255))
    """
    if not 0 <= label < num_classes:
        return (255, 255, 255)
    r, g, b = (int(v) for v in class_palette(label + 2)[label + 1])
    return (r, g, b)


def text_colour(background: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (RGB), by its luma."""
    r, g, b = (float(v) for v in background[:3])
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


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


def upscale_factor(height: int, width: int, min_width: int = MIN_WIDTH) -> int:
    """Integer enlargement that makes an image of ``height`` x ``width`` at least ``min_width`` wide.

    ``ceil(min_width / width)``, 1 for images already that wide, and never so large that a side
    passes :data:`MAX_SIDE` (then the largest factor that stays within it, at least 1).

    Example:
        >>> upscale_factor(64, 64), upscale_factor(96, 128), upscale_factor(30, 40), upscale_factor(480, 640)
        (4, 2, 7, 1)
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot enlarge an empty image ({height} x {width})")
    factor = max(1, math.ceil(min_width / width))
    return max(1, min(factor, MAX_SIDE // max(height, width)))


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every pixel of (H, W, ...) ``array`` ``factor`` x ``factor`` times (nearest neighbour).

    Class-index masks stay class indices and an image keeps its exact pixel values, each as one
    block of the enlarged picture.

    Example:
        >>> upscale(np.array([[1, 2]]), 2).tolist()
        [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def font_scale(height: int, width: int) -> float:
    """Font scale (``cv2.FONT_HERSHEY_SIMPLEX``) of box captions on a picture of that size.

    0.45 (about 9 px capitals) up to 315 px on the short side, then growing with the picture.
    """
    return max(0.45, min(height, width) / 700)


def draw_box(
    image: np.ndarray,
    box: Sequence[float],
    colour: Sequence[int],
    caption: str = "",
    *,
    thickness: int = 2,
    scale: float = 0.45,
) -> None:
    """Draw a box and its caption on ``image`` in place.

    The frame is ``thickness`` pixels wide, inside the box (pascal_voc pixels: the right and
    bottom edges are exclusive); the caption is ``text_colour`` text on a tag filled with
    ``colour``, above the box where it fits, else inside its top, shifted left to stay in the
    image.

    Args:
        image: (H, W, 3) uint8 RGB, C-contiguous.
        box: x_min, y_min, x_max, y_max in pixels of ``image``.
        colour: RGB of the frame and the tag.
        caption: text of the tag; empty draws no tag.
        thickness: frame width in pixels.
        scale: font scale of the caption.
    """
    import cv2

    colour = tuple(int(v) for v in colour)
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x1, y1 = max(x0, x1 - 1), max(y0, y1 - 1)
    for i in range(thickness):
        if x0 + i > x1 - i or y0 + i > y1 - i:
            break
        cv2.rectangle(image, (x0 + i, y0 + i), (x1 - i, y1 - i), colour, 1)
    if not caption:
        return
    weight = max(1, int(scale * 1.5))  # stroke of the text, heavier on large pictures
    (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
    tag_h = th + base + 3
    top = y0 - tag_h if y0 - tag_h >= 0 else y0
    left = max(0, min(x0, image.shape[1] - tw - 4))
    cv2.rectangle(image, (left, top), (left + tw + 3, top + tag_h - 1), colour, -1)
    cv2.putText(
        image,
        caption,
        (left + 2, top + th + 1),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        text_colour(colour),
        weight,
        cv2.LINE_AA,
    )


def legend_cols(entries: Sequence[tuple[str, object]], width: int) -> int:
    """Columns of a legend of ``entries`` that fit ``width`` pixels with no name cut."""
    import cv2

    widest = max(
        (cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, LEGEND_FONT, 1)[0][0] for name, _ in entries), default=0
    )
    return max(1, width // (widest + _SWATCH_CELL + 12))


def draw_legend(
    canvas: np.ndarray,
    entries: Sequence[tuple[str, Sequence[int] | None]],
    top: int,
    left: int,
    cols: int,
    cell_w: int,
) -> None:
    """Draw ``(name, colour)`` legend entries on ``canvas`` in place, row by row.

    Entry ``k`` sits in row ``k // cols`` (:data:`LEGEND_ROW` pixels high, from ``top``) and
    column ``k % cols`` (``cell_w`` pixels wide, from ``left``): a 16 px swatch filled with the
    colour, framed in light grey, and the name in light grey text. A colour of ``None`` (a class
    drawn transparent, the background) leaves the swatch empty. Names wider than the cell are cut.
    """
    import cv2

    for k, (name, colour) in enumerate(entries):
        r, c = divmod(k, cols)
        y, x = top + r * LEGEND_ROW, left + c * cell_w
        if colour is not None:
            cv2.rectangle(canvas, (x, y + 4), (x + 15, y + 19), tuple(int(v) for v in colour), -1)
        cv2.rectangle(canvas, (x, y + 4), (x + 15, y + 19), (200, 200, 200), 1)
        text = _fit(name, cell_w - _SWATCH_CELL - 6)
        cv2.putText(
            canvas,
            text,
            (x + _SWATCH_CELL, y + 17),
            cv2.FONT_HERSHEY_SIMPLEX,
            LEGEND_FONT,
            (235, 235, 235),
            1,
            cv2.LINE_AA,
        )


def _fit(text: str, width: int) -> str:
    import cv2

    if cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, LEGEND_FONT, 1)[0][0] <= width:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "..", cv2.FONT_HERSHEY_SIMPLEX, LEGEND_FONT, 1)[0][0] > width:
        text = text[:-1]
    return text + ".."


def legend_strip(entries: Sequence[tuple[str, Sequence[int] | None]], width: int) -> np.ndarray:
    """A dark (rows, ``width``, 3) uint8 band holding the legend of ``entries`` (:func:`draw_legend`).

    As many columns as fit the widest name (:func:`legend_cols`), 4 px margins, one
    :data:`LEGEND_ROW` per row of entries; ``(0, width, 3)`` for no entries.
    """
    if not entries:
        return np.zeros((0, width, 3), np.uint8)
    cols = legend_cols(entries, width - 8)
    rows = math.ceil(len(entries) / cols)
    strip = np.full((rows * LEGEND_ROW + 4, width, 3), 32, np.uint8)
    draw_legend(strip, entries, 2, 4, cols, (width - 8) // cols)
    return strip


def label_colours(num_labels: int) -> np.ndarray:
    """Colours of multilabel classes: class ``k`` (no background) takes palette colour ``k + 1``.

    The same colour a box of 0-based label ``k`` gets (:func:`box_colour`), so none is black.

    Returns:
        (num_labels, 3) uint8 RGB.

    Example:
        >>> label_colours(2).tolist()
        [[230, 25, 75], [60, 180, 75]]
    """
    return class_palette(num_labels + 1)[1:]


def overlay_labels(image: np.ndarray, present: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colours of every class present at a pixel (multilabel) over the image.

    Args:
        image: (H, W, 3) uint8 RGB.
        present: (K, H, W) bool (or 0/1), class ``k`` present; overlapping classes show the
            mean of their :func:`label_colours`.
        alpha: weight of the colours where any class is present; pixels with none stay plain.

    Returns:
        (H, W, 3) uint8 RGB.

    Example:
        >>> overlay_labels(np.zeros((2, 2, 3), np.uint8), np.ones((1, 2, 2), bool))[0, 0].tolist()
        [115, 12, 38]
    """
    present = np.asarray(present).astype(bool)
    if present.ndim != 3 or present.shape[1:] != image.shape[:2]:
        raise ValueError(f"image is {image.shape[:2]} but the class channels are {present.shape}; expected (K, H, W)")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    count = present.sum(0)
    colours = np.einsum("khw,kc->hwc", present.astype(np.float32), label_colours(len(present)).astype(np.float32))
    colours /= np.maximum(count, 1)[:, :, None]
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    out = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    plain = count == 0
    out[plain] = image[plain]
    return out
