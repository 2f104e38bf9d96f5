"""Segmentation inference on image files: class-index PNG masks (multilabel: one per class) and overlays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segdet._files import write_png
from segdet._images import read_image
from segdet.palette import (
    MIN_WIDTH,
    class_palette,
    label_colours,
    legend_strip,
    overlay_labels,
    overlay_mask,
    upscale,
    upscale_factor,
)

from ._confusion import labels_from_logits
from ._multilabel import present_from_logits
from .inference import Inference


def pad_to_stride(image: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) at the bottom and right to multiples of ``stride``.

    The same placement and value (0) as the segmentation collate function, so a picture gets
    the same input whether it is predicted on its own or evaluated in a batch.
    """
    height, width = image.shape[-2:]
    pad_h = (-height) % stride
    pad_w = (-width) % stride
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="constant", value=0.0)


def render_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    classes: Sequence[str],
    alpha: float = 0.5,
    *,
    min_width: int = MIN_WIDTH,
) -> np.ndarray:
    """The ``<stem>_overlay.png`` picture of a predicted mask: colours over the image, and a legend.

    :func:`~segdet.palette.overlay_mask` (class 0 left plain) enlarged by the integer factor of
    :func:`~segdet.palette.upscale_factor` (nearest neighbour, so each image pixel becomes one
    block of one class colour) to at least ``min_width`` pixels wide, above a
    :func:`~segdet.palette.legend_strip` of the classes present in ``mask`` (``"k name"`` with
    its colour swatch; class 0 with an empty swatch).

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) integer class indices.
        classes: the class names, in index order.
        alpha: weight of the class colours.
        min_width: narrower pictures are enlarged; 1 keeps the image's own size.

    Returns:
        (H * f + legend, W * f, 3) uint8 RGB.

    Example:
        >>> render_overlay(np.zeros((32, 48, 3), np.uint8), np.ones((32, 48), int), ["bg", "cell"]).shape
        (220, 288, 3)
    """
    num_classes = len(classes)
    factor = upscale_factor(*mask.shape, min_width)
    picture = upscale(overlay_mask(image, mask, num_classes, alpha), factor)
    palette = class_palette(num_classes)
    present = [int(c) for c in np.unique(mask) if 0 <= c < num_classes]
    entries = [(f"{c} {classes[c]}", palette[c] if c else None) for c in present]
    return np.concatenate([picture, legend_strip(entries, picture.shape[1])])


def render_label_overlay(
    image: np.ndarray, present: np.ndarray, classes: Sequence[str], alpha: float = 0.5, *, min_width: int = MIN_WIDTH
) -> np.ndarray:
    """The ``<stem>_overlay.png`` picture of a multilabel prediction: every present class coloured, and a legend.

    :func:`~segdet.palette.overlay_labels` (overlapping classes show the mean of their colours,
    class ``k`` in :func:`~segdet.palette.label_colours` colour ``k``) enlarged as in
    :func:`render_overlay`, above a legend of the classes present anywhere in the image.

    Args:
        image: (H, W, 3) uint8 RGB.
        present: (K, H, W) bool, class ``k`` predicted.
        classes: the ``K`` class names, in channel order.
        alpha: weight of the class colours.
        min_width: narrower pictures are enlarged; 1 keeps the image's own size.

    Returns:
        (H * f + legend, W * f, 3) uint8 RGB.
    """
    factor = upscale_factor(*present.shape[1:], min_width)
    picture = upscale(overlay_labels(image, present, alpha), factor)
    colours = label_colours(len(classes))
    entries = [(f"{k} {classes[k]}", colours[k]) for k in range(len(classes)) if present[k].any()]
    return np.concatenate([picture, legend_strip(entries, picture.shape[1])])


def _check_folder_names(classes: Sequence[str]) -> None:
    """Multilabel masks go to ``OUT/<class>/``: each class name must be one plain folder name."""
    for name in classes:
        if name in ("", ".", "..") or "/" in name or "\\" in name or name != name.strip():
            raise ValueError(
                f"class name {name!r} cannot be a folder name under the output folder (multilabel masks are "
                "written to OUT/<class>/<stem>.png); rename the class with data.classes"
            )


def _output_names(image_paths: Sequence[Path]) -> list[tuple[str, str]]:
    """``(<stem>.png, <stem>_overlay.png)`` per image; two inputs may not write the same file."""
    names = [(f"{p.stem}.png", f"{p.stem}_overlay.png") for p in image_paths]
    owner: dict[str, Path] = {}
    for path, pair in zip(image_paths, names):
        for name in pair:
            if name in owner:
                raise ValueError(
                    f"{owner[name]} and {path} would both write {name}; rename one of them or "
                    "predict them into separate output folders"
                )
            owner[name] = path
    return names


