"""Inference on image files: segmentation masks and overlays, input discovery, class colours.

Example:
    >>> from segdet.inference import collect_image_paths, predict_segmentation
    >>> predict_segmentation(model, collect_image_paths("photos/"), "out/", ["bg", "cell"], "cpu")
"""

from segdet._images import IMAGE_EXTENSIONS, read_image
from segdet.inference._files import collect_image_paths
from segdet.inference._palette import box_colour, class_palette, colorize_mask, overlay_mask
from segdet.inference.segmentation import pad_to_stride, predict_segmentation

__all__ = [
    "box_colour",
    "IMAGE_EXTENSIONS",
    "class_palette",
    "collect_image_paths",
    "colorize_mask",
    "overlay_mask",
    "pad_to_stride",
    "predict_segmentation",
    "read_image",
]
