"""Data loaders that keep the model busy and give the same samples for the same seed.

* Workers: ``data.num_workers: auto`` takes the CPUs this process may use, divided among the
  processes of this node under torchrun (``LOCAL_WORLD_SIZE``), capped at 8; 0 when the dataset
  holds fewer than four batches (starting workers would cost more than it saves).
* On CUDA: pinned host memory, so ``to_device(..., non_blocking=True)`` copies overlap compute.
* With workers: persistent workers (no restart every epoch) and ``prefetch_factor`` batches queued
  per worker.
* Training order: a :class:`~torch.utils.data.DistributedSampler` (one shard per rank, a single
  shard in a single process) reshuffled from ``(seed, epoch)``; every index reaches the dataset as
  ``(epoch, index)`` so a dataset with ``set_epoch`` (``augment.MixDataset``) is switched to the
  epoch *inside the worker* too — persistent workers keep their own copy of the dataset, and a
  ``set_epoch`` in the main process would not reach them.
* Validation: :class:`ShardedBatchSampler` deals the batches of the single-process order out to
  the ranks, with no padding and no duplicates, so the summed confusion matrix (or the gathered
  detections) equals a single-process evaluation exactly: every image is seen once, in the same
  batch (same padding, same batch size) as in a single process.

Randomness: segdet's datasets derive every sample's randomness from ``(seed, epoch, index)``
(``augment.MixDataset``), so a sample does not depend on the worker that loads it, the number of
workers or the rank. For third-party code that reads python's, numpy's or torch's *global*
generators, a loader worker reseeds all three before every sample from ``(seed, epoch, index)``
too; without workers those draws come from the training loop's generators, which a checkpoint
saves. Either way a run resumed in the middle of an epoch (``EpochSampler.set_epoch(epoch,
skip)``) loads exactly the samples the uninterrupted run would have loaded.

Unreadable samples: a file that cannot be read (an ``OSError`` or PIL's ``SyntaxError`` for a
missing, truncated or undecodable file, raised as such or as the cause of the dataset's own
error, e.g. :class:`segdet._images.UnreadableImageError`) does not travel back as a worker's
traceback. The sample comes back as a marker; :class:`TrainLoader` raises one
:class:`UnreadableSampleError` naming it, or, with ``skip_bad``, drops it from its batch and
counts it (``TrainLoader.skipped``). Both behave the same with and without loader workers.
"""

from __future__ import annotations

import functools
import os
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from . import _dist

__all__ = [
    "auto_num_workers",
    "make_train_loader",
    "make_val_loader",
    "set_loader_epoch",
    "EpochDataset",
    "EpochSampler",
    "TrainLoader",
    "UnreadableSampleError",
    "ShardedBatchSampler",
    "DataWaitMeter",
    "CheckedCollate",
    "stop_workers",
    "is_unreadable_file",
]

