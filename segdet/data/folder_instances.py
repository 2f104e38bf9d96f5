"""Instance data from a folder: ``images/`` and ``instances/`` instance-id PNGs, matched by file stem.

An instance PNG holds one integer id per pixel: 0 is the background, every other value one
object (the DSB 2018 ``instances/`` layout, Cellpose and StarDist label images). The ids need
not be contiguous. Without a class map every object is of one class; with one, a json file
names the class of each id per image, as StarDist's multi-class data does::

    {"0007": {"1": 0, "2": 1, "5": 0}, "0008": {"1": 1}}

(file stem -> instance id -> 0-based class index into ``data.classes``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdet._images import read_image
from segdet.data.folder import check_sizes, pair_files

__all__ = ["FolderInstances", "instance_boxes", "read_instance_ids"]

#: the PIL modes of one integer per pixel
_INTEGER_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")


def read_instance_ids(path: Path) -> np.ndarray:
    """Decode an instance-id PNG to (H, W) non-negative integers, exactly as stored.

    Raises:
        ValueError: unreadable file, a colour (RGB) or float image, or negative ids; the message
            names the file and the fix.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            _check_mode(path, im.mode)
            im.load()
            arr = np.asarray(im)
    except ValueError:
        raise
    except Exception as exc:  # Pillow raises several types for broken files
        raise ValueError(
            f"cannot read instance PNG {path}: {exc}; re-export it as a single-channel uint16 PNG"
        ) from exc
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(
            f"instance PNG {path} holds negative ids (down to {arr.min()}); ids are 0 (background) and 1..N, "
            "one per object: save them as a uint16 PNG"
        )
    return arr


def _check_mode(path: Path, mode: str) -> None:
    """Stop on a PIL mode that is not one integer per pixel (read from the header, no pixel decoded)."""
    if mode in _INTEGER_MODES:
        return
    if mode.startswith("F"):
        raise ValueError(
            f"instance PNG {path} holds floating-point values (mode {mode}), not integer instance ids; save the ids "
            "as integers, e.g. PIL.Image.fromarray(np.rint(ids).astype(np.uint16)).save(path) "
            "(0 background, 1..N one per object)"
        )
    raise ValueError(
        f"instance PNG {path} is a {mode} (colour) image, not one integer instance id per pixel; convert it to a "
        "single-channel uint16 PNG holding 0 for the background and one id per object (a colour-coded map: give "
        "each distinct colour its own id, e.g. np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True))"
    )


