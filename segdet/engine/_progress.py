"""Progress of a training epoch or a validation pass: a tqdm bar on a terminal, plain lines elsewhere.

On a terminal (stdout and stderr both a TTY) the bar redraws itself on stderr, as tqdm does. In a
CI log, under ``nohup`` or in a cluster job those redraws would pile up as carriage returns, so
there the pass prints plain lines on stdout instead: one when it ends, and for a long pass (at
least :data:`LONG_PASS` steps) one at every tenth of it, e.g.::

    epoch 3/10  step 120/1200  loss 0.4321  lr 1.00e-03  img/s 55.1
      val  batch 40/40  img/s 181.0

Example:
    >>> bar = Progress(loader, "epoch 1/10")  # doctest: +SKIP
    >>> for i, batch in enumerate(bar):  # doctest: +SKIP
    ...     bar.update(i + 1, loss=0.5, lr=1e-3, img_s=40.0)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

__all__ = ["BAR_INTERVAL", "LONG_PASS", "Progress", "batch_size", "is_terminal"]

#: a pass of at least this many steps prints a plain line at every tenth of it, not only at its end
LONG_PASS = 100

#: seconds between two refreshes of a terminal bar's numbers (each costs the loop one read of the loss)
BAR_INTERVAL = 0.5

#: how a plain line writes a field, and under which name
_FORMATS = {"loss": ("loss", "{:.4f}"), "lr": ("lr", "{:.2e}"), "img_s": ("img/s", "{:.1f}")}


def is_terminal() -> bool:
    """Whether stdout and stderr are both terminals (tqdm draws on stderr; the other lines go to stdout)."""
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def batch_size(batch: Any) -> int:
    """Images in a batch: the first dimension of a tensor ``image``, or the length of a list of them."""
    image = batch.get("image") if isinstance(batch, dict) else None
    if isinstance(image, torch.Tensor):
        return image.shape[0]
    return len(image) if isinstance(image, (list, tuple)) else 0


class Progress:
    """Iterates ``iterable`` and shows how far it got.

    Args:
        iterable: the batches (``len()`` must work).
        desc: what the pass is, e.g. ``"epoch 3/10"`` or ``"  val"``.
        enabled: ``False`` shows nothing (``train.progress: false``, ranks other than 0).
        unit: the word before ``i/n`` in a plain line (``step``, ``batch``).
        terminal: draw a tqdm bar; ``None``: :func:`is_terminal`.
        start: steps already done before this pass (a resumed epoch); the bar starts there.
    """

    def __init__(
        self,
        iterable: Iterable,
        desc: str,
        enabled: bool = True,
        unit: str = "step",
        terminal: bool | None = None,
        start: int = 0,
    ) -> None:
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = len(iterable)
        self.bar = None
        self.lines = False
        self._shown = 0.0
        if enabled and (is_terminal() if terminal is None else terminal):
            from tqdm import tqdm

            self.bar = tqdm(iterable, desc=desc, total=self.total, initial=start, leave=False, dynamic_ncols=True)
        elif enabled:
            self.lines = True
            tenths = range(1, 11) if self.total >= LONG_PASS else [10]
            self._due = {-(-self.total * k // 10) for k in tenths}  # ceil(total * k / 10): the last step included

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator:
        return iter(self.bar if self.bar is not None else self.iterable)

    def due(self, done: int) -> bool:
        """Whether :meth:`update` after ``done`` steps would show anything (so the caller reads its numbers).

        A terminal bar refreshes its numbers every :data:`BAR_INTERVAL` seconds and at the last
        step; plain lines are due at their tenths; a disabled pass never.
        """
        if self.bar is not None:
            return done == self.total or time.monotonic() - self._shown >= BAR_INTERVAL
        return self.lines and done in self._due

    def update(self, done: int, **fields: float) -> None:
        """After ``done`` of the pass's steps: refresh the bar's numbers, or print a line when one is due.

        Args:
            done: steps finished so far (1-based).
            **fields: numbers to show: ``loss``, ``lr``, ``img_s`` (others as ``name value``).
        """
        if self.bar is not None:
            self._shown = time.monotonic()
            self.bar.set_postfix({k: _format(k, v)[1] for k, v in fields.items()}, refresh=False)
        elif self.lines and done in self._due:
            text = "  ".join(" ".join(_format(k, v)) for k, v in fields.items())
            print(f"{self.desc}  {self.unit} {done}/{self.total}  {text}".rstrip(), flush=True)


def _format(name: str, value: float) -> tuple[str, str]:
    label, fmt = _FORMATS.get(name, (name, "{:.4g}"))
    return label, fmt.format(value)
