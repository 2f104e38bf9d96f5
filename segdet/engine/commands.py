"""``segdet eval`` and ``segdet predict``: a trained checkpoint on the validation set or on files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import inference_state_dict, load_checkpoint
from ..task import Task
from ..tasks import build_task
from . import _dist, distributed
from ._rundir import run_dir_of
from ._runtime import select_amp, select_device
from .loader import auto_num_workers, make_val_loader
from .validate import validate

__all__ = ["evaluate", "predict", "load_trained_model"]


def load_trained_model(task: Task, checkpoint: str | Path) -> nn.Module:
    """Build the task's model and load the checkpoint's inference weights (EMA when present).

    Raises:
        FileNotFoundError / ValueError: missing or unreadable checkpoint, or weights that do not fit.
    """
    ckpt = load_checkpoint(checkpoint)
    model = task.build_model()
    state = inference_state_dict(ckpt)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit the model of this config "
            f"(model.arch/model.encoder/data.classes differ?): {str(exc).splitlines()[0]}"
        ) from None
    return model.eval()


def _without_init_weights(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(cfg)
    if "weights" in cfg.get("model", {}):
        cfg["model"]["weights"] = None  # the checkpoint replaces them
    return cfg


def evaluate(
    cfg: dict[str, Any], checkpoint: str | Path, output: str | Path | None = None
) -> tuple[dict[str, float], str]:
    """Score ``checkpoint`` on the config's validation set with the same pass as training.

    Args:
        cfg: validated config.
        checkpoint: a ``.pt`` written by ``segdet train``.
        output: report folder (default: ``eval/`` in the checkpoint's run folder).

    Returns:
        The metrics dict and the printable report table.
    """
    cfg = _without_init_weights(cfg)
    task = build_task(cfg)
    device = distributed.setup(cfg)  # under torchrun: each process scores its share of the batches
    _, val_ds = task.build_datasets()
    model = load_trained_model(task, checkpoint).to(device)
    bs = cfg["data"]["batch_size"]
    loader = make_val_loader(
        val_ds, task.collate, bs, auto_num_workers(cfg["data"]["num_workers"], len(val_ds), bs), device=device
    )
    evaluator = task.make_evaluator(device)
    metrics = validate(
        model,
        loader,
        evaluator,
        device,
        select_amp(cfg["train"]["amp"], device),
        progress=cfg["train"]["progress"] and _dist.is_main(),
    )
    if not _dist.is_main():  # the metrics are the same on every rank; rank 0 writes the report
        return metrics, ""
    out_dir = Path(output) if output else run_dir_of(checkpoint) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = evaluator.report(out_dir)
    return metrics, table


def predict(cfg: dict[str, Any], checkpoint: str | Path, inputs: str | Path, output: str | Path) -> list[Path]:
    """Run ``checkpoint`` on an image file or every image in a folder; outputs go under ``output``.

    Returns:
        The image files processed.

    Raises:
        FileNotFoundError / ValueError: ``inputs`` does not exist or holds no image files.
    """
    from .._files import collect_image_paths

    paths = collect_image_paths(inputs)
    cfg = _without_init_weights(cfg)
    task = build_task(cfg)
    if getattr(task, "classes", "unset") is None:  # class names come from the data
        saved = load_checkpoint(checkpoint).get("classes")  # written by segdet train
        if saved:
            task.classes = list(saved)
        else:
            task.build_datasets()
    device = select_device(cfg["train"]["device"])
    model = load_trained_model(task, checkpoint).to(device)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    task.predict(model, paths, out, device)
    return paths
