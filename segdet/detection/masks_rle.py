"""Instance masks as COCO run-length encodings, and Mask R-CNN probabilities as binary masks.

The encoding is pycocotools' own (``pycocotools.mask``): column-major runs, compressed to its
ASCII string, the form COCO annotation files and result files hold and ``COCOeval`` decodes.
Only the array layout it needs (Fortran-order uint8 (H, W, N)) and the bytes-to-str step for
json are done here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MASK_THRESHOLD", "binary_masks", "decode_rle", "encode_rle", "rle_area"]

#: Mask R-CNN's per-pixel probability above which a pixel belongs to the instance (torchvision's
#: detection reference and detectron2 both threshold at 0.5)
MASK_THRESHOLD = 0.5

#: detections resized and thresholded together, to bound the float memory of large images
_CHUNK = 16


def encode_rle(masks: np.ndarray) -> list[dict]:
    """COCO compressed RLE of each instance mask, json-ready.

    Args:
        masks: (N, H, W) array, nonzero inside the instance (bool or any integer type).

    Returns:
        N dicts ``{"size": [H, W], "counts": str}``, as COCO files and result files hold them.

    Raises:
        ValueError: ``masks`` is not three-dimensional.

    Example:
        >>> m = np.zeros((1, 4, 5), np.uint8); m[0, 1:3, 2:4] = 1
        >>> encode_rle(m)[0]["size"], rle_area(encode_rle(m))
        ([4, 5], [4.0])
    """
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"instance masks must be (N, H, W), got shape {masks.shape}")
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray((masks != 0).transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def decode_rle(rles: Sequence[dict], size: tuple[int, int] | None = None) -> np.ndarray:
    """Binary masks of COCO compressed RLEs (``counts`` str or bytes): (N, H, W) uint8 0/1.

    ``size`` (H, W) gives the shape of an empty list's (0, H, W) result.
    """
    from pycocotools import mask as mask_utils

    if not rles:
        h, w = size if size is not None else (0, 0)
        return np.zeros((0, int(h), int(w)), np.uint8)
    coded = [{"size": list(r["size"]), "counts": _bytes(r["counts"])} for r in rles]
    return np.ascontiguousarray(mask_utils.decode(coded).transpose(2, 0, 1))


def rle_area(rles: Sequence[dict]) -> list[float]:
    """Pixel count of each RLE mask (pycocotools' ``area``)."""
    from pycocotools import mask as mask_utils

    if not rles:
        return []
    coded = [{"size": list(r["size"]), "counts": _bytes(r["counts"])} for r in rles]
    return [float(a) for a in mask_utils.area(coded)]


def _bytes(counts: str | bytes) -> bytes:
    return counts.encode("ascii") if isinstance(counts, str) else counts


def binary_masks(
    probabilities: torch.Tensor, size: tuple[int, int] | None = None, threshold: float = MASK_THRESHOLD
) -> np.ndarray:
    """Mask R-CNN's per-detection probabilities as binary masks, optionally at another size.

    Resizing (bilinear, ``align_corners=False``, as torchvision pastes its masks) happens on
    the probabilities before the threshold, so a mask of a resized input maps back to the
    file's pixels the way its box is scaled back.

    Args:
        probabilities: (N, 1, H, W) or (N, H, W) values in [0, 1] (torchvision's ``masks``).
        size: (H', W') of the result; ``None`` keeps (H, W).
        threshold: a pixel is inside where its probability is above it (torchvision's
            detection reference: ``masks > 0.5``).

    Returns:
        (N, H', W') uint8 0/1 numpy array.

    Raises:
        ValueError: ``probabilities`` is not (N, 1, H, W) or (N, H, W).

    Example:
        >>> binary_masks(torch.tensor([[[[0.2, 0.7]]]]), size=(2, 4)).tolist()
        [[[0, 0, 1, 1], [0, 0, 1, 1]]]
    """
    p = probabilities.detach()
    if p.ndim == 4 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 3:
        raise ValueError(f"mask probabilities must be (N, 1, H, W) or (N, H, W), got {tuple(probabilities.shape)}")
    h, w = (int(s) for s in (size if size is not None else p.shape[-2:]))
    if (h, w) == tuple(p.shape[-2:]):
        return (p > threshold).to(torch.uint8).cpu().numpy()
    out = np.zeros((len(p), h, w), np.uint8)
    for start in range(0, len(p), _CHUNK):
        part = F.interpolate(p[start : start + _CHUNK, None].float(), size=(h, w), mode="bilinear", align_corners=False)
        out[start : start + _CHUNK] = (part[:, 0] > threshold).to(torch.uint8).cpu().numpy()
    return out
