"""Semantic segmentation evaluator: one confusion matrix for the whole dataset, kept on the device.

How it averages (also written in every report): all valid pixels of the dataset are counted in
one (C, C) confusion matrix (rows = ground truth, columns = prediction; pixels whose target is
``ignore_index`` are excluded, and so is the padding added by the collate function, which holds
``ignore_index``). From it, per class c::

    IoU_c  = TP_c / (TP_c + FP_c + FN_c)
    Dice_c = 2 TP_c / (2 TP_c + FP_c + FN_c)

A class absent from both the ground truth and the predictions (TP + FP + FN = 0) has no score:
it is reported as n/a (NaN in :meth:`SegmentationEvaluator.compute`) and left out of ``miou`` and
``mdice``, the unweighted means over the classes that do have a score. (torchmetrics scores such
a class 0 and smp scores it 1; both move the mean for a class that was never seen.) This is
dataset-level ("micro over images, per class") averaging: it is not the mean of per-image
scores.

Modes (``data.mode``):

- ``binary``: the model has one channel; a pixel is foreground (class 1) where
  ``sigmoid(logit) > threshold``, and the pixels are counted in the same (2, 2) matrix as above,
  so ``miou`` is the mean over background AND foreground, the number a two-class multiclass
  model reports (with threshold 0.5 the two agree exactly: the argmax of logits ``[0, l]`` is
  ``l > 0``, i.e. ``sigmoid(l) > 0.5``).
- ``multilabel``: one channel per class, each thresholded on its own; class ``c`` gets its own
  (2, 2) count over every pixel whose target for ``c`` is 0 or 1 (``ignore_index`` excluded per
  class), the whole dataset at once, and IoU_c / Dice_c are the formulas above on that count
  (TP = present and predicted, FP = predicted where absent, FN = missed). The same NaN rule
  applies (a class never present and never predicted has no score), and ``miou`` / ``mdice``
  are the unweighted means over the classes that have one; ``pixel_acc`` is the fraction of
  valid (pixel, class) elements predicted right (:mod:`segdet.segmentation._multilabel`).

Both report the threshold they used (``threshold`` in :meth:`SegmentationEvaluator.compute`,
the table and ``metrics.json``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segdet.task import SEGMENTATION_MODES, Evaluator

from ._confusion import confusion_matrix, labels_from_logits, logit_threshold, scores_from_confusion
from ._multilabel import multilabel_counts, present_from_logits, scores_from_multilabel
from ._report import write_report
from .inference import Inference


class SegmentationEvaluator(Evaluator):
    """Accumulates a dataset-level confusion matrix on the device and scores it.

    Per-epoch validation and ``segdet eval`` both drive this class (``reset``, ``update`` per
    batch, ``sync``, ``compute``/``report``), so their numbers agree.

    Args:
        num_classes: number of classes ``C``.
        ignore_index: target value that is not scored (may be outside ``[0, C)``, e.g. 255).
        classes: ``C`` class names (index order); ``None`` names them ``class_0`` ...
        device: where the confusion matrix lives; the batches given to :meth:`update` must be on
            the same device.
        inference: how :meth:`update` computes logits (sliding window, TTA); ``None`` or a plain
            :class:`~segdet.segmentation.inference.Inference` is one forward pass of the batch.
        mode: ``multiclass``, ``binary`` (two classes, a one-channel model) or ``multilabel``
            (one sigmoid channel per class); see the module docstring.
        threshold: binary / multilabel: predicted where ``sigmoid(logit) > threshold``.

    Example:
        >>> ev = SegmentationEvaluator(3, 255, ["bg", "disc", "square"], "cpu")
        >>> ev.reset()
        >>> for batch in loader:  # batch["image"] (B, 3, H, W), batch["mask"] (B, H, W)
        ...     ev.update(model, batch)
        >>> ev.sync()
        >>> ev.compute()["miou"]
        0.87
        >>> print(ev.report(Path("runs/x/eval")))
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        classes: Sequence[str] | None = None,
        device: torch.device | str = "cpu",
        inference: Inference | None = None,
        mode: str = "multiclass",
        threshold: float = 0.5,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        if classes is None:
            classes = [f"class_{i}" for i in range(num_classes)]
        classes = [str(name) for name in classes]
        if len(classes) != num_classes:
            raise ValueError(
                f"{len(classes)} class names {classes} for num_classes={num_classes}; give one name per class"
            )
        if len(set(classes)) != len(classes):
            raise ValueError(f"class names must be unique, got {classes}")
        if mode not in SEGMENTATION_MODES:
            raise ValueError(f"mode must be one of {', '.join(SEGMENTATION_MODES)} (data.mode), got {mode!r}")
        if mode == "binary" and num_classes != 2:
            raise ValueError(f"binary mode scores two classes (background, foreground), got num_classes={num_classes}")
        logit_threshold(threshold)  # raises outside (0, 1)
        self.mode = mode
        self.threshold = float(threshold)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.classes = classes
        self.device = torch.device(device)
        self.inference = inference
        self.reset()

    def reset(self) -> None:
        """Zero the confusion matrix (multilabel: the per-class 2x2 counts)."""
        shape = (self.num_classes, 2, 2) if self.mode == "multilabel" else (self.num_classes, self.num_classes)
        self._cm = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self._invalid = torch.zeros((), dtype=torch.int64, device=self.device)
        self._reduced: tuple[torch.Tensor, torch.Tensor] | None = None
        self._images: list[torch.Tensor] = []  # one count per image, on the device
        self._index: list[int] = []
        self._gathered: tuple[list[int], np.ndarray] | None = None

    def update(self, model: nn.Module, batch: dict[str, Any]) -> None:
        """Forward ``batch["image"]`` and add the batch to the confusion matrix, image by image.

        Args:
            model: returns (B, C, H, W) logits (any float dtype) for (B, 3, H, W) images in
                [0, 1]; a one-channel binary model is accepted when ``C == 2``.
            batch: ``image`` (B, 3, H, W) float on the device; ``mask`` (B, H, W) integer with
                ``ignore_index`` where unlabeled, or soft (B, C, H, W) float probabilities;
                multilabel: (B, C, H, W) integer 0/1 channels. Optional: ``sizes`` (each
                image's size before the batch's padding), ``index`` (the dataset position of
                each image, for :meth:`per_image`), ``full_mask`` and ``full_sizes`` (the
                annotation before a resizing validation pipeline).

        Each image is scored at its own size, without the batch's padding. With ``full_mask``
        the image's logits are resized back to the annotation's size (bilinear, in float32)
        and scored against it, so the metrics are at the annotation's resolution whatever the
        validation pipeline resized. With a sliding window or TTA each image is inferred on its
        own. Nothing is copied to the host: the counts stay on the device until :meth:`compute`.
        """
        with torch.no_grad():
            for logits, truth, index in self.scored(model, batch):
                self.update_from_logits(logits, truth, index)

    def scored(
        self, model: nn.Module, batch: dict[str, Any]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """``(logits, target, index)`` of each image of ``batch``, as :meth:`update` scores them.

        ``logits`` (1, C, h, w) and ``target`` (1, [C,] h, w) at the annotation's size (the
        logits resized back when the batch holds ``full_mask``), ``index`` a (1,) tensor or
        ``None``. The model runs once per batch, or once per image with a sliding window or TTA.
        """
        for key in ("image", "mask"):
            if key not in batch:
                raise KeyError(f"segmentation batch has no {key!r} key (keys: {sorted(batch)})")
        images, target = batch["image"], batch["mask"]
        sizes, index = batch.get("sizes"), batch.get("index")
        full, full_sizes = batch.get("full_mask"), batch.get("full_sizes")
        plain = self.inference is None or self.inference.plain
        batch_logits = model(images) if plain else None
        for i in range(images.shape[0]):
            # without sizes the batch is unpadded: the whole of each row (the shapes are checked on scoring)
            h, w = (int(v) for v in sizes[i]) if sizes is not None else (None, None)
            if plain:
                logits = batch_logits[i : i + 1, :, :h, :w]
            else:
                logits = self.inference(model, images[i : i + 1, :, :h, :w])
            truth = target[i : i + 1, ..., :h, :w]
            h, w = logits.shape[-2:]
            if full is not None:
                fh, fw = (int(v) for v in full_sizes[i])
                truth = full[i : i + 1, ..., :fh, :fw]
                if (fh, fw) != (h, w):
                    logits = F.interpolate(logits.float(), size=(fh, fw), mode="bilinear", align_corners=False)
            yield logits, truth, None if index is None else index[i : i + 1]

    def update_from_logits(
        self, logits: torch.Tensor, target: torch.Tensor, index: torch.Tensor | Sequence[int] | None = None
    ) -> None:
        """Add a batch given the model output instead of the model.

        Args:
            logits: (B, C, H, W) scores (or (B, 1, H, W) for a binary model with ``C == 2``).
            target: (B, H, W) integer classes or (B, C, H, W) soft probabilities; multilabel:
                (B, C, H, W) integer 0/1 channels with ``ignore_index`` where unlabelled.
            index: the dataset position of each image (for :meth:`per_image`); ``None``
                numbers them in the order they arrive.
        """
        if self.mode == "multilabel":
            present = present_from_logits(logits, self.num_classes, self.threshold)
        else:
            pred = labels_from_logits(logits, self.num_classes, self.threshold)
        for i in range(logits.shape[0]):
            if self.mode == "multilabel":
                cm, invalid = multilabel_counts(present[i : i + 1], target[i : i + 1], self.ignore_index)
            else:
                cm, invalid = confusion_matrix(pred[i : i + 1], target[i : i + 1], self.num_classes, self.ignore_index)
            self._cm += cm
            self._invalid += invalid
            self._images.append(cm)
            self._index.append(int(index[i]) if index is not None else len(self._index))
        self._reduced = None

    def sync(self) -> None:
        """Sum the confusion matrix over ranks when ``torch.distributed`` is initialised.

        Idempotent: the local counts are kept, so calling it twice does not double them.
        """
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        cm, invalid = self._cm.clone(), self._invalid.clone()
        torch.distributed.all_reduce(cm, op=torch.distributed.ReduceOp.SUM)
        torch.distributed.all_reduce(invalid, op=torch.distributed.ReduceOp.SUM)
        self._reduced = (cm, invalid)
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, self._local_images())
        index = [i for part in parts for i in part[0]]
        counts = [c for part in parts for c in part[1]]
        self._gathered = (index, np.stack(counts) if counts else self._local_images()[1])

    def confusion(self) -> torch.Tensor:
        """The (C, C) int64 counts (rows = ground truth, columns = prediction); multilabel: (C, 2, 2).

        After :meth:`sync` when it ran since the last update.
        """
        return self._counts()[0]

    def _local_images(self) -> tuple[list[int], np.ndarray]:
        shape = (0, *self._cm.shape)
        counts = torch.stack(self._images).cpu().numpy() if self._images else np.zeros(shape, np.int64)
        return list(self._index), counts

    def per_image(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The scores of every image on its own, in dataset order (after :meth:`sync` under DDP).

        Each entry: ``index`` (dataset position), ``name`` (``names[index]`` when given),
        ``miou``, ``mdice`` and per-class ``iou`` / ``dice`` dicts, from the image's own confusion
        matrix with the dataset-level rules (a class absent from the image's ground truth and
        prediction has no score, NaN; an image without a valid pixel has NaN means). An image
        seen twice (a DistributedSampler pads the last batches with repeats) is listed once.
        """
        index, counts = self._gathered if self._gathered is not None else self._local_images()
        score = scores_from_multilabel if self.mode == "multilabel" else scores_from_confusion
        out: dict[int, dict[str, Any]] = {}
        for i, cm in zip(index, counts):
            if i in out:
                continue
            s = score(cm)
            entry: dict[str, Any] = {"index": i}
            if names is not None:
                entry["name"] = str(names[i])
            entry["miou"], entry["mdice"] = float(s["miou"]), float(s["mdice"])
            entry["iou"] = {c: float(v) for c, v in zip(self.classes, s["iou"])}
            entry["dice"] = {c: float(v) for c, v in zip(self.classes, s["dice"])}
            out[i] = entry
        return [out[i] for i in sorted(out)]

    def _counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._reduced if self._reduced is not None else (self._cm, self._invalid)

    def _scores(self) -> tuple[Any, dict[str, Any]]:
        cm, invalid = self._counts()
        cm = cm.cpu().numpy()
        n_invalid = int(invalid)
        if n_invalid:
            allowed = "0 or 1" if self.mode == "multilabel" else f"a class in [0, {self.num_classes})"
            raise ValueError(
                f"{n_invalid} target pixels hold a value that is neither {allowed} nor "
                f"ignore_index={self.ignore_index}; fix the masks or the data's mask_values / ignore_index settings"
            )
        return cm, scores_from_multilabel(cm) if self.mode == "multilabel" else scores_from_confusion(cm)

    def compute(self) -> dict[str, float]:
        """Flat dict: ``miou``, ``mdice``, ``pixel_acc``, ``iou/<name>``, ``dice/<name>``.

        Classes absent from both ground truth and prediction are NaN and excluded from the means;
        with no valid pixel at all every value is NaN. Binary and multilabel add ``threshold``,
        the threshold the predictions were cut at.

        Raises:
            ValueError: some target pixels were neither a class nor ``ignore_index``.
        """
        _, scores = self._scores()
        out = {"miou": scores["miou"], "mdice": scores["mdice"], "pixel_acc": scores["pixel_acc"]}
        if self.mode != "multiclass":
            out["threshold"] = self.threshold
        for i, name in enumerate(self.classes):
            out[f"iou/{name}"] = float(scores["iou"][i])
        for i, name in enumerate(self.classes):
            out[f"dice/{name}"] = float(scores["dice"][i])
        return out

    def report(self, out_dir: Path, names: Sequence[str] | None = None) -> str:
        """Write ``metrics.json`` (with every image's scores, :meth:`per_image`) and ``confusion_matrix.png``.

        Both are written atomically under ``out_dir``; ``names`` (one per dataset sample) name the
        images in ``per_image``. Returns the printable per-class table with the means and how
        they average.
        """
        cm, scores = self._scores()
        threshold = None if self.mode == "multiclass" else self.threshold
        return write_report(
            Path(out_dir), self.classes, scores, cm, self.ignore_index, self.mode, threshold, self.per_image(names)
        )
