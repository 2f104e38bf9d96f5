"""Segmentation data from a folder: ``images/`` and ``masks/`` matched by file stem.

:func:`pair_files` and :func:`check_sizes` are the checks the source runs before any training;
``segdet init`` calls the same two, so both commands report a bad folder in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from segdet._images import IMAGE_EXTENSIONS, image_size, read_image
from segdet.data._io import files_by_stem, mask_dtype, read_mask

#: with ``scan_masks=None`` the mask values are checked up front for datasets up to this size
AUTO_SCAN_LIMIT = 1000
#: masks read at construction, evenly spaced, to tell a 0/255 binary folder when the values are not all scanned
IGNORE_PROBE_MASKS = 64


class FolderSegmentation:
    """Images and class-index masks from ``root/images`` and ``root/masks``, paired by stem.

    ``images/0007.jpg`` pairs with ``masks/0007.png``; any of .png .jpg .jpeg .bmp .tif .tiff
    .webp (any case) is accepted on either side. Masks hold one value per pixel; with
    ``mask_values`` each stored value is mapped to a class (values not in the mapping are kept
    as they are), e.g. ``{0: 0, 255: 1}`` for 0/255 binary masks. After mapping every value must
    be a class index ``0..len(classes)-1`` or ``ignore_index``.

    Checked at construction, before any training: both folders exist; every image has a mask
    and every mask an image; every mask has its image's size (read from the file headers, so
    this is cheap); duplicate stems. Mask values are checked up front too when ``scan_masks``
    is true, or when it is ``None`` (default) and the dataset has at most ``AUTO_SCAN_LIMIT``
    (1000) pairs, or when ``classes`` must be inferred from the masks; otherwise each mask is
    checked when it is loaded. Every failure is a ``ValueError`` naming the file and the fix.

    Masks whose only values are 0 and ``ignore_index`` (0/255 binary masks with the default
    255) would train the background alone: every object pixel would be ignored. Unless
    ``mask_values`` names that value (``{255: 255}`` keeps it ignored on purpose), such a folder
    stops with the mapping to use, e.g. ``{0: 0, 255: 1}``. The decision reads the values of
    every scanned mask, or of ``IGNORE_PROBE_MASKS`` (64) evenly spaced ones when the values
    are not scanned up front. ``ignore_index`` next to other class values (VOC's 255 borders
    around classes 1..20) is the usual unlabelled border and passes. ``refuse_ignore_only=False``
    skips this check (the validation split of a training split that passed it).

    In ``binary`` mode there are two classes (``("background", "foreground")`` unless
    ``classes`` names them): after mapping a mask may hold only 0, 1 and ``ignore_index``, and a
    mask holding anything else stops with the values it holds (the same check, so no extra
    read). Multilabel masks (one file per class) are read by
    :class:`~segdet.data.folder_multilabel.FolderMultilabel`.

    With ``split``, only the stems listed in that text file (one per line) are used, and only
    they must be paired; the other files of the folder are left out.

    Args:
        root: folder holding ``images/`` and ``masks/``.
        split: a text file of stems selecting the pairs of ``root`` (blank lines and lines
            starting with ``#`` skipped); ``None``: every pair.
        classes: class names, index 0 first. ``None``: ``class_0 .. class_{K-1}``, with K from
            the largest value of ``mask_values`` (or, without a mapping, read from the masks,
            which must then hold the contiguous values ``0..K-1``); binary: background and
            foreground.
        mask_values: mapping stored value -> class index (or ``ignore_index``).
        ignore_index: value of unlabeled pixels (excluded from losses and metrics).
        scan_masks: check every mask's values at construction (see above).
        config_key: how the error messages name the mapping's config key.
        mode: ``"multiclass"`` or ``"binary"`` (``data.mode``).
        split_key: how the error messages name the split file's config key.
        refuse_ignore_only: stop on masks holding only 0 and ``ignore_index`` (see above).

    Sample keys: ``image`` (H, W, 3) uint8 RGB and ``mask`` (H, W) uint8 (int32 when the
    classes or ``ignore_index`` do not fit in uint8); ``bboxes`` (0, 4) float32 and
    ``labels`` (0,) int64 are present and empty so box-aware pipelines apply unchanged.

    Example:
        >>> ds = FolderSegmentation("data/train", classes=["background", "road"],
        ...                         mask_values={0: 0, 255: 1})  # doctest: +SKIP
        >>> ds[0]["mask"].max() <= 1  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | Path | None = None,
        classes: Sequence[str] | None = None,
        mask_values: Mapping[int, int] | None = None,
        ignore_index: int = 255,
        scan_masks: bool | None = None,
        config_key: str = "data.folder.mask_values",
        mode: str = "multiclass",
        split_key: str = "data.folder.train_split",
        refuse_ignore_only: bool = True,
    ) -> None:
        if mode not in ("multiclass", "binary"):
            raise ValueError(
                f"FolderSegmentation reads one class-index mask per image (data.mode multiclass or binary), "
                f"got mode={mode!r}; multilabel folders (masks/<class>/<stem>.png) are read by FolderMultilabel"
            )
        self.mode = mode
        self.root = Path(root)
        self.ignore_index = _check_int(ignore_index, "ignore_index")
        self.config_key = config_key
        self.mask_values = _check_mapping(mask_values, config_key)
        self.images, self.masks = pair_files(self.root, split, split_key)
        check_sizes(self.images, self.masks)

        if classes is not None:
            if isinstance(classes, str) or not all(isinstance(c, str) for c in classes) or not classes:
                raise TypeError(f"classes must be a non-empty list of names, got {classes!r}")
            self.classes = tuple(classes)
        elif mode == "binary":
            self.classes = ("background", "foreground")
        elif self.mask_values:
            targets = [v for v in self.mask_values.values() if v != self.ignore_index]
            self.classes = tuple(f"class_{i}" for i in range(max(targets, default=0) + 1))
        else:
            seen = self._values_of(self.masks)
            if refuse_ignore_only:
                self._refuse_ignore_only(seen)
            self.classes = self._classes_from_masks(seen)
            scan_masks = False  # just read every mask
            refuse_ignore_only = False
        self.num_classes = len(self.classes)
        self._dtype = mask_dtype(self.num_classes, self.ignore_index)
        if scan_masks or (scan_masks is None and len(self.images) <= AUTO_SCAN_LIMIT):
            seen = set()
            for path in self.masks:
                self._map_and_check(read_mask(path), path, seen)
        elif refuse_ignore_only:
            seen = self._values_of(self.masks[:: max(1, len(self.masks) // IGNORE_PROBE_MASKS)])
        if refuse_ignore_only:
            self._refuse_ignore_only(seen)

    @property
    def names(self) -> list[str]:
        """The image file name of every sample, in index order (per-image reports name images by it)."""
        return [Path(path).name for path in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image = read_image(self.images[index])
        mask = self._map_and_check(read_mask(self.masks[index]), self.masks[index])
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"mask {self.masks[index]} is {mask.shape[0]}x{mask.shape[1]} but image "
                f"{self.images[index]} is {image.shape[0]}x{image.shape[1]}; resize the mask "
                f"with nearest-neighbour interpolation to the image size"
            )
        return {
            "image": image,
            "mask": mask,
            "bboxes": np.zeros((0, 4), np.float32),
            "labels": np.zeros((0,), np.int64),
        }

    def _map_and_check(self, raw: np.ndarray, path: Path, seen: set[int] | None = None) -> np.ndarray:
        values = _stored_values(raw)
        if seen is not None:  # the stored values, for the 0/ignore_index check of the constructor
            seen.update(values.tolist())
        lut_size = int(max(values.max(initial=0), max(self.mask_values, default=0))) + 1
        if values.min(initial=0) < 0 or lut_size > 1 << 20:
            raise ValueError(
                f"mask {path} holds values from {values.min()} to {values.max()}; masks must hold "
                f"small non-negative class indices (map them with {self.config_key})"
            )
        lut = np.arange(lut_size, dtype=np.int64)
        for stored, cls in self.mask_values.items():
            lut[stored] = cls
        mapped = lut[values]
        bad = (mapped >= self.num_classes) & (mapped != self.ignore_index)
        if bad.any() and self.mode == "binary":
            found = sorted(set(mapped.tolist()) - {self.ignore_index})
            shown = ", ".join(map(str, found[:10])) + (" ..." if len(found) > 10 else "")
            mapped_note = "" if not self.mask_values else f" after {self.config_key}"
            raise ValueError(
                f"data.mode is binary but {path} holds values [{shown}]{mapped_note}; map them to 0 and 1 "
                f"with {self.config_key} (e.g. {{0: 0, 255: 1}}) or use data.mode: multiclass"
            )
        if bad.any():
            raw_bad = values[bad].tolist()
            shown = ", ".join(map(str, raw_bad[:10])) + (" ..." if len(raw_bad) > 10 else "")
            mapped_note = "" if not self.mask_values else f" (after {self.config_key})"
            hint = " (a JPEG mask is lossy: save masks as PNG)" if path.suffix.lower() in (".jpg", ".jpeg") else ""
            example = ", ".join(f"{v}: {min(i + 1, self.num_classes - 1)}" for i, v in enumerate(raw_bad[:2]))
            raise ValueError(
                f"mask {path} has values [{shown}] that are neither a class index "
                f"0..{self.num_classes - 1}{mapped_note} nor ignore_index {self.ignore_index}{hint}; "
                f"map them with {self.config_key} (e.g. {{{example}}}), list more names in "
                f"data.classes, or set data.ignore_index"
            )
        return lut.astype(self._dtype)[raw]

    @staticmethod
    def _values_of(paths: Sequence[Path]) -> set[int]:
        """Every value stored in the mask files ``paths``."""
        seen: set[int] = set()
        for path in paths:
            seen.update(_stored_values(read_mask(path)).tolist())
        return seen

    def _refuse_ignore_only(self, stored: set[int]) -> None:
        """Stop when ``ignore_index`` is the only value besides 0 and no mapping names it (see the class docstring)."""
        ignore = self.ignore_index
        if ignore not in stored or ignore in self.mask_values:
            return
        labelled = {self.mask_values.get(v, v) for v in stored} - {ignore}
        if not labelled <= {0}:
            return
        mapping = ", ".join(f"{k}: {v}" for k, v in {**self.mask_values, 0: 0, ignore: 1}.items())
        raise ValueError(
            f"the masks in {self.root / 'masks'} hold only 0 and {ignore}, and {ignore} is data.ignore_index: "
            f"every object pixel would be ignored and only the background trained; map the values with "
            f"{self.config_key}={{{mapping}}} (binary masks), or, if {ignore} really marks unlabelled pixels, "
            f"say so with {self.config_key}={{{ignore}: {ignore}}}"
        )

    def _classes_from_masks(self, stored: set[int]) -> tuple[str, ...]:
        seen = set(stored)
        seen.discard(self.ignore_index)
        count = max(seen, default=0) + 1
        if seen != set(range(count)):
            shown = sorted(seen)[:10]
            raise ValueError(
                f"masks in {self.root / 'masks'} hold the values {shown}, which are not the class "
                f"indices 0..K-1; set {self.config_key} (e.g. {{{shown[0]}: 0, {shown[-1]}: 1}}) "
                f"and data.classes"
            )
        return tuple(f"class_{i}" for i in range(count))


def _stored_values(raw: np.ndarray) -> np.ndarray:
    """The distinct values of a mask, sorted, as int64."""
    if raw.dtype == np.uint8:  # bincount is much faster than unique for 8-bit masks
        return np.flatnonzero(np.bincount(raw.ravel(), minlength=256)).astype(np.int64)
    return np.unique(raw).astype(np.int64)


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def _check_mapping(mask_values, key: str) -> dict[int, int]:
    if mask_values is None:
        return {}
    if not isinstance(mask_values, Mapping):
        raise TypeError(f"{key} must be a mapping of stored mask value -> class, got {mask_values!r}")
    out = {}
    for stored, cls in mask_values.items():
        try:
            s, c = int(stored), int(cls)
        except (TypeError, ValueError):
            raise TypeError(f"{key} entry {stored!r}: {cls!r} must map an int to an int") from None
        if s < 0 or c < 0 or s != float(stored) or c != float(cls):
            raise ValueError(f"{key} entry {stored!r}: {cls!r} must map a non-negative int to a non-negative int")
        out[s] = c
    return out


def read_split(path: str | Path, key: str) -> list[str]:
    """The stems listed in a split file, one per line, in file order.

    Blank lines and lines starting with ``#`` are skipped; surrounding spaces are stripped.

    Raises:
        ValueError: the file is missing or unreadable, names no stem, or names one twice; the
            message names the file, the line and the config key.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(
            f"{key} file {path} does not exist; write one file stem per line, or set {key}: null"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {key} file {path}: {exc}; write it as UTF-8 text, one stem per line") from None
    stems: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        stem = line.strip()
        if not stem or stem.startswith("#"):
            continue
        if stem in stems:
            raise ValueError(
                f"{key} file {path} lists {stem!r} twice (lines {stems[stem]} and {number}); keep one line per stem"
            )
        stems[stem] = number
    if not stems:
        raise ValueError(f"{key} file {path} names no stem; write one file stem per line (0001 for images/0001.png)")
    return list(stems)


def pair_files(
    root: str | Path,
    split: str | Path | None = None,
    split_key: str = "data.folder.train_split",
    mask_folder: str = "masks",
) -> tuple[list[Path], list[Path]]:
    """The (image, mask) paths of ``root/images`` and ``root/masks``, paired by stem, sorted by stem.

    Args:
        root: folder holding ``images/`` and ``masks/``.
        split: a text file of stems (:func:`read_split`) selecting the pairs; ``None``: every file.
        split_key: the config key of ``split``, for the error messages.
        mask_folder: the name of the mask folder beside ``images/`` (``instances`` for instance-id PNGs).

    Raises:
        ValueError: a folder is missing, holds no image, two files share a stem, an image has no
            mask or a mask no image, or the split names a stem the folder lacks; the message
            names the file or folder and the fix.
    """
    root = Path(root)
    image_dir, mask_dir = root / "images", root / mask_folder
    for d in (root, image_dir, mask_dir):
        if not d.is_dir():
            raise ValueError(
                f"folder dataset directory {d} does not exist; a folder dataset needs {root}/images and "
                f"{root}/{mask_folder} with files matched by stem (images/0001.jpg <-> {mask_folder}/0001.png)"
            )
    images = files_by_stem(image_dir, "images")
    masks = files_by_stem(mask_dir, mask_folder)
    if not images:
        raise ValueError(f"no image files in {image_dir} (looked for {', '.join(IMAGE_EXTENSIONS)})")
    if split is not None:
        wanted = read_split(split, split_key)
        missing = [s for s in wanted if s not in images]
        if missing:
            raise ValueError(
                f"{split_key} file {split} names {missing[0]!r}, which has no image in {image_dir}"
                + (f" (and {len(missing) - 1} more stems)" if len(missing) > 1 else "")
                + "; list file stems without the extension, or remove those lines"
            )
        images = {s: images[s] for s in wanted}
        masks = {s: masks[s] for s in wanted if s in masks}
    no_mask = sorted(set(images) - set(masks))
    if no_mask:
        raise ValueError(
            f"image {images[no_mask[0]]} has no mask in {mask_dir} (expected {mask_dir / no_mask[0]}.png)"
            + (f" and {len(no_mask) - 1} more images lack masks" if len(no_mask) > 1 else "")
            + "; add the masks or move those images out"
        )
    no_image = sorted(set(masks) - set(images))
    if no_image:
        raise ValueError(
            f"mask {masks[no_image[0]]} has no image in {image_dir}"
            + (f" and {len(no_image) - 1} more masks lack images" if len(no_image) > 1 else "")
            + "; add the images or move those masks out"
        )
    stems = sorted(images)
    return [images[s] for s in stems], [masks[s] for s in stems]


def check_sizes(images: list[Path], masks: list[Path]) -> None:
    """Check that every mask has its image's (height, width), read from the file headers.

    Raises:
        ValueError: a pair differs in size, or a header cannot be read; the message names both files.
    """
    for image, mask in zip(images, masks):
        ih, iw = image_size(image)
        mh, mw = image_size(mask)
        if (ih, iw) != (mh, mw):
            raise ValueError(
                f"mask {mask} is {mh}x{mw} but image {image} is {ih}x{iw} (height x width); "
                f"resize the mask with nearest-neighbour interpolation to the image size"
            )
