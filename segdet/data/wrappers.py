"""A dataset seen through an albumentations pipeline (validation, or training without mixing)."""

from __future__ import annotations

from typing import Any

import numpy as np

from augment import call_albumentations


class TransformedDataset:
    """``dataset[i]`` passed through ``pipeline``; ``classes`` (and ``box_classes``) forwarded.

    Each sample runs through ``augment.call_albumentations(pipeline, sample)``, so labels,
    weights and instance masks stay in step with the boxes the pipeline keeps, and the arrays
    come back in the sample contract's dtypes.

    Args:
        dataset: any indexable dataset of segdet samples.
        pipeline: an albumentations pipeline (``build_pipeline``), or ``None`` for none.
        seed: when given, the pipeline is reseeded from ``(seed, index)`` before every sample,
            so sample ``i`` is the same in every epoch, worker and process (what validation
            wants). ``None`` leaves the pipeline's own random state alone.

    Example:
        >>> from segdet.data import SyntheticShapes, build_pipeline
        >>> val = TransformedDataset(SyntheticShapes(4, 64, 64, split="val"),
        ...                          build_pipeline([{"Resize": {"height": 32, "width": 32}}], boxes=True))
        >>> val[0]["image"].shape
        (32, 32, 3)
    """

    def __init__(self, dataset: Any, pipeline: Any = None, *, seed: int | None = None) -> None:
        self.dataset = dataset
        self.pipeline = pipeline if pipeline is not None and len(getattr(pipeline, "transforms", [1])) else None
        self.seed = seed
        self.classes = getattr(dataset, "classes", None)
        self.box_classes = getattr(dataset, "box_classes", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.transform(self.dataset[index], index)

    def transform(self, sample: dict, index: int) -> dict:
        """``sample`` (sample ``index`` of the dataset) through the pipeline, seeded as ``dataset[index]`` is."""
        if self.pipeline is None:
            return sample
        if self.seed is not None:
            seq = np.random.SeedSequence([self.seed, int(index)])
            self.pipeline.set_random_seed(int(seq.generate_state(1)[0]))
        return call_albumentations(self.pipeline, sample)


class ForegroundMask:
    """``dataset[i]`` with every mask class above 0 merged into class 1: background against foreground.

    Turns a multiclass source into binary data (``data.mode: binary``): 0 stays 0,
    ``ignore_index`` stays ``ignore_index``, every other value becomes 1. Other keys (boxes,
    instance masks) are passed through. ``classes`` is ``classes``.

    Example:
        >>> from segdet.data import SyntheticShapes
        >>> ds = ForegroundMask(SyntheticShapes(2, 32, 32), ("background", "shape"), ignore_index=255)
        >>> sorted(set(ds[0]["mask"].ravel().tolist())) <= [0, 1]
        True
    """

    def __init__(self, dataset: Any, classes: tuple[str, str], *, ignore_index: int) -> None:
        self.dataset = dataset
        self.classes = tuple(classes)
        self.ignore_index = int(ignore_index)
        self.box_classes = getattr(dataset, "box_classes", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        mask = np.asarray(sample["mask"])
        sample["mask"] = np.where((mask == 0) | (mask == self.ignore_index), mask, 1).astype(mask.dtype)
        return sample
