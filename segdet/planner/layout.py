"""Where the pairs of a dataset folder are: ``train/`` + ``val/``, or one ``images/`` + ``masks/`` split here.

Two layouts are accepted (other folders beside them, e.g. ``instances/``, are ignored):

- ``DATA/train`` and ``DATA/val``, each with ``images/`` and ``masks/`` matched by stem;
- ``DATA/images`` and ``DATA/masks``: the pairs are split reproducibly, sorted by stem with every
  fifth one (the 5th, 10th, ...) to validation, which :func:`split_stems` defines.

The pairing and size checks are the folder source's own (:func:`segdet.data.folder.pair_files`,
:func:`segdet.data.folder.check_sizes`), so ``segdet init`` and ``segdet train`` report a bad
folder in the same words.

Example:
    >>> layout = find_layout("data/nuclei")  # doctest: +SKIP
    >>> layout.kind, len(layout.train_images), len(layout.val_images)  # doctest: +SKIP
    ('one folder', 80, 20)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segdet.data.folder import check_sizes, pair_files

__all__ = ["VAL_EVERY", "DataLayout", "find_layout", "split_stems"]

#: with one images/ + masks/ folder, every VAL_EVERY-th pair (sorted by stem) goes to validation
VAL_EVERY = 5

_EXPECTED = (
    "DATA/train and DATA/val (each with images/ and masks/, files matched by stem), "
    "or DATA/images and DATA/masks to be split into training and validation"
)


@dataclass(frozen=True)
class DataLayout:
    """The training and validation pairs of a dataset folder.

    Attributes:
        root: the dataset folder.
        kind: ``"train/ and val/"`` or ``"one folder"``.
        train_root: folder holding the training ``images/`` and ``masks/``.
        val_root: folder holding the validation ones (``train_root`` for one folder).
        train_images: training image paths, sorted by stem (masks in ``train_masks``, same order).
        train_masks: training mask paths.
        val_images: validation image paths, sorted by stem.
        val_masks: validation mask paths.
    """

    root: Path
    kind: str
    train_root: Path
    val_root: Path
    train_images: tuple[Path, ...]
    train_masks: tuple[Path, ...]
    val_images: tuple[Path, ...]
    val_masks: tuple[Path, ...]

    @property
    def split(self) -> bool:
        """True when training and validation were split from one folder (split files are needed)."""
        return self.kind == "one folder"

    @property
    def train_stems(self) -> list[str]:
        """The stems of the training pairs."""
        return [p.stem for p in self.train_images]

    @property
    def val_stems(self) -> list[str]:
        """The stems of the validation pairs."""
        return [p.stem for p in self.val_images]


def split_stems(stems: list[str]) -> tuple[list[str], list[str]]:
    """Training and validation stems: sorted, every :data:`VAL_EVERY`-th one to validation.

    With fewer than :data:`VAL_EVERY` stems the last one is the validation set.

    Raises:
        ValueError: fewer than two stems.

    Example:
        >>> split_stems([f"{i:02d}" for i in range(7)])
        (['00', '01', '02', '03', '05', '06'], ['04'])
    """
    ordered = sorted(stems)
    if len(ordered) < 2:
        raise ValueError(
            f"need at least two image/mask pairs to split into training and validation, not {len(ordered)}"
        )
    val = set(ordered[VAL_EVERY - 1 :: VAL_EVERY] or ordered[-1:])
    return [s for s in ordered if s not in val], [s for s in ordered if s in val]


def find_layout(data: str | os.PathLike) -> DataLayout:
    """Find the pairs of ``data`` in one of the two layouts and check them as ``segdet train`` would.

    Raises:
        ValueError: ``data`` is missing, empty or in neither layout; one of ``train/``/``val/``
            is missing; or a pairing or size check of the folder source fails (an empty
            ``images/``, masks without images, unmatched stems, a mask of another size than
            its image, an unreadable header). Each message names the folder or file and the fix.
    """
    root = Path(data)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ValueError(f"data folder {root} {what}; segdet init needs {_EXPECTED.replace('DATA', str(root))}")
    entries = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    if not entries:
        raise ValueError(f"data folder {root} is empty; put in it {_EXPECTED.replace('DATA', str(root))}")
    has = {name: (root / name).is_dir() for name in ("train", "val", "images", "masks")}
    if has["train"] or has["val"]:
        if not (has["train"] and has["val"]):
            present, absent = ("train", "val") if has["train"] else ("val", "train")
            raise ValueError(
                f"data folder {root} has {present}/ but no {absent}/; add {root / absent}/images and "
                f"{root / absent}/masks, or put every pair in {root}/images + {root}/masks to have them split"
            )
        train_images, train_masks = pair_files(root / "train")
        val_images, val_masks = pair_files(root / "val")
        check_sizes(train_images + val_images, train_masks + val_masks)
        return DataLayout(
            root,
            "train/ and val/",
            root / "train",
            root / "val",
            tuple(train_images),
            tuple(train_masks),
            tuple(val_images),
            tuple(val_masks),
        )
    if has["images"] or has["masks"]:
        images, masks = pair_files(root)  # names the missing images/ or masks/ folder
        check_sizes(images, masks)
        by_stem = {p.stem: (p, m) for p, m in zip(images, masks)}
        if len(by_stem) < 2:
            raise ValueError(
                f"{root}/images holds one image/mask pair; add more pairs (every {VAL_EVERY}th one, sorted by "
                f"stem, is kept for validation), or give separate {root}/train and {root}/val folders"
            )
        train, val = split_stems(list(by_stem))
        return DataLayout(
            root,
            "one folder",
            root,
            root,
            tuple(by_stem[s][0] for s in train),
            tuple(by_stem[s][1] for s in train),
            tuple(by_stem[s][0] for s in val),
            tuple(by_stem[s][1] for s in val),
        )
    shown = ", ".join(entries[:8]) + (" ..." if len(entries) > 8 else "")
    raise ValueError(
        f"data folder {root} holds neither train/ + val/ nor images/ + masks/ (found: {shown}); "
        f"segdet init needs {_EXPECTED.replace('DATA', str(root))}"
    )
