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
        sample = self.dataset[index]
        if self.pipeline is None:
            return sample
        if self.seed is not None:
            seq = np.random.SeedSequence([self.seed, int(index)])
            self.pipeline.set_random_seed(int(seq.generate_state(1)[0]))
        return call_albumentations(self.pipeline, sample)