#: batches queued per worker when workers are used
PREFETCH_FACTOR = 4


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def auto_num_workers(setting: int | str, dataset_size: int, batch_size: int) -> int:
    """Loader workers of this process for ``data.num_workers``.

    ``auto``: ``min(CPUs / processes on this node, 8)`` (``LOCAL_WORLD_SIZE`` processes under
    torchrun), and 0 when the dataset is under four batches. An integer is taken as given.

    Raises:
        ValueError: a negative number or a string other than ``auto``.

    Example:
        >>> auto_num_workers(4, 1000, 8)
        4
    """
    if setting != "auto":
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
            raise ValueError(f"data.num_workers must be auto or an integer >= 0, got {setting!r}")
        return int(setting)
    if dataset_size < 4 * batch_size:
        return 0
    local = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1), 1)
    return max(min(_usable_cpus() // local, 8), 1)


def _seed_worker(worker_id: int, rank: int = 0) -> None:
    """Seed python and numpy in a worker from its torch seed, this rank and the worker id."""
    seed = (torch.initial_seed() + 1_000_003 * rank) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    # Ctrl-C reaches the whole process group: the main process saves last.pt and stops the
    # loader; a worker that died of the SIGINT first would make it fail instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class UnreadableSampleError(ValueError):
    """A training sample could not be read; the message names it (and the file, when the dataset did).

    Attributes:
        checkpoint: the checkpoint to resume from once the file is fixed (set by the training loop).
    """

    def __init__(self, message: str, checkpoint: Any = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class _Unreadable:
    """What a worker returns instead of a sample it could not read (picklable, unlike a live exception)."""

    def __init__(self, index: int, message: str) -> None:
        self.index, self.message = index, message


class EpochDataset(Dataset):
    """Wraps a dataset so that ``ds[(epoch, index)]`` selects the epoch before reading ``index``.

    Used with :class:`EpochSampler`; a plain integer index is passed through unchanged. Inside a
    loader worker, python's, numpy's and torch's global generators are reseeded before every
    sample from ``(seed, epoch, index)``, so even a dataset that draws from them gives the same
    sample whichever worker loads it, with persistent workers, after a resume at an epoch
    boundary and after one in the middle of an epoch.

    A sample whose file cannot be read (see :func:`is_unreadable_file`) is returned as a marker
    that :class:`CheckedCollate` and :class:`TrainLoader` turn into one clear error or a skipped
    sample; any other exception propagates as it is (a bug or a bad option is not a bad file).
    """

    def __init__(self, dataset: Any, seed: int = 0, rank: int = 0) -> None:
        self.dataset = dataset
        self.seed, self.rank = int(seed), int(rank)
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            return self.dataset[key]
        epoch, index = key
        if epoch != self._epoch:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            self._epoch = epoch
        if torch.utils.data.get_worker_info() is not None:  # the main process's generators belong to the loop
            state = np.random.SeedSequence([self.seed % (2**63), epoch, index]).generate_state(3)
            random.seed(int(state[0]))
            np.random.seed(int(state[1]))
            torch.manual_seed(int(state[2]))
        try:
            return self.dataset[index]
        except Exception as exc:
            if not is_unreadable_file(exc):
                raise
            return _Unreadable(index, " ".join(str(exc).split()) or type(exc).__name__)


def is_unreadable_file(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says a file could not be read.

    That is an :class:`~segdet._images.UnreadableImageError`, an ``OSError`` (missing file, I/O
    error, PIL's truncated or unidentified image) or a ``SyntaxError`` (PIL's broken PNG chunk).
    """
    from segdet._images import UnreadableImageError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (UnreadableImageError, OSError, SyntaxError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class CheckedCollate:
    """The task's collate function, with the unreadable samples of a batch taken out first.

    Args:
        collate: the task's collate function.
        skip_bad: drop unreadable samples (and report them with the batch) instead of failing.

    Returns (when called): the collated batch; :class:`_Skipped` around it when samples were
    dropped; :class:`_Failed` when a sample is unreadable and ``skip_bad`` is off, or every sample
    of the batch is. :class:`TrainLoader` unwraps both in the main process.
    """

    def __init__(self, collate: Callable, skip_bad: bool = False) -> None:
        self.collate, self.skip_bad = collate, bool(skip_bad)

    def __call__(self, samples: list[Any]) -> Any:
        """Collate ``samples`` (see the class docstring for what comes back)."""
        bad = [s for s in samples if isinstance(s, _Unreadable)]
        if not bad:
            return self.collate(samples)
        good = [s for s in samples if not isinstance(s, _Unreadable)]
        if not self.skip_bad or not good:
            return _Failed(bad, all_bad=self.skip_bad)
        return _Skipped(self.collate(good), bad)


class _Skipped:
    def __init__(self, batch: Any, bad: list[_Unreadable]) -> None:
        self.batch, self.bad = batch, bad


class _Failed:
    def __init__(self, bad: list[_Unreadable], all_bad: bool) -> None:
        self.bad, self.all_bad = bad, all_bad


class TrainLoader(DataLoader):
    """A ``DataLoader`` that turns unreadable samples into one :class:`UnreadableSampleError` or skips them.

    ``skipped`` lists ``(index, message)`` of every sample dropped since :meth:`reset_skipped`
    (``data.skip_bad``); the training loop counts them in the epoch line.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[tuple[int, str]] = []

    def reset_skipped(self) -> None:
        """Forget the samples skipped so far (at the start of an epoch)."""
        self.skipped = []

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        for item in batches:
            if isinstance(item, _Failed):
                _stop_workers(self, batches)
                first = item.bad[0]
                if item.all_bad:
                    raise UnreadableSampleError(
                        f"every sample of a training batch is unreadable (first: sample {first.index}: "
                        f"{first.message}); data.skip_bad can drop single samples, not whole batches"
                    )
                raise UnreadableSampleError(
                    f"training sample {first.index} is unreadable: {first.message}; fix or remove the file, or set "
                    "data.skip_bad=true to skip such samples (counted in the epoch line)"
                )
            if isinstance(item, _Skipped):
                self.skipped += [(b.index, b.message) for b in item.bad]
                item = item.batch
            yield item


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` for each index of ``sampler``; :meth:`set_epoch` sets both.

    ``len()`` is always the whole epoch's; after ``set_epoch(epoch, skip)`` the next pass leaves
    out the first ``skip`` indices of the epoch's order (a resume in the middle of the epoch: with
    ``skip = batches done * batch size`` the batches that follow are exactly those of the
    uninterrupted pass, and nothing is read for the skipped ones).

    Args:
        sampler: the index sampler (a ``DistributedSampler``; its ``set_epoch`` reshuffles).
    """

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch of the order (and of the wrapped sampler) and how many of its indices to leave out."""
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self.epoch, self.skip = int(epoch), int(skip)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, self.skip
        for position, index in enumerate(self.sampler):
            if position >= skip:
                yield epoch, int(index)


class ShardedBatchSampler(Sampler):
    """Rank ``r`` of ``W`` gets batches ``r, r + W, r + 2W, ...`` of the sequential order.

    The batches are exactly those of a single-process loader (``batch_size``, last one partial),
    so each image is evaluated once, in the same batch as in a single process; ranks may get one
    batch more or less than others (nothing is padded or repeated).

    Example:
        >>> list(ShardedBatchSampler(5, 2, rank=0, world_size=2))
        [[0, 1], [4]]
        >>> list(ShardedBatchSampler(5, 2, rank=1, world_size=2))
        [[2, 3]]
    """

    def __init__(self, size: int, batch_size: int, rank: int | None = None, world_size: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.size, self.batch_size = int(size), int(batch_size)
        self.rank = _dist.rank() if rank is None else int(rank)
        self.world_size = _dist.world_size() if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside world size {self.world_size}")

    def _batches(self) -> Sequence[range]:
        starts = range(0, self.size, self.batch_size)
        return [range(s, min(s + self.batch_size, self.size)) for s in starts][self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._batches():
            yield list(batch)


def _stop_workers(loader: DataLoader, batches: Any = None) -> None:
    """Shut the workers of ``loader`` (and of the pass ``batches``) down now.

    Left to the garbage collector, the persistent workers of a loader that an exception left
    behind are joined whenever its frames happen to be freed: in a later run of the same process
    that cost seconds of waiting (``torch`` joins each worker with a 5 s timeout). ``torch`` has no
    public call for this, hence its ``_shutdown_workers`` and ``_iterator``.
    """
    for it in {id(x): x for x in (batches, getattr(loader, "_iterator", None)) if x is not None}.values():
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    if hasattr(loader, "_iterator"):
        loader._iterator = None


def stop_workers(*loaders: DataLoader) -> None:
    """Shut down the worker processes of ``loaders`` now (when training ends, also by an exception)."""
    for loader in loaders:
        _stop_workers(loader)


def _loader_options(num_workers: int, device: torch.device, rank: int) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": torch.device(device).type == "cuda",
        "worker_init_fn": functools.partial(_seed_worker, rank=rank),
    }
    if num_workers > 0:
        opts.update(persistent_workers=True, prefetch_factor=PREFETCH_FACTOR)
    return opts


def make_train_loader(
    dataset: Dataset,
    collate: Callable,
    batch_size: int,
    num_workers: int,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    skip_bad: bool = False,
) -> TrainLoader:
    """The training loader: this rank's shard, reshuffled per epoch (call :func:`set_loader_epoch`).

    The batch size is per process. The last incomplete batch is dropped (a batch of one breaks
    BatchNorm) unless the shard is smaller than one batch; every rank gets the same number of
    batches (the sampler repeats a few indices to make the shards equal, as DDP requires).

    Args:
        dataset: the training dataset (``set_epoch`` is called in the workers when present).
        collate: the task's collate function.
        batch_size: images per step of this process.
        num_workers: see :func:`auto_num_workers`.
        seed: shuffling seed (the order of an epoch depends only on ``seed`` and the epoch).
        device: where the batches go (pinned memory on CUDA).
        generator: seeds the workers' torch generators at start-up (reseed it per epoch; optional).
        skip_bad: drop unreadable samples from their batch (``data.skip_bad``) instead of raising
            :class:`UnreadableSampleError`.

    Example:
        >>> loader = make_train_loader(ds, task.collate, 8, 2, seed=0)
        >>> set_loader_epoch(loader, 3)
        >>> batch = next(iter(loader))
    """
    rank, world = _dist.rank(), _dist.world_size()
    shard = DistributedSampler(
        range(len(dataset)), num_replicas=world, rank=rank, shuffle=True, seed=int(seed) % (2**63), drop_last=False
    )
    sampler = EpochSampler(shard)
    drop_last = len(sampler) > batch_size
    return TrainLoader(
        EpochDataset(dataset, seed, rank),
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=CheckedCollate(collate, skip_bad),
        drop_last=drop_last,
        generator=generator,
        **_loader_options(num_workers, device, rank),
    )


def make_val_loader(
    dataset: Dataset, collate: Callable, batch_size: int, num_workers: int, *, device: torch.device | str = "cpu"
) -> DataLoader:
    """The validation loader: this rank's batches of the single-process order.

    See :class:`ShardedBatchSampler`; in a single process simply every batch in order.
    """
    rank = _dist.rank()
    batches = ShardedBatchSampler(len(dataset), batch_size)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, **_loader_options(num_workers, device, rank))


def set_loader_epoch(loader: DataLoader, epoch: int, skip_batches: int = 0) -> None:
    """Select ``epoch`` for the sampler (shuffle) and, through it, for the dataset in the workers.

    Args:
        loader: a loader of :func:`make_train_loader`.
        epoch: 0-based epoch.
        skip_batches: batches of the epoch already trained (a resume in the middle of it); the
            next pass starts with the batch after them.
    """
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, EpochSampler):
        sampler.set_epoch(epoch, skip_batches * loader.batch_size)
    elif skip_batches:
        raise ValueError("this loader cannot start in the middle of an epoch (its sampler is not an EpochSampler)")
    elif hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


class DataWaitMeter:
    """Iterates ``loader`` and measures the share of wall time spent blocked in ``next()``.

    Wrap the training loader for one epoch; after the loop, :meth:`fraction` is the data-wait
    share of that epoch (0 = the model never waited for data). On CUDA the loop does not wait for
    the device every step (it reads the loss only when it shows it), so the host may run a few
    queued steps ahead; over an epoch its pace is the device's, which the share is measured against.

    Example:
        >>> meter = DataWaitMeter(loader)
        >>> for batch in meter: ...
        >>> meter.fraction()
        0.012
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.wait = 0.0
        self.start: float | None = None
        self.end: float | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        import time

        self.wait, self.start, self.end = 0.0, time.perf_counter(), None
        it = iter(self.loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            finally:
                self.end = time.perf_counter()
                self.wait += self.end - t0
            yield batch

    def fraction(self) -> float:
        """Waiting time / wall time from the first ``next()`` to the last one (NaN before a pass)."""
        if self.start is None or self.end is None or self.end <= self.start:
            return float("nan")
        return self.wait / (self.end - self.start)
