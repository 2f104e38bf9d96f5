"""COCO json datasets (pycocotools): semantic masks, boxes and instance masks."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np

from augment.box_formats import coco_to_pascal_voc
from segdet._images import read_image
from segdet.data._io import mask_dtype


class CocoDataset:
    """Images of a COCO annotation file, with semantic masks and/or boxes and instance masks.

    Class indices: categories are sorted by their COCO id and numbered contiguously.
    Segmentation (``mask``): ``0`` = background, category ``i`` (0-based in that order) is
    class ``i + 1``; names in ``seg_classes`` = ``("background", *category_names)``. Detection
    (``labels``): category ``i`` is label ``i``; names in ``box_classes`` = ``category_names``.
    ``classes`` is ``seg_classes`` when ``with_mask`` is set, else ``box_classes``.
    ``cat_ids[i]`` is the COCO category id of detection label ``i`` (``label_to_cat_id`` /
    ``cat_id_to_label`` map both ways; COCO evaluation needs the original ids), and
    ``image_ids[index]`` the COCO image id of sample ``index``.

    Semantic masks rasterise polygons, uncompressed and compressed RLE with pycocotools. Crowd
    regions become ``ignore_index`` except where a non-crowd object covers them; non-crowd
    objects are painted largest first, so where annotations overlap the smaller object wins.
    With ``multilabel`` the ``mask`` is (H, W, K) instead, channel ``i`` the union of category
    ``i``'s non-crowd objects (0/1), so overlapping categories keep both; a crowd region of a
    category is ``ignore_index`` in that category's channel where no non-crowd object of it
    covers it; names in ``classes`` = ``category_names`` (no background).

    Boxes (``with_boxes``): COCO ``[x, y, w, h]`` -> pascal_voc ``[x, y, x + w, y + h]``; crowd
    annotations are left out; boxes reaching outside their image are clipped, boxes with zero
    or negative width/height (before or after clipping) are dropped. Both are counted in one
    warning at construction. Instance masks (``with_instance_masks``) follow the kept boxes
    one to one. Images without annotations are valid samples (empty mask / no boxes).

    Checked at construction: the json exists, parses and has ``images``, ``annotations`` and
    ``categories``; no image id is listed twice (pycocotools would merge the two images'
    annotations); every annotation's ``category_id`` and ``image_id`` exist; every image file
    exists in ``image_dir``; with ``with_mask``/``with_instance_masks`` every non-crowd
    annotation has a ``segmentation`` whose structure is valid (:func:`segmentation_problem`:
    polygons of numbers, an RLE of the image's size whose counts cover it); with boxes, every
    ``bbox`` is four numbers. Each failure is a ``ValueError`` naming the file, id and fix; a
    compressed RLE that does not decode fails when its sample is read, naming the same. Polygons
    of fewer than three points cover no pixel: they are skipped, counted in one warning.
    ``num_annotations`` is the length of the file's annotation list, ``num_boxes`` (with boxes)
    the number of boxes kept.

    Args:
        annotation_file: COCO instances json.
        image_dir: folder holding the ``file_name`` of every image.
        with_mask: return the semantic ``mask`` (H, W).
        with_boxes: return ``bboxes`` (N, 4) float32 and ``labels`` (N,) int64.
        with_instance_masks: return ``masks`` (N, H, W) uint8, one per box.
        ignore_index: value of crowd pixels in ``mask``.
        multilabel: ``mask`` is one 0/1 channel per category (see above).

    Example:
        >>> ds = CocoDataset("ann/instances_val.json", "images", with_mask=False,
        ...                  with_boxes=True)  # doctest: +SKIP
        >>> ds.cat_ids[int(ds[0]["labels"][0])]  # COCO category id  # doctest: +SKIP
    """

    def __init__(
        self,
        annotation_file: str | Path,
        image_dir: str | Path,
        *,
        with_mask: bool = True,
        with_boxes: bool = False,
        with_instance_masks: bool = False,
        ignore_index: int = 255,
        multilabel: bool = False,
    ) -> None:
        if not (with_mask or with_boxes or with_instance_masks):
            raise ValueError("CocoDataset needs at least one of with_mask, with_boxes, with_instance_masks")
        if multilabel and not with_mask:
            raise ValueError("CocoDataset(multilabel=True) describes the semantic mask; pass with_mask=True")
        self.multilabel = bool(multilabel)
        self.annotation_file = Path(annotation_file)
        self.image_dir = Path(image_dir)
        self.with_mask, self.with_boxes = bool(with_mask), bool(with_boxes)
        self.with_instance_masks = bool(with_instance_masks)
        self.ignore_index = int(ignore_index)

        data = _load_json(self.annotation_file)
        _check_unique_image_ids(data["images"], self.annotation_file)
        self.num_annotations = len(data["annotations"])
        self.coco = _make_coco(data)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.cat_ids: list[int] = [int(c["id"]) for c in cats]
        if len(set(self.cat_ids)) != len(self.cat_ids):
            raise ValueError(f"{self.annotation_file}: duplicate category ids in 'categories': {self.cat_ids}")
        self.category_names: tuple[str, ...] = tuple(str(c.get("name", c["id"])) for c in cats)
        self.cat_id_to_label = {cid: i for i, cid in enumerate(self.cat_ids)}
        self.label_to_cat_id = dict(enumerate(self.cat_ids))
        self.box_classes = self.category_names
        self.seg_classes = ("background", *self.category_names)
        self.classes = self.seg_classes if self.with_mask else self.box_classes
        if self.multilabel:
            self.classes = self.category_names
        self._dtype = mask_dtype(len(self.seg_classes), self.ignore_index)

        self._images = sorted(data["images"], key=lambda im: im["id"])
        self.image_ids: list[int] = [int(im["id"]) for im in self._images]
        self._anns = self._index_annotations(data)
        self._check_files()
        self._boxes = self._prepare_boxes() if (self.with_boxes or self.with_instance_masks) else None

    @property
    def names(self) -> list[str]:
        """The image file name of every sample, in index order (per-image reports name images by it)."""
        return [str(info["file_name"]) for info in self._images]

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        info = self._images[index]
        path = self.image_dir / info["file_name"]
        image = read_image(path)
        h, w = int(info["height"]), int(info["width"])
        if image.shape[:2] != (h, w):
            raise ValueError(
                f"image {path} is {image.shape[0]}x{image.shape[1]} but {self.annotation_file} "
                f"says {h}x{w} (image id {info['id']}); fix the json's height/width or the file"
            )
        anns = self._anns[info["id"]]
        sample: dict[str, np.ndarray] = {"image": image}
        if self.with_mask:
            sample["mask"] = self._multilabel_mask(anns, h, w) if self.multilabel else self._semantic_mask(anns, h, w)
        if self._boxes is not None:
            boxes, labels, kept = self._boxes[index]
            if self.with_boxes:
                sample["bboxes"], sample["labels"] = boxes.copy(), labels.copy()
            if self.with_instance_masks:
                sample["masks"] = np.zeros((len(kept), h, w), np.uint8)
                for j, ann in enumerate(kept):
                    sample["masks"][j] = self._raster(ann, h, w)
        return sample

    def _semantic_mask(self, anns: list[dict], h: int, w: int) -> np.ndarray:
        mask = np.zeros((h, w), self._dtype)
        painted = []
        for ann in anns:
            m = self._raster(ann, h, w).astype(bool)
            if ann.get("iscrowd", 0):
                mask[m] = self.ignore_index
            else:
                painted.append((m, self.cat_id_to_label[ann["category_id"]] + 1))
        painted.sort(key=lambda item: -int(item[0].sum()))  # stable: ties keep json order
        for m, cls in painted:
            mask[m] = cls
        return mask

    def _multilabel_mask(self, anns: list[dict], h: int, w: int) -> np.ndarray:
        k = len(self.category_names)
        present = np.zeros((h, w, k), bool)
        crowd = np.zeros((h, w, k), bool)
        for ann in anns:
            channel = self.cat_id_to_label[ann["category_id"]]
            m = self._raster(ann, h, w).astype(bool)
            target = crowd if ann.get("iscrowd", 0) else present
            target[:, :, channel] |= m
        mask = present.astype(self._dtype)
        mask[crowd & ~present] = self.ignore_index
        return mask

    def _raster(self, ann: dict, h: int, w: int) -> np.ndarray:
        """:func:`segmentation_to_mask` of one annotation; a failure names this file."""
        try:
            return segmentation_to_mask(ann["segmentation"], h, w, ann.get("id"))
        except ValueError as exc:
            raise ValueError(f"{self.annotation_file}: {exc}") from None

    def _index_annotations(self, data: dict) -> dict[int, list[dict]]:
        anns: dict[int, list[dict]] = {iid: [] for iid in self.image_ids}
        need_segm = self.with_mask or self.with_instance_masks
        sizes = {int(im["id"]): (int(im["height"]), int(im["width"])) for im in self._images}
        short: list = []  # annotations with a polygon of fewer than three points
        for ann in data["annotations"]:
            aid = ann.get("id", "?")
            cid = ann.get("category_id")
            if cid not in self.cat_id_to_label:
                raise ValueError(
                    f"{self.annotation_file}: annotation {aid} has category_id {cid!r}, which is "
                    f"not in 'categories' (ids {self.cat_ids}); add the category or remove the annotation"
                )
            if ann.get("image_id") not in anns:
                raise ValueError(
                    f"{self.annotation_file}: annotation {aid} refers to image_id "
                    f"{ann.get('image_id')!r}, which is not in 'images'; add the image or remove the annotation"
                )
            segm = ann.get("segmentation")
            if need_segm and not segm and (not ann.get("iscrowd", 0) or self.with_mask):
                fix = (
                    "a box-only detector (model.arch fasterrcnn_..., no CopyPaste)"
                    if not self.with_mask
                    else "a detection task (with_mask=False)"
                )
                why = "for the mask head (Mask R-CNN) or CopyPaste" if not self.with_mask else "for the semantic mask"
                raise ValueError(
                    f"{self.annotation_file}: annotation {aid} has no 'segmentation' (boxes only?), "
                    f"so no mask can be drawn {why}; use {fix} or add polygons/RLE"
                )
            if need_segm and segm:
                problem = segmentation_problem(segm, *sizes[int(ann["image_id"])])
                if problem:
                    raise ValueError(f"{self.annotation_file}: annotation {aid}: {problem}")
                if isinstance(segm, list) and any(len(p) < 6 for p in segm):
                    short.append(aid)
            anns[ann["image_id"]].append(ann)
        if short:
            warnings.warn(
                f"{self.annotation_file}: {len(short)} annotations have polygons of fewer than three points, "
                f"which cover no pixel and were skipped (annotation ids {_ids(short)})",
                stacklevel=3,
            )
        self.num_short_polygons = len(short)
        return anns

    def _check_files(self) -> None:
        if not self.image_dir.is_dir():
            raise ValueError(f"image folder {self.image_dir} (for {self.annotation_file}) does not exist; fix the path")
        missing = [im["file_name"] for im in self._images if not (self.image_dir / im["file_name"]).is_file()]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ValueError(
                f"image file {self.image_dir / missing[0]}{more} listed in {self.annotation_file} "
                f"does not exist; fix the image folder path or the json's file_name entries"
            )

    def _prepare_boxes(self) -> list[tuple[np.ndarray, np.ndarray, list[dict]]]:
        out = []
        clipped: list = []
        dropped: list = []
        for info in self._images:
            h, w = float(info["height"]), float(info["width"])
            boxes, labels, kept = [], [], []
            for ann in self._anns[info["id"]]:
                if ann.get("iscrowd", 0):
                    continue
                bbox = ann.get("bbox")
                if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
                    raise ValueError(
                        f"{self.annotation_file}: annotation {ann.get('id')} (image {info['id']}) has bbox {bbox!r}; "
                        f"expected four numbers [x, y, width, height] in pixels"
                    )
                bw, bh = float(bbox[2]), float(bbox[3])
                x1, y1, x2, y2 = (float(v) for v in coco_to_pascal_voc([bbox])[0])
                if not (bw > 0 and bh > 0):
                    dropped.append(ann.get("id"))
                    continue
                cx1, cy1, cx2, cy2 = min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)
                if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
                    clipped.append(ann.get("id"))
                if not (cx2 > cx1 and cy2 > cy1):
                    dropped.append(ann.get("id"))
                    continue
                boxes.append((cx1, cy1, cx2, cy2))
                labels.append(self.cat_id_to_label[ann["category_id"]])
                kept.append(ann)
            out.append((np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64), kept))
        self.num_boxes = sum(len(labels) for _, labels, _ in out)
        if clipped or dropped:
            parts = []
            if clipped:
                parts.append(
                    f"{len(clipped)} boxes partly outside their image were clipped (annotation ids {_ids(clipped)})"
                )
            if dropped:
                parts.append(
                    f"{len(dropped)} zero-area or inverted boxes were dropped (annotation ids {_ids(dropped)})"
                )
            warnings.warn(f"{self.annotation_file}: " + "; ".join(parts), stacklevel=3)
        self.num_clipped_boxes, self.num_dropped_boxes = len(clipped), len(dropped)
        return out


def segmentation_to_mask(segm, height: int, width: int, ann_id=None) -> np.ndarray:
    """Rasterise a COCO ``segmentation`` (polygons, uncompressed or compressed RLE).

    Returns:
        (height, width) uint8 array of 0/1, the same as pycocotools' ``COCO.annToMask``.
        Polygons with fewer than three points are skipped.
    """
    from pycocotools import mask as mask_utils

    problem = segmentation_problem(segm, height, width)
    if problem:
        raise ValueError(f"annotation {ann_id}: {problem}")
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    else:
        rle = mask_utils.frPyObjects(segm, height, width) if isinstance(segm["counts"], list) else segm
    try:
        return mask_utils.decode(rle).astype(np.uint8)
    except (ValueError, TypeError, OverflowError) as exc:  # a compressed counts string that does not decode
        raise ValueError(
            f"annotation {ann_id}: invalid RLE ({exc}); the compressed counts string does not decode to a "
            f"{height}x{width} mask: re-encode it with pycocotools.mask.encode"
        ) from None


def segmentation_problem(segm, height: int, width: int) -> str | None:
    """What is wrong with a COCO ``segmentation`` for an image of ``height`` x ``width``, or ``None``.

    Cheap structural checks, no decoding: polygons are lists of numbers; an RLE has ``size``
    ``[height, width]`` and ``counts`` that are a string (compressed) or non-negative integers
    summing to ``height * width`` (uncompressed).
    """
    if isinstance(segm, list):
        for part in segm:
            if not isinstance(part, (list, tuple)) or not all(_is_number(v) for v in part):
                return f"polygon {part!r} is not a list of numbers [x1, y1, x2, y2, ...]"
        return None
    if not (isinstance(segm, dict) and "counts" in segm and "size" in segm):
        return f"'segmentation' must be polygons or RLE ({{size, counts}}), got {type(segm).__name__}"
    if not isinstance(segm["size"], (list, tuple)) or list(segm["size"]) != [height, width]:
        return (
            f"RLE size {segm['size']} differs from its image's [height, width] = {[height, width]}; fix the annotation"
        )
    counts = segm["counts"]
    if isinstance(counts, (str, bytes)):
        return None
    if not isinstance(counts, list) or not all(_is_number(c) and c >= 0 and c == int(c) for c in counts):
        return (
            f"invalid RLE: counts must be a compressed string or a list of non-negative integers, got "
            f"{str(counts)[:60]}"
        )
    if sum(counts) != height * width:
        return (
            f"invalid RLE: the counts sum to {sum(counts)} pixels but the image has {height}x{width} = "
            f"{height * width}; fix the annotation"
        )
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_unique_image_ids(images: list[dict], path: Path) -> None:
    """Stop on an image id listed twice: pycocotools would merge the two images' annotations."""
    seen: dict = {}
    for im in images:
        if im["id"] in seen:
            raise ValueError(
                f"{path}: image id {im['id']} is listed twice in 'images' ({seen[im['id']]!r} and "
                f"{im['file_name']!r}); give every image its own id (annotations find their image by it)"
            )
        seen[im["id"]] = im["file_name"]


def _ids(ids: list, limit: int = 8) -> str:
    return ", ".join(map(str, ids[:limit])) + (" ..." if len(ids) > limit else "")


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"COCO annotation file {path} does not exist; fix the path")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"cannot read COCO annotation file {path}: {exc}; it must be valid COCO json") from exc
    if not isinstance(data, dict):
        raise ValueError(f"COCO annotation file {path} must hold a json object, got {type(data).__name__}")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(f"COCO annotation file {path} lacks the list(s) {missing}; it is not a COCO instances file")
    for im in data["images"]:
        if not all(k in im for k in ("id", "file_name", "height", "width")):
            raise ValueError(f"{path}: image entry {im!r} needs id, file_name, height and width")
    for cat in data["categories"]:
        if "id" not in cat:
            raise ValueError(f"{path}: category entry {cat!r} has no id")
    return data


def _make_coco(data: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
