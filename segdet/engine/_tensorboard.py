"""The TensorBoard log of a run (``train.log: [..., tensorboard]``), written to ``RUN/tensorboard/``.

Every tag shares one x-axis, the optimizer step (1-based, counted over the whole run):

- per optimizer step: ``step/loss`` (the mean over the step's accumulated batches), ``step/<term>``
  for every loss term of the task, ``step/lr`` (the learning rate the step used);
- per epoch, at the epoch's last step: ``epoch/loss``, ``epoch/<term>``, ``epoch/lr``,
  ``epoch/images_per_s``, ``epoch/data_wait``, ``epoch/time_s`` (the numbers of ``results.csv``)
  and ``val/<metric>`` for every validation metric;
- pictures: ``train/preview``, the preview grid of the training data, once at step 0; and
  ``val/prediction/<i>`` for the first :data:`VAL_PICTURES` validation images every epoch, as the
  task draws them (:meth:`segdet.task.Task.draw_predictions`).

The loop reads the loss to the host once per batch already (``loss.item()``, for the NaN check);
the loss terms stay on the device and are copied to the host in one transfer every
``flush_every`` steps, right after such a read, so the log adds no synchronisation of its own to a
step. A resumed run purges the events written after its checkpoint (``purge_step``), so the curves
do not show the redone steps twice.

Example:
    >>> with TensorBoardLog(run_dir / "tensorboard") as tb:  # doctest: +SKIP
    ...     tb.batch(loss.item(), terms)
    ...     tb.step(lr=1e-3)
    ...     tb.epoch({"loss": 0.4, "miou": 0.8}, metrics={"miou": 0.8})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segdet.task import DataSpec, Task

from ._runtime import autocast, to_device

__all__ = ["VAL_PICTURES", "TensorBoardLog", "ValidationPictures", "read_png", "require_tensorboard"]

#: validation images drawn with the model's prediction every epoch
VAL_PICTURES = 4


def require_tensorboard() -> None:
    """Check that TensorBoard's ``SummaryWriter`` can be imported.

    Raises:
        ValueError: the ``tensorboard`` package is missing; the message names ``train.log`` and the install.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            f"train.log includes 'tensorboard' but TensorBoard is not installed ({exc}); "
            "install it with: pip install segdet[tensorboard] (or pip install tensorboard), "
            "or set train.log=[csv]"
        ) from None


