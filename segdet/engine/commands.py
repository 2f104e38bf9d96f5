"""``segdet eval`` and ``segdet predict``: a trained checkpoint on the validation set or on files."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from segdet._files import collect_image_paths, write_png
from segdet.checkpoint import inference_state_dict, load_checkpoint
from segdet.task import DataSpec, Task, build_task

from . import _dist, distributed
from ._preflight import warn_large_inputs
from ._rundir import check_output_dir, run_dir_of
from ._runtime import select_amp, select_device
from .loader import auto_num_workers, make_val_loader
from .validate import validate

__all__ = [
    "evaluate",
    "predict",
    "load_trained_model",
    "inference_spec",
    "check_checkpoint_mode",
    "check_output_folder",
]


def load_trained_model(
    task: Task, spec: DataSpec, checkpoint: str | Path | dict[str, Any], source: str | Path | None = None
) -> nn.Module:
    """Build the task's model for ``spec`` and load the checkpoint's inference weights (EMA when present).

    Args:
        task: the task of the config.
        spec: the classes the model predicts.
        checkpoint: a ``.pt`` written by ``segdet train``, or the dict :func:`load_checkpoint` read from it.
        source: the file a checkpoint dict was read from, for error messages.

    Raises:
        FileNotFoundError / ValueError: missing or unreadable checkpoint, or weights that do not fit.
    """
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    model = task.build_model(spec)
    state = inference_state_dict(ckpt)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        name = source if isinstance(checkpoint, dict) else checkpoint
        where = f"checkpoint {name}" if name is not None else "the checkpoint"
        raise ValueError(
            f"{where} does not fit the model of this config "
            f"(model.arch/model.encoder/data.classes differ?): {str(exc).splitlines()[0]}"
        ) from None
    return model.eval()


def inference_spec(task: Task, cfg: dict[str, Any], ckpt: dict[str, Any]) -> DataSpec:
    """The classes a trained model predicts: the checkpoint's, renamed by ``data.classes`` when the config sets it.

    The model's segmentation mode (``data.mode``) is the checkpoint's: a binary model has one
    output channel whatever the config says. Its ``data.threshold`` is the config's when the
    config is of the same mode (so ``data.threshold=0.3`` on the command line applies), else
    the checkpoint's. A checkpoint without class names (written before segdet stored them)
    reads them from the data.
    """
    spec = DataSpec.from_checkpoint(ckpt)  # written by segdet train
    if spec is None:  # a checkpoint without class names: read them from the data
        _, _, spec = task.build_datasets()
        return spec
    data = cfg["data"]
    if data["classes"] is not None:  # names given in the config win, as in training
        spec = dataclasses.replace(spec, classes=tuple(data["classes"]))
    if (data.get("mode") or "multiclass") == spec.mode and "threshold" in data:
        spec = dataclasses.replace(spec, threshold=data["threshold"])
    return spec


def check_checkpoint_mode(spec: DataSpec, ckpt: dict[str, Any], checkpoint: str | Path) -> None:
    """Stop when the data's mode (the config's ``data.mode``) is not the one the checkpoint was trained in.

    Raises:
        ValueError: the two modes differ; the message names both and the override that fits.
    """
    trained = DataSpec.from_checkpoint(ckpt)
    mode = trained.mode if trained is not None else "multiclass"
    if mode != spec.mode:
        raise ValueError(
            f"checkpoint {checkpoint} was trained with data.mode {mode} but the config says data.mode "
            f"{spec.mode}; set data.mode={mode} (the masks are read and scored in the model's mode)"
        )


def _without_init_weights(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    if "weights" in cfg.get("model", {}):
        cfg["model"]["weights"] = None  # the checkpoint replaces them
    return cfg


def evaluate(
    cfg: dict[str, Any], checkpoint: str | Path, output: str | Path | None = None, worst: int = 8
) -> tuple[dict[str, float], str]:
    """Score ``checkpoint`` on the config's validation set with the same pass as training.

    Args:
        cfg: validated config.
        checkpoint: a ``.pt`` written by ``segdet train``.
        output: report folder (default: ``eval/`` in the checkpoint's run folder).
        worst: the task's picture of the ``worst`` samples it scored lowest, ``worst.png`` in
            the report folder (segmentation: image | ground truth | prediction); 0 writes none.

    Returns:
        The metrics dict and the printable report table.

    Raises:
        ValueError: ``worst`` is negative; the report folder is a file or cannot be written
            (checked before any work).
    """
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 0:
        raise ValueError(f"--worst must be a whole number >= 0 (0: no worst.png), got {worst!r}")
    out_dir = Path(output) if output else run_dir_of(checkpoint) / "eval"
    check_output_dir(out_dir, "--output", create=False)  # a file in the way or a read-only folder: before any work
    cfg = _without_init_weights(cfg)
    task = build_task(cfg)
    device = distributed.setup(cfg["train"])  # under torchrun: each process scores its share of the batches
    _, val_ds, spec = task.build_datasets()
    ckpt = load_checkpoint(checkpoint)
    check_checkpoint_mode(spec, ckpt, checkpoint)
    model = load_trained_model(task, spec, ckpt, checkpoint).to(device)
    bs = cfg["data"]["batch_size"]
    loader = make_val_loader(
        val_ds, task.collate_fn(spec), bs, auto_num_workers(cfg["data"]["num_workers"], len(val_ds), bs), device=device
    )
    evaluator = task.make_evaluator(spec, device)
    amp = select_amp(cfg["train"]["amp"], device)
    metrics = validate(model, loader, evaluator, device, amp, progress=cfg["train"]["progress"] and _dist.is_main())
    if not _dist.is_main():  # the metrics are the same on every rank; rank 0 writes the report
        return metrics, ""
    check_output_dir(out_dir, "--output")
    table = evaluator.report(out_dir, names=getattr(val_ds, "names", None))
    picture = task.worst_picture(model, val_ds, spec, evaluator, worst, device, amp) if worst else None
    if picture is not None:
        write_png(out_dir / "worst.png", picture)
        table += f"\nthe {min(worst, len(val_ds))} images of lowest mean IoU: {out_dir / 'worst.png'}"
    return metrics, table


def predict(cfg: dict[str, Any], checkpoint: str | Path, inputs: str | Path, output: str | Path) -> list[Path]:
    """Run ``checkpoint`` on an image file or every image in a folder; outputs go under ``output``.

    Returns:
        The image files processed.

    Raises:
        FileNotFoundError / ValueError: ``inputs`` does not exist or holds no image files;
            ``output`` is a file, or an input image lies in ``output`` or a folder below it (the
            outputs, ``<stem>.png`` among them, could overwrite it), or a file in the way or a
            read-only folder keeps it from being written; all checked before any work.
    """
    paths = collect_image_paths(inputs)
    check_output_folder(paths, output)
    check_output_dir(output, "--output", create=False)
    cfg = _without_init_weights(cfg)
    task = build_task(cfg)
    ckpt = load_checkpoint(checkpoint)
    spec = inference_spec(task, cfg, ckpt)
    device = select_device(cfg["train"]["device"])
    model = load_trained_model(task, spec, ckpt, checkpoint).to(device)
    warn_large_inputs(paths, ckpt, cfg.get("inference"))  # whole images far above the training size
    out = check_output_dir(output, "--output")
    task.predict(model, spec, paths, out, device, select_amp(cfg["train"]["amp"], device))
    return paths


def check_output_folder(inputs: list[Path], output: str | Path) -> None:
    """Stop before predicting when writing under ``output`` could overwrite an input image.

    A task names its output files after the inputs (``<stem>.png`` and more, in ``output`` and in
    folders below it), so no input image may lie in ``output`` or below it; ``--input photos
    --output photos/pred`` is fine, ``--output photos`` is not.

    Raises:
        ValueError: ``output`` exists and is not a folder, or holds an input image; the message
            names the folder, the first such image and a folder that would do.
    """
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; give a folder for the predictions")
    root = out.resolve()
    inside = [p for p in inputs if root in p.resolve().parents]
    if inside:
        more = f" and {len(inside) - 1} more" if len(inside) > 1 else ""
        raise ValueError(
            f"--output {out} holds the input image {inside[0]}{more}: the predictions written there (named after "
            f"the inputs, e.g. {inside[0].stem}.png) could overwrite them; choose an output folder that holds none "
            f"of the inputs, e.g. --output {out / 'predictions'}"
        )