def predict_segmentation(
    model: nn.Module,
    image_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    classes: Sequence[str],
    device: torch.device | str,
    *,
    stride: int = 32,
    alpha: float = 0.5,
    autocast_dtype: torch.dtype | None = None,
    inference: Inference | None = None,
    mode: str = "multiclass",
    threshold: float = 0.5,
) -> list[Path]:
    """Predict every image and write ``<stem>.png`` masks and ``<stem>_overlay.png`` overlays.

    Each image is read as RGB, scaled to [0, 1] (the model wrapper normalises), zero-padded at
    the bottom/right to a multiple of ``stride``, run through the model in eval mode, and the
    output is cropped back to the image's own size (nothing is resized). The mask PNG holds the
    class index per pixel at the image's own size (uint8, or uint16 with more than 256
    classes); the overlay (:func:`render_overlay`) blends the class colours over the image
    (class 0, the background, left plain, as in the ``segdet.preview`` grids), enlarged to at
    least 256 px wide, with a legend. Files are written atomically.

    ``mode`` is ``data.mode``: ``binary`` (a one-channel model, two class names) writes 0/1
    masks, 1 where ``sigmoid(logit) > threshold``, and the two-class overlay; ``multilabel``
    writes one 0/255 mask per class, ``<class>/<stem>.png``, 255 where ``sigmoid(logit_k) >
    threshold``, and an overlay of every class present (:func:`render_label_overlay`). The
    threshold applies to the logits after the sliding window and TTA averaged them.

    Args:
        model: maps (1, 3, H, W) float images in [0, 1] to (1, C, H, W) logits.
        image_paths: image files (see :func:`~segdet._files.collect_image_paths`).
        out_dir: output folder (created).
        classes: the ``C`` class names, in index order.
        device: where to run the model (it must already be there).
        stride: the network's output stride; inputs are padded to a multiple of it.
        alpha: weight of the class colours in the overlay.
        autocast_dtype: run under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``);
            ``None`` runs in the model's own precision.
        inference: sliding window and TTA (the config's ``inference`` section); ``None`` or a
            plain one is one forward pass of the padded image.
        mode: ``multiclass``, ``binary`` or ``multilabel``.
        threshold: binary / multilabel: the ``sigmoid(logit)`` a class must exceed.

    Returns:
        The written mask paths, in input order (multilabel: the first class's masks).

    Raises:
        ValueError: an image cannot be read (the message names it), two inputs share a stem,
            or the model output does not have one channel per class.

    Example:
        >>> paths = collect_image_paths("photos/")
        >>> predict_segmentation(model, paths, "runs/x/predict", ["bg", "cell"], "cpu")
    """
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    num_classes = len(classes)
    if num_classes < 1:
        raise ValueError("classes is empty; give the class names in index order")
    if mode not in ("multiclass", "binary", "multilabel"):
        raise ValueError(f"mode must be multiclass, binary or multilabel (data.mode), got {mode!r}")
    if mode == "multilabel":
        _check_folder_names(classes)
    image_paths = [Path(p) for p in image_paths]
    names = _output_names(image_paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    mask_dtype = np.uint8 if num_classes <= 256 else np.uint16

    was_training = model.training
    model.eval()
    written = []
    try:
        for path, (mask_name, overlay_name) in zip(image_paths, names):
            image = read_image(path)
            height, width = image.shape[:2]
            x = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=torch.float32) / 255.0
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None),
            ):
                if inference is None or inference.plain:
                    logits = model(pad_to_stride(x, stride))
                else:
                    logits = inference(model, x)
            logits = logits[..., :height, :width]
            if mode == "multilabel":
                present = present_from_logits(logits, num_classes, threshold)[0].cpu().numpy()
                paths = [
                    write_png(out_dir / name / mask_name, np.where(channel, 255, 0).astype(np.uint8))
                    for name, channel in zip(classes, present)
                ]
                written.append(paths[0])
                write_png(out_dir / overlay_name, render_label_overlay(image, present, classes, alpha))
                continue
            labels = labels_from_logits(logits, num_classes, threshold)
            mask = labels[0].to(torch.int32).cpu().numpy().astype(mask_dtype)
            written.append(write_png(out_dir / mask_name, mask))
            write_png(out_dir / overlay_name, render_overlay(image, mask, classes, alpha))
    finally:
        model.train(was_training)
    return written