class TensorBoardLog:
    """Scalars and pictures of one run in TensorBoard event files (the module docstring lists the tags).

    Use it as a context manager (or call :meth:`close`): closing writes the buffered steps and
    closes the event file, also when training stops with an exception.

    Args:
        log_dir: the folder of the event files (``RUN/tensorboard``).
        start_step: optimizer steps already done (a resumed run); later events of an earlier
            session in ``log_dir`` are purged.
        flush_every: buffered optimizer steps that trigger one copy of their loss terms to the host.
    """

    def __init__(self, log_dir: Path, start_step: int = 0, flush_every: int = 100) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir), purge_step=start_step + 1 if start_step else None)
        self.global_step = start_step
        self.flush_every = flush_every
        self._batches: list[tuple[float, tuple[str, ...], torch.Tensor | None]] = []
        self._steps: list[tuple[int, float, float, tuple[str, ...], torch.Tensor | None]] = []

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def batch(self, loss: float | torch.Tensor, terms: Mapping[str, torch.Tensor]) -> None:
        """Record one batch's loss and its terms, both left on the device when they are tensors.

        When ``flush_every`` steps are buffered, their losses and terms are copied to the host
        here, in one transfer each (the loop itself reads the loss only when it shows it).
        """
        if len(self._steps) >= self.flush_every:
            self._flush_steps()
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().float().reshape(())
        names = tuple(terms)
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]) if names else None
        self._batches.append((loss, names, values))

    def step(self, lr: float) -> None:
        """Close an optimizer step: the mean of its batches is logged at the next global step."""
        if not self._batches:
            return
        self.global_step += 1
        loss = sum(b[0] for b in self._batches) / len(self._batches)
        names = self._batches[0][1]
        if names and all(b[1] == names for b in self._batches):
            values = [b[2] for b in self._batches]
            mean = values[0] if len(values) == 1 else torch.stack(values).mean(0)
        else:  # no terms, or batches of one step with different terms: the loss alone
            names, mean = (), None
        self._steps.append((self.global_step, loss, lr, names, mean))
        self._batches.clear()

    def epoch(self, row: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Log an epoch's numbers at the current step: ``val/<name>`` for ``metrics``, ``epoch/<name>`` else.

        Args:
            row: the epoch's ``results.csv`` row (``epoch`` itself is not logged; ``train/<term>``
                becomes ``epoch/<term>``).
            metrics: the validation metrics (their names in ``row`` become ``val/<name>``).
        """
        self._flush_steps()
        for key, value in row.items():
            if key == "epoch" or not isinstance(value, (int, float)):
                continue
            tag = f"val/{key}" if key in metrics else f"epoch/{key.removeprefix('train/')}"
            self.writer.add_scalar(tag, float(value), self.global_step)
        self.writer.flush()

    def image(self, tag: str, rgb: np.ndarray, step: int | None = None) -> None:
        """Log an (H, W, 3) uint8 RGB picture at ``step`` (default: the current step)."""
        step = self.global_step if step is None else step
        self.writer.add_image(tag, np.ascontiguousarray(rgb), step, dataformats="HWC")

    def images(self, prefix: str, pictures: Sequence[np.ndarray]) -> None:
        """Log pictures as ``<prefix>/0``, ``<prefix>/1``, ... at the current step."""
        for i, rgb in enumerate(pictures):
            self.image(f"{prefix}/{i}", rgb)
        if pictures:
            self.writer.flush()

    def close(self) -> None:
        """Write the buffered steps and close the event file (idempotent)."""
        if self.writer is None:
            return
        try:
            self._flush_steps()
        finally:
            self.writer.close()
            self.writer = None

    def _flush_steps(self) -> None:
        if not self._steps:
            return
        vectors = [s[4] for s in self._steps if s[4] is not None]
        host = torch.cat(vectors).cpu().tolist() if vectors else []  # one transfer for every buffered step
        on_device = [s[1] for s in self._steps if isinstance(s[1], torch.Tensor)]
        losses = iter(torch.stack(on_device).cpu().tolist() if on_device else [])
        offset = 0
        for step, loss, lr, names, values in self._steps:
            loss = next(losses) if isinstance(loss, torch.Tensor) else loss
            self.writer.add_scalar("step/loss", loss, step)
            self.writer.add_scalar("step/lr", lr, step)
            if values is not None:
                for name, value in zip(names, host[offset : offset + len(names)]):
                    self.writer.add_scalar(f"step/{name}", value, step)
                offset += len(names)
        self._steps.clear()


class ValidationPictures:
    """The first ``num`` validation images, batched once; every epoch the task draws the model's prediction on them.

    Args:
        task: draws the pictures (:meth:`segdet.task.Task.draw_predictions`).
        dataset: the validation dataset.
        collate: the task's batching function.
        spec: the data spec the task draws with (class names).
        num: images to draw.
    """

    def __init__(self, task: Task, dataset: Any, collate: Callable, spec: DataSpec, num: int = VAL_PICTURES) -> None:
        self.task, self.spec = task, spec
        count = min(num, len(dataset))
        self.batch = collate([dataset[i] for i in range(count)]) if count else None

    @torch.no_grad()
    def draw(self, model: nn.Module, device: torch.device, amp: torch.dtype | None = None) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB pictures of ``model``'s predictions (eval mode, autocast ``amp``)."""
        if self.batch is None:
            return []
        was_training = model.training
        model.eval()
        try:
            with autocast(device, amp):
                return list(self.task.draw_predictions(model, to_device(self.batch, device), self.spec))
        finally:
            model.train(was_training)


def read_png(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (e.g. the preview grid written by ``segdet.preview``)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the picture {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
