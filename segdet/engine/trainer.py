"""The training loop: one flat function, :func:`train`, plus :func:`train_one_epoch`.

Per epoch: reseed (so the epoch's data order and augmentation depend only on seed and epoch),
train (with ``train.checkpoint_every: N``, ``weights/last.pt`` is also written every N optimizer
steps inside the epoch), validate (every ``train.val_interval`` epochs and always after the last one), write
``weights/last.pt`` (and ``best.pt`` when ``train.metric`` improved on a validated epoch),
append a row to ``results.csv`` (its metric columns blank for an epoch without validation).
``train.patience`` counts validations, not epochs. Resuming restores model, optimizer, scheduler, scaler, EMA,
epoch, best metric and RNG state, and for a checkpoint written inside an epoch its position (the
batches done, whose indices the sampler then leaves out of the epoch's order; the running loss
sums; the generator of ``augment.batch_mix``), so a resumed run ends with the same weights, bit for
bit, as an uninterrupted one (``deterministic: true``; with and without loader workers, whose
per-sample randomness ``loader.py`` derives from ``(seed, epoch, index)``). The first Ctrl-C
finishes the optimizer step it came in, writes such a checkpoint and raises
:class:`TrainingInterrupted`. The run folder is locked while training (``_rundir.py``).

``train.log`` picks the run logs: ``csv`` (``results.csv`` and ``results.png``) and
``tensorboard`` (``RUN/tensorboard/``, see ``_tensorboard.py``), written by rank 0 only; the event
file is closed on every way out of the loop. ``train.progress`` shows a tqdm bar on a terminal and
plain lines elsewhere (``_progress.py``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segdet.checkpoint import copy_checkpoint, save_checkpoint
from segdet.config import save_config
from segdet.task import Task, build_task

from . import _dist, distributed
from ._preflight import check_metric, check_resume_checkpoint, load_resume_checkpoint, load_resumed_state
from ._progress import Progress, batch_size
from ._results import ResultsLog, plot_results
from ._rundir import RunLock, claim_new_run_dir, run_dir_of
from ._runtime import (
    autocast,
    configure_determinism,
    epoch_seed,
    rng_state,
    seed_everything,
    select_amp,
    set_rng_state,
    to_device,
)
from ._tensorboard import TensorBoardLog, ValidationPictures, read_png, require_tensorboard
from .batchmix import BatchMixSchedule
from .ema import ModelEMA
from .loader import (
    DataWaitMeter,
    UnreadableSampleError,
    auto_num_workers,
    make_train_loader,
    make_val_loader,
    set_loader_epoch,
    stop_workers,
)
from .optim import build_optimizer, build_scheduler, set_scheduler_step
from .validate import validate

__all__ = ["train", "train_one_epoch", "is_validation_epoch", "NonFiniteLossError", "TrainingInterrupted"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the epoch, step and last good checkpoint (``checkpoint``)."""

    def __init__(self, message: str, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the optimizer step was finished and ``last.pt`` saved first (see ``checkpoint``)."""

    def __init__(self, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted; saved {checkpoint}" if checkpoint else "interrupted")
        self.checkpoint = checkpoint


def train(
    cfg: dict[str, Any],
    resume: str | Path | None = None,
    task: Task | None = None,
    *,
    preview: Callable[..., Path] | None = None,
) -> Path:
    """Train ``cfg`` (a validated config) and return the run folder.

    Args:
        cfg: validated config (:func:`segdet.config.load_config`).
        resume: a checkpoint to continue from (``weights/last.pt`` of a run); the run continues in
            that checkpoint's run folder, from the step after the one it was written at.
        task: the task object (default: built from ``cfg["task"]``).
        preview: draws the preview grid of the training data for TensorBoard (``train.log``
            with ``tensorboard``, a new run): called like :func:`segdet.preview.write_preview`,
            ``preview(train_ds, classes, RUN/preview.png, ignore_index=..., seed=...)``, which the
            front door passes (the engine does not import it). ``None``: no preview picture.

    Raises:
        ValueError: ``train.log`` asks for ``tensorboard`` and TensorBoard is not installed;
            ``train.metric`` is not computed by the task; ``resume`` is not a readable training
            checkpoint of this config's task and model; ``output_dir`` cannot be written; another
            process trains into the run folder (:class:`RunFolderLocked`) (all before the first step).
        NonFiniteLossError: the loss became NaN/inf.
        UnreadableSampleError: a training sample could not be read (``data.skip_bad`` is off).
        CheckpointWriteError: ``last.pt`` or ``best.pt`` could not be written (full disk, read-only
            folder); the previous file is intact.
        TrainingInterrupted: Ctrl-C (after the current optimizer step and a checkpoint of it).

    Example:
        >>> from segdet.preview import write_preview
        >>> run_dir = train(load_config("configs/unet_cutmix.yaml", ["train.log=[csv,tensorboard]"]),
        ...                 preview=write_preview)  # doctest: +SKIP
    """
    t, seed = cfg["train"], cfg["seed"]
    task = task or build_task(cfg)
    task.check()  # names and specs, before any data is read
    check_metric(t["metric"], task)
    if "tensorboard" in t["log"]:
        require_tensorboard()  # a missing package fails here, not after the data is read
    device = distributed.setup(t)  # joins the torchrun process group when launched by torchrun
    amp = select_amp(t["amp"], device)
    configure_determinism(cfg["deterministic"])
    seed_everything(seed)
    ckpt = load_resume_checkpoint(resume) if resume else None  # a corrupt file: names the newest good one
    if ckpt is not None:
        check_resume_checkpoint(ckpt, resume, cfg)  # a plain state dict or another task's run: before the data
    run_dir, lock = None, None
    if _dist.is_main():  # the lock keeps a second run out of this folder until this one ends
        if resume:
            run_dir = run_dir_of(resume)
            lock = RunLock(run_dir).acquire()
        else:
            run_dir, lock = claim_new_run_dir(cfg["output_dir"])
    loaders: list = []  # _train_in adds its loaders, whose workers are stopped on every way out
    try:
        return _train_in(cfg, task, ckpt, resume, run_dir, device, amp, preview, loaders)
    finally:
        stop_workers(*loaders)
        if lock is not None:
            lock.release()


def _train_in(
    cfg: dict[str, Any],
    task: Task,
    ckpt: dict[str, Any] | None,
    resume: str | Path | None,
    run_dir: Path | None,
    device: torch.device,
    amp: torch.dtype | None,
    preview: Callable[..., Path] | None,
    loaders: list,
) -> Path:
    """The body of :func:`train` once the run folder is locked (``run_dir``: ``None`` on ranks other than 0).

    ``loaders`` receives the training and validation loaders, for the caller to stop their workers.
    """
    t, seed = cfg["train"], cfg["seed"]
    weights_dir = run_dir / "weights" if run_dir else None
    train_ds, val_ds, spec = task.build_datasets()
    check_metric(t["metric"], task, spec.classes)  # a per-class metric names a class of the data
    bs = cfg["data"]["batch_size"]
    workers = auto_num_workers(cfg["data"]["num_workers"], len(train_ds), bs)  # per process; bs too
    generator = torch.Generator()
    collate = task.collate_fn(spec)
    train_loader = make_train_loader(
        train_ds, collate, bs, workers, seed=seed, device=device, generator=generator, skip_bad=cfg["data"]["skip_bad"]
    )
    val_loader = make_val_loader(val_ds, collate, bs, workers, device=device)
    loaders += [train_loader, val_loader]
    batch_mix = BatchMixSchedule(  # checks augment.batch_mix before any step
        cfg["augment"].get("batch_mix") or [],
        task,
        num_classes=spec.num_classes,
        ignore_index=cfg["data"]["ignore_index"],
        seed=seed,
        channels_last=t["channels_last"],
        mode=spec.mode,
    )
    if len(train_loader) == 0:
        raise ValueError(f"the training set has {len(train_ds)} samples: no batch to train on")

    memory_format = torch.channels_last if t["channels_last"] else torch.contiguous_format
    model = task.build_model(spec).to(device, memory_format=memory_format)
    model = distributed.prepare_model(model, t, device)  # SyncBatchNorm (train.sync_bn)
    optimizer = build_optimizer(model, cfg["optim"])
    steps_per_epoch = math.ceil(len(train_loader) / t["accumulate"])
    scheduler = build_scheduler(optimizer, cfg["schedule"], t["epochs"], steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    ema = ModelEMA(model, t["ema"]) if t["ema"] is not None else None

    start_epoch, best, stale, position = 0, None, 0, None
    if ckpt is not None:
        load_resumed_state(model, optimizer, ckpt, resume, cfg)  # this config's lr, the checkpoint's moments
        set_scheduler_step(scheduler, ckpt["scheduler"]["last_epoch"])  # this config's schedule, at that step
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema_state"):
            ema.load_state_dict(ckpt["ema_state"])
        start_epoch, best, stale = ckpt["epoch"], ckpt.get("best_metric"), ckpt.get("stale_epochs", 0)
        position = ckpt.get("position")  # written inside epoch start_epoch + 1: continue after its batch
        then = (position or {}).get("samples"), (position or {}).get("batch_size")
        if position is not None and (then != (len(train_ds), bs) or position["batch"] > len(train_loader)):
            raise ValueError(
                f"--resume {resume} was written inside an epoch of {then[0]} training samples in batches of "
                f"{then[1]}, but this run has {len(train_ds)} in batches of {bs}: the epoch's order would differ, so "
                "it cannot continue that epoch; resume with the run's config.yaml and data"
            )
        if ckpt.get("interrupted") and "position" not in ckpt:  # segdet 0.1: redo that epoch from its first step
            set_scheduler_step(scheduler, start_epoch * steps_per_epoch)
        set_rng_state(ckpt["rng"])
        changed = _changed_keys(ckpt.get("config") or {}, cfg)
        if _dist.is_main():
            at = f", step {position['batch'] // t['accumulate'] + 1}/{steps_per_epoch}" if position else ""
            print(f"resuming {resume} at epoch {start_epoch + 1}/{t['epochs']}{at}")
        if changed and _dist.is_main():
            print(
                f"note: the config differs from the checkpoint's in {', '.join(changed)}; "
                "continuing with the new values"
            )
        if start_epoch >= t["epochs"] and position is None:  # nothing to train: leave the record as it is
            if _dist.is_main():
                print(
                    f"nothing to train: {resume} finished all {start_epoch} epochs of its run; to train longer, "
                    f"resume with train.epochs={start_epoch + max(start_epoch // 2, 1)} (the run folder is unchanged)"
                )
            return run_dir
    model = distributed.wrap_model(model, device, find_unused_parameters=task.ddp_find_unused_parameters)

    if _dist.is_main():
        save_config(cfg, run_dir / "config.yaml")
        print(f"run folder: {run_dir}  (device {device}, amp {amp or 'none'}, {workers} loader workers)")
    log = ResultsLog(run_dir / "results.csv", keep_until=start_epoch) if run_dir and "csv" in t["log"] else None
    evaluator = task.make_evaluator(spec, device)
    tb_on = run_dir is not None and "tensorboard" in t["log"]  # run_dir: rank 0 only
    pictures = ValidationPictures(task, val_ds, collate, spec) if tb_on else None
    done_steps = start_epoch * steps_per_epoch + (position["batch"] // t["accumulate"] if position else 0)
    tb = TensorBoardLog(run_dir / "tensorboard", start_step=done_steps) if tb_on else None
    saved = {"where": None}  # what weights/last.pt holds: named by the errors that offer a resume
    input_size = ckpt.get("input_size") if ckpt else None  # (H, W) of the training batches, for predict

    def checkpoint(epoch_done: int, position: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "model": _dist.unwrap(model).state_dict(),
            "ema": ema.module.state_dict() if ema else None,
            "ema_state": ema.state_dict() if ema else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "epoch": epoch_done,
            "position": position,
            "best_metric": best,
            "stale_epochs": stale,
            "rng": rng_state(),
            "config": cfg,
            "input_size": input_size,
            "interrupted": stop.requested,
            **spec.to_checkpoint(),
        }

    def save_inside(epoch: int, position: dict[str, Any]) -> Path | None:
        """``train_one_epoch``'s checkpoint after an optimizer step of epoch ``epoch`` (rank 0 writes it)."""
        if not _dist.is_main():
            return None
        position = {**position, "samples": len(train_ds), "batch_size": bs}  # what the epoch's order depends on
        path = save_checkpoint(checkpoint(epoch, position), weights_dir / "last.pt")
        saved["where"] = f"epoch {epoch + 1}, step {position['batch'] // t['accumulate']}"
        return path

    def resume_hint() -> tuple[Path | None, str]:
        last = weights_dir / "last.pt" if weights_dir and (weights_dir / "last.pt").is_file() else None
        if last is None:
            return None, "no checkpoint written yet"
        return last, f"last good checkpoint: {last} ({saved['where'] or 'as resumed'})"

    stop = _StopFlag()
    with stop.installed(), tb if tb is not None else contextlib.nullcontext():  # closes the event file
        if tb is not None and preview is not None and ckpt is None:  # once, at the start of a new run
            grid = preview(
                train_ds, spec.classes, run_dir / "preview.png", ignore_index=cfg["data"]["ignore_index"], seed=seed
            )
            tb.image("train/preview", read_png(grid), step=0)
        for epoch in range(start_epoch, t["epochs"]):
            start = time.perf_counter()
            at = position if epoch == start_epoch else None  # the resumed epoch continues after its batch
            seed_everything(epoch_seed(seed, epoch))
            generator.manual_seed(epoch_seed(seed, epoch))
            set_loader_epoch(train_loader, epoch, at["batch"] if at else 0)
            train_loader.reset_skipped()
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            mixing = batch_mix.for_epoch(epoch, device, _dist.rank())  # augment.batch_mix, on the device
            if at is not None:  # the generators as they were after that batch
                set_rng_state(ckpt["rng"])
                if mixing is not None and at.get("batch_mix_rng") is not None:
                    mixing.generator.set_state(at["batch_mix_rng"])
            try:
                with distributed.watch(f"training epoch {epoch + 1} (gradient all-reduce of a step)"):
                    stats = train_one_epoch(
                        task,
                        model,
                        waits := DataWaitMeter(train_loader),
                        optimizer,
                        scheduler,
                        scaler,
                        ema,
                        device,
                        amp,
                        t,
                        epoch,
                        stop,
                        mixing,
                        tb,
                        start=at,
                        save=functools.partial(save_inside, epoch),
                    )
            except NonFiniteLossError as exc:
                last, where = resume_hint()
                hint = "Try train.clip_grad_norm=1.0 or a lower optim.lr"
                text = f"{where}. {hint}, then resume from {last}" if last else f"{where}. {hint}"
                raise NonFiniteLossError(f"{exc}; {text}", checkpoint=last) from None
            except UnreadableSampleError as exc:
                last, where = resume_hint()
                then = f"; after that, resume from {last}" if last else ""
                raise UnreadableSampleError(f"{exc} (epoch {epoch + 1}); {where}{then}", checkpoint=last) from None
            stats["data_wait"] = round(waits.fraction(), 4)  # share of the epoch spent waiting for batches
            skipped = stats.pop("skipped")
            input_size = stats.pop("input_size") or input_size
            validated = is_validation_epoch(epoch, t["epochs"], t["val_interval"])
            metrics, improved = {}, False
            if validated:
                eval_model = distributed.broadcast_module(ema.module if ema else _dist.unwrap(model))  # rank 0's
                metrics = validate(eval_model, val_loader, evaluator, device, amp, t["progress"] and _dist.is_main())
                score = metrics.get(t["metric"])
                if score is None:
                    raise ValueError(
                        f"train.metric {t['metric']!r} is not computed by the {task.name} evaluator; "
                        f"choose one of {', '.join(metrics)}"
                    )
                improved = not math.isnan(score) and (best is None or score > best)
                best, stale = (score, 0) if improved else (best, stale + 1)
            if _dist.is_main():
                row = {"epoch": epoch + 1, **stats, **metrics, "time_s": round(time.perf_counter() - start, 2)}
                if log is not None:
                    log.append(row)
                if tb is not None:
                    tb.epoch(row, metrics)
                    if validated:
                        tb.images("val/prediction", pictures.draw(eval_model, device, amp))
                save_checkpoint(checkpoint(epoch + 1), weights_dir / "last.pt")
                saved["where"] = f"end of epoch {epoch + 1}"
                if improved:  # the same file: a hard link, no second write
                    copy_checkpoint(weights_dir / "last.pt", weights_dir / "best.pt")
                scored = f"{t['metric']} {score:.4f}  " if validated else "(not validated)  "
                print(
                    f"epoch {epoch + 1}/{t['epochs']}  loss {stats['loss']:.4f}  {scored}"
                    + (f"best {best:.4f}  " if best is not None else "")
                    + (f"skipped {skipped} unreadable samples  " if skipped else "")
                    + f"({row['time_s']:.1f} s)",
                    flush=True,
                )
            if distributed.any_rank(stop.requested, device):
                raise TrainingInterrupted(weights_dir / "last.pt" if weights_dir else None)
            if validated and t["patience"] is not None and stale >= t["patience"]:
                print(f"early stop: {t['metric']} has not improved for {stale} validations")
                break
    if _dist.is_main():
        if t["val_interval"] is None and (weights_dir / "last.pt").exists():  # never scored: the last weights
            copy_checkpoint(weights_dir / "last.pt", weights_dir / "best.pt")
        if log is not None:
            plot_results(run_dir / "results.csv", run_dir / "results.png")
        print(f"done: {run_dir}  best {t['metric']} {best:.4f}" if best is not None else f"done: {run_dir}")
    return run_dir


def is_validation_epoch(epoch: int, epochs: int, interval: int | None) -> bool:
    """Whether the 0-based ``epoch`` is validated: every ``interval``-th one and the last of ``epochs``; ``None``: none.

    Example:
        >>> [e + 1 for e in range(10) if is_validation_epoch(e, 10, 4)]
        [4, 8, 10]
    """
    if interval is None:
        return False
    return (epoch + 1) % interval == 0 or epoch + 1 == epochs


def train_one_epoch(
    task: Task,
    model: nn.Module,
    loader,
    optimizer,
    scheduler,
    scaler,
    ema: ModelEMA | None,
    device: torch.device,
    amp: torch.dtype | None,
    train_cfg: dict[str, Any],
    epoch: int,
    stop: _StopFlag,
    batch_mix: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    tb: TensorBoardLog | None = None,
    *,
    start: dict[str, Any] | None = None,
    save: Callable[[dict[str, Any]], Path | None] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss terms, the last LR, the skipped samples and the input size.

    ``skipped`` counts the samples ``data.skip_bad`` left out; ``input_size`` is ``[H, W]`` of the
    first batch when batches are one stacked image tensor (else ``None``); the caller pops both.

    The loss stays on the device: it is read back to the host only when the progress bar or a
    plain progress line shows it, before a checkpoint and at the end of the epoch. A NaN/inf loss
    is recorded on the device (its batch, value and terms) and raised at the next of those reads,
    before anything is saved, so a checkpoint never holds the weights it spoiled.

    Args:
        task: gives the loss of a batch.
        model: the model being trained (DDP-wrapped under torchrun).
        loader: the training batches of this epoch (a resumed epoch: the batches after ``start``).
        optimizer: steps every ``accumulate`` batches.
        scheduler: steps after every optimizer step.
        scaler: the GradScaler (enabled for fp16 autocast only).
        ema: averaged weights updated after every optimizer step, or ``None``.
        device: where batches go.
        amp: autocast dtype, or ``None`` for full precision.
        train_cfg: the ``train`` section (``accumulate``, ``clip_grad_norm``, ``channels_last``,
            ``progress``, ``epochs``, ``checkpoint_every``).
        epoch: 0-based epoch (for the progress bar and error messages).
        stop: the Ctrl-C flag, checked after every optimizer step.
        batch_mix: mixes each batch on the device (``BatchMixSchedule.for_epoch``), or ``None``.
        tb: the TensorBoard log, given every batch's loss and terms and every step's learning
            rate (no extra host synchronisation), or ``None``.
        start: the ``position`` of a checkpoint written inside this epoch (``batch`` done, running
            ``sums``, ``n``, ``images``, ``skipped``): the pass continues after it, as if never stopped.
        save: writes a checkpoint of the given position (see ``start``) and returns its path; called
            every ``checkpoint_every`` optimizer steps inside the epoch and when Ctrl-C was pressed.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch, the step and the terms).
        TrainingInterrupted: Ctrl-C, after the optimizer step it came in and the checkpoint of it
            (``save``); not at the last step, whose epoch end the caller saves.
    """
    t = train_cfg
    accumulate, clip, every = t["accumulate"], t["clip_grad_norm"], t.get("checkpoint_every")
    model.train()
    first = int(start["batch"]) if start else 0
    sums: dict[str, torch.Tensor] = {k: v.to(device) for k, v in start["sums"].items()} if start else {}
    n, images = (int(start["n"]), int(start["images"])) if start else (0, 0)
    skipped_before = int(start.get("skipped", 0)) if start else 0
    watch, total, timed, begin = _FiniteWatch(device), len(loader), 0, time.perf_counter()
    input_size = None
    bar = Progress(loader, f"epoch {epoch + 1}/{t['epochs']}", enabled=t["progress"] and _dist.is_main(), start=first)
    for i, batch in enumerate(bar, start=first):
        batch = to_device(batch, device, t["channels_last"])
        if input_size is None and isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
            input_size = list(batch["image"].shape[-2:])  # what the model is trained on (stacked batches)
        if batch_mix is not None:
            batch = batch_mix(batch)
        with autocast(device, amp):
            loss, terms = task.loss(model, batch)
        watch.record(i, loss, terms)  # on the device: no host synchronisation
        if tb is not None:
            tb.batch(loss, terms)
        if i % accumulate == 0:  # first micro-batch of a step; zeroing here rather than after the
            optimizer.zero_grad(set_to_none=True)  # step lets backward reuse the freed memory (faster)
        scaler.scale(loss / accumulate).backward()
        stepped = (i + 1) % accumulate == 0 or i + 1 == total
        if stepped:
            if clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update(_dist.unwrap(model))
            if tb is not None:
                tb.step(lr)
        for k, v in {"loss": loss, **terms}.items():
            sums[k] = sums.get(k, 0.0) + v.detach().float()
        n += 1
        images += batch_size(batch)
        timed += batch_size(batch)
        if bar.due(i + 1):  # the one read of the loss: when it is shown
            watch.check(epoch)
            bar.update(  # the epoch's mean loss so far
                i + 1,
                loss=float(sums["loss"]) / n,
                lr=optimizer.param_groups[0]["lr"],
                img_s=timed / (time.perf_counter() - begin),
            )
        if stepped and i + 1 < total:
            stopping = distributed.any_rank(stop.requested, device)  # every rank stops after the same step
            if stopping or (every is not None and ((i + 1) // accumulate) % every == 0):
                watch.check(epoch)  # never save weights a NaN step spoiled
                position = {
                    "batch": i + 1,
                    "sums": {k: v.detach().cpu() for k, v in sums.items()},
                    "n": n,
                    "images": images,
                    "skipped": skipped_before + len(_skipped(loader)),
                    "batch_mix_rng": getattr(batch_mix, "generator", None) and batch_mix.generator.get_state(),
                }
                path = save(position) if save is not None else None
                if stopping:
                    raise TrainingInterrupted(path)
    watch.check(epoch)
    stats = {f"train/{k}" if k != "loss" else "loss": float(v) / n for k, v in sums.items()}
    stats["lr"] = optimizer.param_groups[0]["lr"]
    stats["images_per_s"] = round(timed / (time.perf_counter() - begin), 2)
    stats["skipped"] = skipped_before + len(_skipped(loader))
    stats["input_size"] = input_size
    return stats


def _skipped(loader: Any) -> list:
    """The samples the training loader skipped this epoch (``data.skip_bad``), through any wrappers."""
    while loader is not None and not hasattr(loader, "skipped"):
        loader = getattr(loader, "loader", None) or getattr(loader, "iterable", None)
    return loader.skipped if loader is not None else []


class _FiniteWatch:
    """The first batch of an epoch whose loss is NaN/inf, its loss and terms, kept on the device.

    :meth:`record` costs a few element-wise operations and no host synchronisation;
    :meth:`check` reads one number back and raises when a batch was bad.
    """

    def __init__(self, device: torch.device) -> None:
        self.first = torch.zeros((), dtype=torch.long, device=device)  # 1-based batch; 0: none yet
        self.value = torch.zeros((), dtype=torch.float32, device=device)
        self.terms: dict[str, torch.Tensor] = {}

    def record(self, i: int, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Remember batch ``i`` (0-based) if its loss is the epoch's first that is not finite."""
        value = loss.detach().float().reshape(())
        new = (self.first == 0) & ~torch.isfinite(value)
        self.first = torch.where(new, i + 1, self.first)
        self.value = torch.where(new, value, self.value)
        for k, v in terms.items():
            old = self.terms.get(k)
            v = v.detach().float().reshape(())
            self.terms[k] = torch.where(new, v, old if old is not None else torch.full_like(v, math.nan))

    def check(self, epoch: int) -> None:
        """Raise :class:`NonFiniteLossError` if a recorded batch had a NaN/inf loss (one host read)."""
        step = int(self.first)
        if step:
            raise NonFiniteLossError(
                f"the loss is {float(self.value)} at epoch {epoch + 1}, step {step} "
                f"(terms: {', '.join(f'{k}={float(v):.4g}' for k, v in self.terms.items())})"
            )


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


class _StopFlag:
    """Turns the first Ctrl-C into a flag the loop checks after each step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupt: finishing this optimizer step, then saving weights/last.pt (Ctrl-C again to abort now)",
            flush=True,
        )

    @contextlib.contextmanager
    def installed(self):
        """Install the handler for the duration of the block (main thread only)."""
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._handler)
        try:
            yield self
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
