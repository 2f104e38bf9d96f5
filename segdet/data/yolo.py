"""YOLO folders (``images/`` + ``labels/*.txt``) as samples: boxes, or polygons with instance masks.

A label line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 ... xn yn`` (a polygon of
n >= 3 points, as ultralytics writes segmentation labels), all fractions of the image's width
and height. A file holds one kind of line: as in ultralytics, a file with any line of more than
five fields is a polygon file. A polygon gives its box (the extent of its points, as
ultralytics' ``segments2boxes``) and, when instance masks are asked for, its mask, rasterised
by pycocotools as a COCO polygon is (so masks equal those of the same objects in a COCO json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augment.box_formats import yolo_to_pascal_voc
from segdet._images import IMAGE_EXTENSIONS, image_size, read_image
from segdet.data._boxes import BoxCleaner

__all__ = ["YoloDataset", "YoloLabels", "parse_yolo_file", "parse_yolo_labels"]

#: the largest normalised coordinate accepted (1, plus room for rounding in the writer)
_NORMALISED_MAX = 1.0 + 1e-6
_PIXEL_HINT = (
    "YOLO labels hold fractions of the image's width and height in 0..1, and these look like pixel units; divide "
    "the x values by the image width and the y values by its height"
)


@dataclass(frozen=True)
class YoloLabels:
    """The objects of one YOLO label file.

    Attributes:
        boxes: (N, 4) float32 normalised cx, cy, w, h (of the polygon's extent for polygon files).
        labels: (N,) int64 class indices.
        polygons: for a polygon file, N (P_i, 2) float64 arrays of normalised x, y; else ``None``.
    """

    boxes: np.ndarray
    labels: np.ndarray
    polygons: list[np.ndarray] | None = None


def parse_yolo_file(path: Path, num_classes: int) -> YoloLabels:
    """Read one YOLO label file of boxes or polygons (see the module docstring).

    A missing file means an image without objects.

    Raises:
        ValueError: a box line without five fields in a box file; a polygon line with an odd
            number of coordinates or fewer than three points; a value that is not a number; a
            class outside ``0..num_classes-1``; a negative box size; a coordinate above 1
            (labels in pixel units). The message names the file, the line and the fix.
    """
    if not path.is_file():
        return YoloLabels(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    rows = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.split()]
    polygons = any(len(fields) > 5 for _, fields in rows)
    boxes, labels, shapes = [], [], []
    for n, fields in rows:
        text = " ".join(fields)
        shown = text if len(text) <= 80 else text[:77] + "..."
        try:
            cls_f = float(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(f"{path}:{n}: {shown!r} holds a value that is not a number") from None
        if cls_f != int(cls_f) or not 0 <= int(cls_f) < num_classes:
            raise ValueError(
                f"{path}:{n}: class {fields[0]} is not an index in 0..{num_classes - 1} "
                f"({num_classes} classes); fix the label or data.classes"
            )
        if polygons:
            points = _polygon(path, n, values, shown)
            shapes.append(points)
            lo, hi = points.min(axis=0), points.max(axis=0)
            boxes.append([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[0] - lo[0], hi[1] - lo[1]])
        else:
            boxes.append(_box(path, n, fields, values, shown))
        labels.append(int(cls_f))
    return YoloLabels(
        np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64), shapes if polygons else None
    )


def _box(path: Path, n: int, fields: list[str], values: list[float], shown: str) -> list[float]:
    if len(fields) != 5:
        raise ValueError(f"{path}:{n}: expected 'class cx cy w h' (5 fields), got {len(fields)}: {shown!r}")
    cx, cy, w, h = values
    if w < 0 or h < 0:
        raise ValueError(f"{path}:{n}: negative box size w={w}, h={h}")
    above = [(name, f) for name, v, f in zip(("cx", "cy", "w", "h"), values, fields[1:]) if v > _NORMALISED_MAX]
    if above:
        listed = ", ".join(f"{name}={f}" for name, f in above)
        raise ValueError(
            f"{path}:{n}: {listed} above 1 in {shown!r}: YOLO labels hold normalised xywh, fractions of the image's "
            "width and height in 0..1, and these look like pixel units; divide cx and w by the image width, cy and h "
            "by its height"
        )
    return [cx, cy, w, h]


def _polygon(path: Path, n: int, values: list[float], shown: str) -> np.ndarray:
    if len(values) % 2:
        raise ValueError(
            f"{path}:{n}: polygon line {shown!r} has {len(values)} coordinates, an odd number; a YOLO segment line "
            "is 'class x1 y1 x2 y2 ... xn yn', one x y pair per point: the line lost or gained a value"
        )
    if len(values) < 6:
        raise ValueError(
            f"{path}:{n}: {shown!r} has {len(values) // 2} points, but a polygon needs at least three "
            "('class x1 y1 x2 y2 x3 y3 ...'); this file holds polygons (a line of more than five fields), so it "
            "cannot hold 'class cx cy w h' boxes too: remove the line or write the object as a polygon"
        )
    points = np.asarray(values, np.float64).reshape(-1, 2)
    if points.max() > _NORMALISED_MAX:
        raise ValueError(f"{path}:{n}: a coordinate is {points.max():g}, above 1, in {shown!r}: {_PIXEL_HINT}")
    return points


def parse_yolo_labels(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes and classes of one YOLO label file (:func:`parse_yolo_file`, polygons as their boxes).

    Returns:
        ``(boxes (N, 4) float32 normalised cx, cy, w, h, labels (N,) int64)``.

    Raises:
        ValueError: as :func:`parse_yolo_file`.
    """
    parsed = parse_yolo_file(path, num_classes)
    return parsed.boxes, parsed.labels


def _read_names(root: Path) -> list[str] | None:
    for cand in (root / "classes.txt", root.parent / "classes.txt"):
        if cand.is_file():
            return [line.strip() for line in cand.read_text().splitlines() if line.strip()]
    return None


class YoloDataset:
    """A YOLO folder as a dataset of segdet detection samples, with instance masks from polygon labels.

    Layout: ``root/images/<stem>.<ext>`` and ``root/labels/<stem>.txt``; an image without a label
    file has no objects, but the ``labels/`` folder must exist (without it every image would be
    background). Coordinates are normalised: a value above 1 (pixel units) stops with the file
    and line. Class names come from ``classes`` or else a ``classes.txt`` (one name per
    line) in ``root`` or its parent. Boxes partly outside the image are clipped and zero-area ones
    dropped, counted in one warning (a polygon's mask follows its box: dropped with it).

    Args:
        root: the YOLO folder.
        classes: class names (index = YOLO class id), or None to read ``classes.txt``.
        instance_masks: return ``masks``, one per box, rasterised from the polygons; every
            label file with objects must then hold polygons.

    Returns (``__getitem__``):
        ``{"image": (H, W, 3) uint8, "bboxes": (N, 4) float32 xyxy pixels, "labels": (N,) int64,
        "image_id": int}``, and ``"masks": (N, H, W) uint8`` with ``instance_masks``.

    Raises:
        ValueError: missing folders (``images/`` or ``labels/``), no class names, bad label lines
            (file and line named), or, with ``instance_masks``, a label file of boxes.

    Example:
        >>> ds = YoloDataset("data/coco128-seg", classes=["person", "bicycle"],
        ...                  instance_masks=True)  # doctest: +SKIP
        >>> ds[0]["masks"].dtype  # doctest: +SKIP
        dtype('uint8')
    """

    def __init__(self, root: str | Path, classes: Sequence[str] | None = None, *, instance_masks: bool = False) -> None:
        self.root = Path(root)
        self.instance_masks = bool(instance_masks)
        img_dir, lab_dir = self.root / "images", self.root / "labels"
        for d in (img_dir, lab_dir):
            if not d.is_dir():
                raise ValueError(
                    f"YOLO folder {self.root} has no {d.name}/ ({d} does not exist); expected images/ and labels/ "
                    "with one labels/<stem>.txt per image that has boxes (set data.yolo.train/val to the folder "
                    "holding both)"
                )
        names = list(classes) if classes is not None else _read_names(self.root)
        if not names:
            raise ValueError(
                f"YOLO folder {self.root}: no class names; set data.classes or add a classes.txt with one name per line"
            )
        self.classes = [str(c) for c in names]
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {img_dir}")
        cleaner = BoxCleaner(f"YOLO {self.root}")
        self.items: list[tuple[Path, np.ndarray, np.ndarray]] = []
        self.polygons: list[list[np.ndarray]] = []
        self.sizes: list[tuple[int, int]] = []
        for image in images:
            label_file = lab_dir / f"{image.stem}.txt"
            parsed = parse_yolo_file(label_file, len(self.classes))
            if self.instance_masks and parsed.polygons is None and len(parsed.labels):
                raise ValueError(
                    f"{label_file} holds boxes ('class cx cy w h'), but the model's mask head (Mask R-CNN) or "
                    "CopyPaste needs instance masks: write the objects as polygons ('class x1 y1 x2 y2 ...', as "
                    "ultralytics' segment datasets hold them), or use a box-only detector without CopyPaste"
                )
            h, w = image_size(image)
            pixels = yolo_to_pascal_voc(parsed.boxes, h, w)
            b, lab, keep = cleaner.clean(pixels, parsed.labels, h, w, str(label_file))
            self.items.append((image, b, lab))
            self.polygons.append([p for p, k in zip(parsed.polygons or [], keep) if k])
            self.sizes.append((h, w))
        cleaner.warn()
        self.num_boxes = sum(len(labels) for _, _, labels in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, boxes, labels = self.items[index]
        sample = {"image": read_image(path), "bboxes": boxes.copy(), "labels": labels.copy(), "image_id": int(index)}
        if self.instance_masks:
            from segdet.data.coco import segmentation_to_mask

            h, w = sample["image"].shape[:2]
            sample["masks"] = np.zeros((len(labels), h, w), np.uint8)
            for j, points in enumerate(self.polygons[index]):
                flat = (points * np.array([w, h], np.float64)).ravel().tolist()
                sample["masks"][j] = segmentation_to_mask([flat], h, w)
        return sample

    def box_table(self) -> list[tuple[tuple[int, int], np.ndarray]]:
        """``((height, width), boxes (K, 4))`` of every image, without reading a pixel."""
        return [(size, boxes) for size, (_, boxes, _) in zip(self.sizes, self.items)]
