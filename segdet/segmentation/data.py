"""Datasets of a segmentation config: the sources, the pipelines and the mixers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import albumentations as A
import numpy as np

import augment
from segdet.data.mixers import build_mixers
from segdet.data.sources import open_sources
from segdet.data.transforms import build_pipeline
from segdet.data.wrappers import TransformedDataset
from segdet.task import DataSpec


def build_segmentation_data(
    data_cfg: Mapping[str, Any], augment_cfg: Mapping[str, Any], seed: int = 0
) -> tuple[Any, Any, DataSpec]:
    """Training and validation datasets of a segmentation config and their :class:`DataSpec`.

    The training set is ``augment.MixDataset(source, mixers, pre=augment.train, post=augment.post,
    seed=seed)``: every source runs through ``augment.train``, then the mixers of
    ``augment.mix`` (``augment.MIXERS[name](**args)``, given ``num_classes`` and
    ``ignore_index`` when they take them), then ``augment.post``. The validation set is the
    validation source through ``augment.val`` (:class:`ValidationSet`: resizes allowed, and the
    original mask kept for scoring at the annotation's resolution). Both have a ``classes`` attribute. Masks follow
    ``data.mode`` (:mod:`segdet.data.sources`): class indices, or in ``multilabel`` mode one 0/1
    channel per class, (H, W, K).

    Pipelines are box-aware (``bboxes``, ``labels``, ``weights`` and instance ``masks`` stay
    in step with the image), so previews show correct boxes; segmentation only reads ``mask``.

    Args:
        data_cfg: the ``data`` section of a validated config.
        augment_cfg: the ``augment`` section.
        seed: the run's seed (``seed`` of the config).

    Returns:
        ``(train_dataset, val_dataset, spec)``; ``spec.classes[0]`` is class index 0.

    Raises:
        ValueError: an unknown dataset kind, transform or mixer (with did-you-mean), a class
            list that does not fit the data, or any dataset error (missing files, bad masks).

    Example:
        >>> train, val, spec = build_segmentation_data(cfg["data"], cfg["augment"], cfg["seed"])  # doctest: +SKIP
        >>> spec.classes  # doctest: +SKIP
        ('background', 'circle', 'square', 'triangle')
    """
    aug = augment_cfg
    ignore = int(data_cfg["ignore_index"])
    sources = open_sources(data_cfg, target="mask")
    classes = sources.spec.classes
    train_pipe = build_pipeline(aug.get("train") or [], boxes=True, key="augment.train")
    post_pipe = build_pipeline(
        aug.get("post") or [], boxes=True, label_fields=("labels", "weights"), key="augment.post"
    )
    val_pipe = build_pipeline(aug.get("val") or [], boxes=True, key="augment.val")
    mixers = build_mixers(aug.get("mix") or [], num_classes=len(classes), ignore_index=ignore, mode=sources.spec.mode)
    _check_instances(aug.get("mix") or [], sources.train, data_cfg["kind"])

    train = augment.MixDataset(
        sources.train,
        mixers,
        pre=train_pipe if train_pipe.transforms else None,
        post=post_pipe if post_pipe.transforms else None,
        seed=int(seed),
    )
    val = ValidationSet(sources.val, val_pipe, seed=int(seed))
    for ds in (sources.train, sources.val, train, val):
        ds.classes = classes
    return train, val, sources.spec


def _check_instances(steps: Any, source: Any, kind: str) -> None:
    """Stop on ``CopyPaste`` in ``augment.mix`` when the training samples hold no instance masks.

    CopyPaste pastes a partner's objects by their instance masks (``masks``); a source that reads
    semantic masks only (``data.kind: folder``) has none, and the mixer would silently paste
    nothing. One sample of ``source`` is read to tell.

    Raises:
        ValueError: naming the step, the data kind and the ways out.
    """
    for i, step in enumerate(steps):
        if isinstance(step, Mapping) and next(iter(step), None) == "CopyPaste" and len(source):
            if "masks" not in source[0]:
                raise ValueError(
                    f"augment.mix[{i}]: CopyPaste pastes objects by their instance masks, but the training samples "
                    f"of data.kind {kind} hold none (a semantic mask does not separate its objects), so it would "
                    "never paste; remove the step, use a mixer that copies regions (CutMix, ResizeMix, Mosaic), "
                    "or data with instances (data.kind coco or synthetic)"
                )


#: the geometric transforms a validation pipeline may hold: the logits are resized back to the
#: annotation, which undoes them exactly (crops, flips, pads and warps could not be undone)
RESIZES = (A.Resize, A.LongestMaxSize, A.SmallestMaxSize)


def _transforms(pipeline: Any) -> Iterator[Any]:
    for t in getattr(pipeline, "transforms", None) or []:
        yield t
        yield from _transforms(t)


class ValidationSet:
    """The validation source through ``augment.val``, scored at the annotation's own resolution.

    Each sample carries ``index`` (its position, for per-image results) and, when the pipeline
    resizes (:data:`RESIZES`), ``full_mask``: the source's mask before the pipeline, which the
    evaluator scores against the logits resized back to it (bilinear), as mmsegmentation scores
    against the original segmentation map. ``names`` are the image file names when the source
    knows them (folder and COCO sources), else ``"image <index>"``.

    Raises:
        ValueError: a transform of ``augment.val`` that moves, crops or pads pixels (only resizes and
            pixel-level transforms can be mapped back to the annotation).
    """

    def __init__(self, dataset: Any, pipeline: Any = None, *, seed: int | None = None) -> None:
        for t in _transforms(pipeline):
            if isinstance(t, A.DualTransform) and not isinstance(t, RESIZES):
                raise ValueError(
                    f"augment.val: {type(t).__name__} moves, crops or pads pixels, so validation would not score "
                    "the annotated pixels; validation scores every image at its annotation's resolution: keep "
                    "resizes (Resize, LongestMaxSize, SmallestMaxSize) and pixel-level transforms in augment.val, "
                    "and use inference.mode: slide for images too large for one pass"
                )
        self.resizes = any(isinstance(t, RESIZES) for t in _transforms(pipeline))
        self.view = TransformedDataset(dataset, pipeline, seed=seed)
        self.dataset = dataset
        self.classes = getattr(dataset, "classes", None)
        self.box_classes = getattr(dataset, "box_classes", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        if not self.resizes:
            sample = dict(self.view[index])
        else:
            source = self.dataset[index]
            sample = dict(self.view.transform(source, index))
            sample["full_mask"] = np.asarray(source["mask"])
        sample["index"] = int(index)
        return sample

    @property
    def names(self) -> list[str]:
        """One name per sample: the image file name where the source knows it, else ``image <index>``."""
        source = self.dataset
        while not hasattr(source, "names") and hasattr(source, "dataset"):
            source = source.dataset
        names = getattr(source, "names", None)
        if names is None or len(names) != len(self):
            return [f"image {i}" for i in range(len(self))]
        return [str(n) for n in names]
