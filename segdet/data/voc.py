"""Pascal VOC detection folders (``Annotations/*.xml`` + ``JPEGImages/``) as segdet samples."""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdet._images import IMAGE_EXTENSIONS, image_size, read_image
from segdet.data._boxes import BoxCleaner

__all__ = ["VocDataset", "parse_voc_xml"]


def _text(node: ET.Element, tag: str, xml: Path, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise ValueError(
                f"{xml}: <{node.tag}> has no <{tag}>; every object needs <name> and "
                "<bndbox> with xmin, ymin, xmax, ymax"
            )
        return None
    return child.text.strip()


def _number(node: ET.Element, tag: str, xml: Path) -> float:
    text = _text(node, tag, xml)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{xml}: <{tag}>{text}</{tag}> is not a number") from None


def parse_voc_xml(xml: Path) -> dict[str, Any]:
    """Read one VOC annotation.

    VOC pixel coordinates are 1-based and inclusive (``xmin=1`` is the first pixel column,
    ``xmax=W`` the last), so the box in continuous pixel coordinates is
    ``[xmin - 1, ymin - 1, xmax, ymax]``.

    Returns:
        ``{"filename": str | None, "size": (H, W) | None, "objects": [(name, [x0, y0, x1, y1],
        difficult)]}``.

    Raises:
        ValueError: unreadable XML, or an object without name/bndbox/coordinates (names the file).
    """
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"cannot read VOC annotation {xml}: {exc}; fix or remove the file") from exc
    size = None
    size_node = root.find("size")
    if size_node is not None:
        h, w = _text(size_node, "height", xml, False), _text(size_node, "width", xml, False)
        try:
            if h and w and float(h) > 0 and float(w) > 0:
                size = (int(float(h)), int(float(w)))
        except ValueError:  # not numbers: the image file's size is used anyway
            size = None
    objects = []
    for obj in root.iter("object"):
        name = _text(obj, "name", xml)
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"{xml}: object {name!r} has no <bndbox>")
        box = [
            _number(bnd, "xmin", xml) - 1,
            _number(bnd, "ymin", xml) - 1,
            _number(bnd, "xmax", xml),
            _number(bnd, "ymax", xml),
        ]
        difficult = (_text(obj, "difficult", xml, False) or "0") == "1"
        objects.append((name, box, difficult))
    return {"filename": _text(root, "filename", xml, False), "size": size, "objects": objects}


class VocDataset:
    """A Pascal VOC folder as a dataset of segdet detection samples.

    Layout: ``root/Annotations/<id>.xml``, ``root/JPEGImages/<file>`` (the xml's ``<filename>``,
    else ``<id>`` with any image extension) and, for ``split``, ``root/ImageSets/Main/<split>.txt``
    listing ids. Annotations are read once at construction (images lazily): boxes partly outside
    the image are clipped and zero-area or inverted ones dropped, each counted in one warning.
    The image size comes from the image file's header, never from the xml's ``<size>``; a
    ``<size>`` that differs is counted in one warning.

    Args:
        root: the VOC folder.
        split: name of an ImageSets/Main list, or None for every xml in Annotations/.
        classes: class names (index = 0-based label); None = the sorted names found in the files.
        keep_difficult: keep objects marked ``difficult`` (dropped by default).

    Returns (``__getitem__``):
        ``{"image": (H, W, 3) uint8, "bboxes": (N, 4) float32 xyxy, "labels": (N,) int64,
        "image_id": int}``.

    Raises:
        ValueError: missing folder, split file or image; an object whose class is not in
            ``classes``; malformed xml. Each message names the file.

    Example:
        >>> ds = VocDataset("data/VOC2012", split="val")  # doctest: +SKIP
        >>> ds.classes[:2], ds[0]["bboxes"].shape  # doctest: +SKIP
        (['aeroplane', 'bicycle'], (2, 4))
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        classes: Sequence[str] | None = None,
        keep_difficult: bool = False,
    ) -> None:
        self.root = Path(root)
        ann_dir, img_dir = self.root / "Annotations", self.root / "JPEGImages"
        for d in (ann_dir, img_dir):
            if not d.is_dir():
                raise ValueError(
                    f"VOC folder {self.root} has no {d.name}/; expected Annotations/*.xml and "
                    "JPEGImages/ (set data.voc.train/val to the folder holding both)"
                )
        if split is None:
            xmls = sorted(ann_dir.glob("*.xml"))
        else:
            listing = self.root / "ImageSets" / "Main" / f"{split}.txt"
            if not listing.is_file():
                raise ValueError(f"VOC split file {listing} does not exist; set the split to null to use every xml")
            ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
            xmls = [ann_dir / f"{i}.xml" for i in ids]
            for x in xmls:
                if not x.is_file():
                    raise ValueError(f"{listing} lists {x.stem} but {x} does not exist")
        if not xmls:
            raise ValueError(f"no VOC annotations in {ann_dir}")
        parsed = [parse_voc_xml(x) for x in xmls]
        if classes is None:
            classes = sorted({o[0] for p in parsed for o in p["objects"]})
        self.classes = [str(c) for c in classes]
        index = {c: k for k, c in enumerate(self.classes)}
        cleaner = BoxCleaner(f"VOC {self.root}")
        self.items: list[tuple[Path, np.ndarray, np.ndarray]] = []
        resized: list[str] = []  # xmls whose <size> is not their image's
        for xml, p in zip(xmls, parsed):
            image = self._image_path(img_dir, xml, p["filename"])
            h, w = image_size(image)  # the header of the real file, not the xml's <size>
            if p["size"] is not None and p["size"] != (h, w):
                resized.append(f"{xml.name} says {p['size'][0]}x{p['size'][1]}, {image.name} is {h}x{w}")
            boxes, labels = [], []
            for name, box, difficult in p["objects"]:
                if difficult and not keep_difficult:
                    continue
                if name not in index:
                    raise ValueError(
                        f"{xml}: class {name!r} is not in data.classes {self.classes}; "
                        "add it there or set data.classes to null to take the names from the files"
                    )
                boxes.append(box)
                labels.append(index[name])
            b, lab = cleaner(np.asarray(boxes, np.float32), np.asarray(labels, np.int64), h, w, str(xml))
            self.items.append((image, b, lab))
        if resized:
            warnings.warn(
                f"VOC {self.root}: {len(resized)} annotations give a <size> that is not their image's (first: "
                f"{resized[0]}, height x width); boxes are clipped to the real image size",
                stacklevel=2,
            )
        cleaner.warn()
        self.num_boxes = sum(len(labels) for _, _, labels in self.items)

    @staticmethod
    def _image_path(img_dir: Path, xml: Path, filename: str | None) -> Path:
        if filename and (img_dir / filename).is_file():
            return img_dir / filename
        for ext in IMAGE_EXTENSIONS:
            for cand in (img_dir / f"{xml.stem}{ext}", img_dir / f"{xml.stem}{ext.upper()}"):
                if cand.is_file():
                    return cand
        raise ValueError(
            f"{xml}: image {filename or xml.stem} not found in {img_dir}; restore the image or remove the annotation"
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, boxes, labels = self.items[index]
        image = read_image(path)
        return {"image": image, "bboxes": boxes.copy(), "labels": labels.copy(), "image_id": int(index)}
