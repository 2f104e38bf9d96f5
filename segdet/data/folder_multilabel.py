"""Multilabel segmentation data from a folder: ``images/`` and one mask folder per class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segdet._images import IMAGE_EXTENSIONS, image_size, read_image
from segdet.data._io import files_by_stem, mask_dtype, read_mask


class FolderMultilabel:
    """Images from ``root/images`` and, per class, a mask in ``root/masks/<class>/`` of the same stem.

    ``images/0007.jpg`` pairs with ``masks/<class>/0007.png`` for every class; a mask pixel that
    is nonzero means the class is present there (0/1 and 0/255 masks both work), so classes may
    overlap and none is the background. ``data.folder.mask_values`` does not apply (there is no
    value to map: every nonzero value means present), and the files hold no unlabelled value:
    ``ignore_index`` appears only where segdet adds it (batch padding, empty Mosaic canvas).

    Checked at construction, from the file names and headers only (no mask is decoded): both
    folders exist; each class has its folder; every image has a mask in every class folder and
    every mask an image; every mask has its image's size. Each failure is a ``ValueError``
    naming the folder or file and the fix.

    Args:
        root: folder holding ``images/`` and ``masks/<class>/``.
        classes: class names, one folder each, in channel order. ``None``: the sub-folders of
            ``masks/``, sorted by name.
        ignore_index: value of unlabelled pixels; it sets the mask dtype (uint8 when it fits).

    Sample keys: ``image`` (H, W, 3) uint8 RGB; ``mask`` (H, W, K) uint8 of 0/1, channel ``k``
    for ``classes[k]`` (int32 when ``ignore_index`` does not fit in uint8); ``bboxes`` (0, 4)
    float32 and ``labels`` (0,) int64, empty, so box-aware pipelines apply unchanged.

    Example:
        >>> ds = FolderMultilabel("data/train", classes=["nucleus", "membrane"])  # doctest: +SKIP
        >>> ds[0]["mask"].shape  # doctest: +SKIP
        (256, 256, 2)
    """

    def __init__(self, root: str | Path, *, classes: Sequence[str] | None = None, ignore_index: int = 255) -> None:
        self.root = Path(root)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        image_dir, mask_dir = self.root / "images", self.root / "masks"
        for d in (self.root, image_dir, mask_dir):
            if not d.is_dir():
                raise ValueError(
                    f"folder dataset directory {d} does not exist; a multilabel folder dataset needs "
                    f"{self.root}/images and one folder per class in {self.root}/masks "
                    "(images/0001.jpg <-> masks/<class>/0001.png)"
                )
        if classes is None:
            classes = sorted(p.name for p in mask_dir.iterdir() if p.is_dir())
            if not classes:
                raise ValueError(
                    f"{mask_dir} has no class folders; data.mode multilabel reads masks/<class>/<stem>.png, "
                    "one folder per class (nonzero pixels = class present)"
                )
        elif isinstance(classes, str) or not classes or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"classes must be a non-empty list of names, got {classes!r}")
        self.classes = tuple(classes)
        self.num_classes = len(self.classes)
        for name in self.classes:
            if not (mask_dir / name).is_dir():
                raise ValueError(
                    f"class folder {mask_dir / name} does not exist; data.mode multilabel reads one mask per "
                    f"image from masks/<class>/<stem>.png: add the folder or remove {name!r} from data.classes"
                )
        images = files_by_stem(image_dir, "images")
        if not images:
            raise ValueError(f"no image files in {image_dir} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        self.images = [images[s] for s in sorted(images)]
        self.masks: list[list[Path]] = []  # [class][image]
        for name in self.classes:
            masks = files_by_stem(mask_dir / name, f"masks of class {name!r}")
            missing = sorted(set(images) - set(masks))
            if missing:
                more = f" and {len(missing) - 1} more images" if len(missing) > 1 else ""
                raise ValueError(
                    f"image {images[missing[0]]}{more} has no mask in {mask_dir / name} (expected "
                    f"{mask_dir / name / missing[0]}.png); every class folder needs one mask per image "
                    "(an all-zero mask where the class is absent)"
                )
            extra = sorted(set(masks) - set(images))
            if extra:
                raise ValueError(
                    f"mask {masks[extra[0]]} has no image in {image_dir}; add the image or move the mask out"
                )
            self.masks.append([masks[s] for s in sorted(images)])
        for i, image in enumerate(self.images):
            ih, iw = image_size(image)
            for per_class in self.masks:
                mh, mw = image_size(per_class[i])
                if (mh, mw) != (ih, iw):
                    raise ValueError(
                        f"mask {per_class[i]} is {mh}x{mw} but image {image} is {ih}x{iw} (height x width); "
                        "resize the mask with nearest-neighbour interpolation to the image size"
                    )
        self._dtype = mask_dtype(self.num_classes, self.ignore_index)

    @property
    def names(self) -> list[str]:
        """The image file name of every sample, in index order (per-image reports name images by it)."""
        return [Path(path).name for path in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        image = read_image(self.images[index])
        h, w = image.shape[:2]
        mask = np.empty((h, w, self.num_classes), self._dtype)
        for k, per_class in enumerate(self.masks):
            channel = read_mask(per_class[index])
            if channel.shape != (h, w):
                raise ValueError(
                    f"mask {per_class[index]} is {channel.shape[0]}x{channel.shape[1]} but image "
                    f"{self.images[index]} is {h}x{w}; resize the mask with nearest-neighbour interpolation"
                )
            mask[:, :, k] = channel != 0
        return {
            "image": image,
            "mask": mask,
            "bboxes": np.zeros((0, 4), np.float32),
            "labels": np.zeros((0,), np.int64),
        }