def instance_boxes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The instance ids of an id map and the tight pascal_voc box of each.

    Written with numpy rather than building one (H, W) mask per id: one pass over the object
    pixels. An object covering columns ``c0..c1`` and rows ``r0..r1`` gets
    ``(c0, r0, c1 + 1, r1 + 1)``, the box :func:`~segdet.data.synthetic.boxes_from_masks` and
    COCO's tight ``bbox`` give.

    Args:
        ids: (H, W) integer ids, 0 the background.

    Returns:
        ``(ids (K,) int64 sorted, boxes (K, 4) float32)``.
    """
    rows, cols = np.nonzero(ids)
    values = ids[rows, cols]
    found, which = np.unique(values, return_inverse=True)
    k = len(found)
    boxes = np.zeros((k, 4), np.float32)
    if k:
        for axis, lo, hi in ((cols, 0, 2), (rows, 1, 3)):
            low = np.full(k, np.iinfo(np.int64).max, np.int64)
            high = np.full(k, -1, np.int64)
            np.minimum.at(low, which, axis)
            np.maximum.at(high, which, axis)
            boxes[:, lo], boxes[:, hi] = low, high + 1
    return found.astype(np.int64), boxes


class FolderInstances:
    """Images and instance-id PNGs from ``root/images`` and ``root/instances``, paired by stem.

    Each object (each id other than 0) becomes one box (the tight box of its pixels), one label
    and, with ``with_masks``, one (H, W) uint8 instance mask. Labels: without ``class_map``,
    every object is class 0 (one-class data, e.g. nuclei); with it, the class the map gives
    that id in that image (see the module docstring).

    Checked at construction, before any training: both folders exist and pair by stem (a
    ``split`` file selects stems, as for :class:`~segdet.data.folder.FolderSegmentation`); each
    instance PNG has its image's size; every instance PNG is read once: it must hold integer ids
    (a float or colour PNG stops, naming the file and the fix) and, with a class map, every id
    it holds must have a class there. Every failure is a ``ValueError`` naming the file.

    Args:
        root: folder holding ``images/`` and ``instances/``.
        split: a text file of stems selecting the pairs; ``None``: every pair.
        classes: class names, 0-based. ``None``: ``("object",)`` without a class map,
            ``class_0 .. class_{K-1}`` (K from the largest class in the map) with one.
        class_map: json file ``{stem: {instance id: class index}}``, or ``None`` for one class.
        with_masks: return ``masks`` (K, H, W) uint8, one per box.
        split_key: how the error messages name the split file's config key.

    Sample keys: ``image`` (H, W, 3) uint8, ``bboxes`` (K, 4) float32 pascal_voc pixels,
    ``labels`` (K,) int64, ``masks`` (K, H, W) uint8 (with ``with_masks``), ``image_id``
    (the sample's index). ``num_boxes`` counts the objects of the whole folder.

    Example:
        >>> ds = FolderInstances("dsb2018/train", classes=["nucleus"])  # doctest: +SKIP
        >>> ds[0]["masks"].shape[0] == len(ds[0]["bboxes"])  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | Path | None = None,
        classes: Sequence[str] | None = None,
        class_map: str | Path | None = None,
        with_masks: bool = True,
        split_key: str = "data.folder.train_split",
    ) -> None:
        self.root = Path(root)
        self.with_masks = bool(with_masks)
        self.images, self.instances = pair_files(self.root, split, split_key, mask_folder="instances")
        check_sizes(self.images, self.instances)
        self.class_map_file = Path(class_map) if class_map is not None else None
        table = _read_class_map(self.class_map_file) if self.class_map_file is not None else None
        self.classes = _class_names(classes, table, self.root, self.class_map_file)
        self._items: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]] = []
        for path in self.instances:
            ids = read_instance_ids(path)
            found, boxes = instance_boxes(ids)
            labels = self._labels_of(path, found, table)
            self._items.append((found, boxes, labels, ids.shape[:2]))
        self.num_boxes = sum(len(item[0]) for item in self._items)

    @property
    def names(self) -> list[str]:
        """The image file name of every sample, in index order."""
        return [path.name for path in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        found, boxes, labels, _ = self._items[index]
        image = read_image(self.images[index])
        sample: dict[str, Any] = {
            "image": image,
            "bboxes": boxes.copy(),
            "labels": labels.copy(),
            "image_id": int(index),
        }
        if self.with_masks:
            ids = read_instance_ids(self.instances[index])
            sample["masks"] = (ids[None] == found[:, None, None]).astype(np.uint8)
        return sample

    def box_table(self) -> list[tuple[tuple[int, int], np.ndarray]]:
        """``((height, width), boxes (K, 4))`` of every image, without reading a pixel again."""
        return [(size, boxes) for _, boxes, _, size in self._items]

    def _labels_of(self, path: Path, found: np.ndarray, table: Mapping[str, Mapping[int, int]] | None) -> np.ndarray:
        if table is None:
            return np.zeros(len(found), np.int64)
        own = table.get(path.stem, {})
        missing = [int(i) for i in found if int(i) not in own]
        if missing:
            shown = ", ".join(map(str, missing[:8])) + (" ..." if len(missing) > 8 else "")
            raise ValueError(
                f"instance PNG {path} holds ids [{shown}] that {self.class_map_file} gives no class "
                f'(it needs "{path.stem}": {{"{missing[0]}": <class index>, ...}}); add them, or set '
                "data.folder.class_map: null for one-class data"
            )
        labels = np.asarray([own[int(i)] for i in found], np.int64)
        if len(labels) and labels.max() >= len(self.classes):
            bad = int(found[int(np.argmax(labels))])
            raise ValueError(
                f"{self.class_map_file} gives instance {bad} of {path.stem} the class {int(labels.max())}, but "
                f"there are {len(self.classes)} classes {list(self.classes)}; list more names in data.classes"
            )
        return labels


def _read_class_map(path: Path) -> dict[str, dict[int, int]]:
    """The ``{stem: {id: class}}`` json of ``data.folder.class_map``, with ids and classes as ints."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"data.folder.class_map {path} does not exist; write a json {{stem: {{instance id: class index}}}} "
            "or set data.folder.class_map: null for one-class data"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot read data.folder.class_map {path}: {exc}; write it as a json object") from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"data.folder.class_map {path} holds a {type(raw).__name__}; expected an object "
            '{stem: {instance id: class index}}, e.g. {"0007": {"1": 0, "2": 1}}'
        )
    table: dict[str, dict[int, int]] = {}
    for stem, ids in raw.items():
        if not isinstance(ids, dict):
            raise ValueError(
                f"data.folder.class_map {path}: the entry of {stem!r} is {ids!r}; expected an object "
                '{instance id: class index}, e.g. {"1": 0, "2": 1}'
            )
        own = {}
        for key, cls in ids.items():
            try:
                i = int(key)
            except ValueError:
                i = -1
            if i < 1 or isinstance(cls, bool) or not isinstance(cls, int) or cls < 0:
                raise ValueError(
                    f"data.folder.class_map {path}: {stem!r} maps {key!r} to {cls!r}; each entry maps an instance "
                    "id >= 1 (0 is the background) to a class index >= 0"
                )
            own[i] = cls
        table[str(stem)] = own
    return table


def _class_names(
    classes: Sequence[str] | None, table: Mapping[str, Mapping[int, int]] | None, root: Path, map_file: Path | None
) -> tuple[str, ...]:
    if table is None:
        if classes is None:
            return ("object",)
        if len(classes) != 1:
            raise ValueError(
                f"data.classes lists {len(classes)} names {list(classes)} but the instance folder {root} has one "
                "class without data.folder.class_map; name the class of each instance in a class map json "
                "{stem: {instance id: class index}}, or list one name"
            )
        return (str(classes[0]),)
    if classes is not None:
        return tuple(str(c) for c in classes)
    top = max((c for own in table.values() for c in own.values()), default=0)
    return tuple(f"class_{i}" for i in range(top + 1))
