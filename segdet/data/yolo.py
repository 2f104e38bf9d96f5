"""YOLO detection folders (``images/`` + ``labels/*.txt``, normalised ``class cx cy w h``) as samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from augment.box_formats import yolo_to_pascal_voc
from segdet._images import IMAGE_EXTENSIONS, image_size, read_image
from segdet.data._boxes import BoxCleaner

__all__ = ["YoloDataset", "parse_yolo_labels"]

#: the largest normalised coordinate accepted (1, plus room for rounding in the writer)
_NORMALISED_MAX = 1.0 + 1e-6


def parse_yolo_labels(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one YOLO label file.

    Each non-empty line is ``class cx cy w h`` with the centre and size as fractions of the
    image width/height. A missing file means an image without boxes.

    Returns:
        ``(boxes (N, 4) float32 normalised cx, cy, w, h, labels (N,) int64)``.

    Raises:
        ValueError: a line without exactly five numbers (segment polygons included), a class
            outside ``0..num_classes-1``, a negative size, or a coordinate above 1 (labels in
            pixel units, which would all fall outside the image); the message names file and line.
    """
    if not path.is_file():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    boxes, labels = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(
                f"{path}:{n}: expected 'class cx cy w h' (5 fields), got {len(fields)}: {line.strip()!r}"
                "; polygon (segment) labels are not supported for detection"
            )
        try:
            cls_f = float(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"{path}:{n}: {line.strip()!r} holds a value that is not a number") from None
        if cls_f != int(cls_f) or not 0 <= int(cls_f) < num_classes:
            raise ValueError(
                f"{path}:{n}: class {fields[0]} is not an index in 0..{num_classes - 1} "
                f"({num_classes} classes); fix the label or data.classes"
            )
        if w < 0 or h < 0:
            raise ValueError(f"{path}:{n}: negative box size w={w}, h={h}")
        above = [(name, v) for name, v in zip(("cx", "cy", "w", "h"), (cx, cy, w, h)) if v > _NORMALISED_MAX]
        if above:
            shown = ", ".join(f"{name}={fields[1 + 'cx cy w h'.split().index(name)]}" for name, _ in above)
            raise ValueError(
                f"{path}:{n}: {shown} above 1 in {line.strip()!r}: YOLO labels hold normalised xywh, fractions of "
                "the image's width and height in 0..1, and these look like pixel units; divide cx and w by the "
                "image width, cy and h by its height"
            )
        boxes.append([cx, cy, w, h])
        labels.append(int(cls_f))
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def _read_names(root: Path) -> list[str] | None:
    for cand in (root / "classes.txt", root.parent / "classes.txt"):
        if cand.is_file():
            return [line.strip() for line in cand.read_text().splitlines() if line.strip()]
    return None


class YoloDataset:
    """A YOLO folder as a dataset of segdet detection samples.

    Layout: ``root/images/<stem>.<ext>`` and ``root/labels/<stem>.txt``; an image without a label
    file has no boxes, but the ``labels/`` folder must exist (without it every image would be
    background). Coordinates are normalised: a value above 1 (pixel units) stops with the file
    and line. Class names come from ``classes`` or else a ``classes.txt`` (one name per
    line) in ``root`` or its parent. Boxes partly outside the image are clipped and zero-area ones
    dropped, counted in one warning.

    Args:
        root: the YOLO folder.
        classes: class names (index = YOLO class id), or None to read ``classes.txt``.

    Returns (``__getitem__``):
        ``{"image": (H, W, 3) uint8, "bboxes": (N, 4) float32 xyxy pixels, "labels": (N,) int64,
        "image_id": int}``.

    Raises:
        ValueError: missing folders (``images/`` or ``labels/``), no class names, bad label lines
            (file and line named).

    Example:
        >>> ds = YoloDataset("data/coco128", classes=["person", "bicycle"])  # doctest: +SKIP
        >>> ds[0]["bboxes"].dtype  # doctest: +SKIP
        dtype('float32')
    """

    def __init__(self, root: str | Path, classes: Sequence[str] | None = None) -> None:
        self.root = Path(root)
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
        for image in images:
            label_file = lab_dir / f"{image.stem}.txt"
            norm, labels = parse_yolo_labels(label_file, len(self.classes))
            h, w = image_size(image)
            b, lab = cleaner(yolo_to_pascal_voc(norm, h, w), labels, h, w, str(label_file))
            self.items.append((image, b, lab))
        cleaner.warn()
        self.num_boxes = sum(len(labels) for _, _, labels in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, boxes, labels = self.items[index]
        return {"image": read_image(path), "bboxes": boxes.copy(), "labels": labels.copy(), "image_id": int(index)}
