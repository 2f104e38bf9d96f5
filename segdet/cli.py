r"""The ``segdet`` command line: train, eval, predict, preview, export, init.

Examples::

    segdet train configs/unet_cutmix.yaml
    segdet train configs/unet_cutmix.yaml train.epochs=3 model.encoder=resnet34
    segdet train configs/unet_cutmix.yaml --resume            # latest weights/last.pt of output_dir
    segdet eval configs/unet_cutmix.yaml --checkpoint runs/unet_cutmix/weights/best.pt
    segdet predict configs/unet_cutmix.yaml --checkpoint runs/unet_cutmix/weights/best.pt \
        --input photos/ --output predictions/
    segdet preview configs/unet_cutmix.yaml --output preview.png
    segdet export configs/unet_cutmix.yaml --checkpoint runs/unet_cutmix/weights/best.pt \
        --format onnx --output unet.onnx
    torchrun --nproc_per_node=4 -m segdet train configs/unet_cutmix.yaml   # DDP, batch_size per GPU
    segdet init data/nuclei --output nuclei.yaml --minutes 10   # a config planned from the data

Bad input (config, paths, names) prints one ``segdet: error: ...`` message and exits with status 2;
set ``SEGDET_DEBUG=1`` to see the traceback. Ctrl-C during training finishes the optimizer step,
saves ``weights/last.pt`` and exits with status 130; every message that offers a resume prints the
whole command, the run's overrides included.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

_RESUME_LATEST = "<latest>"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``segdet`` command and its six subcommands."""
    parser = argparse.ArgumentParser(prog="segdet", description="Segmentation and detection training.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    override_help = "config overrides key.sub=value (YAML values), e.g. train.epochs=3 augment.mix=[]"

    p = sub.add_parser("train", help="train a config")
    p.add_argument("config", type=Path, help="YAML config")
    p.add_argument("overrides", nargs="*", help=override_help)
    p.add_argument(
        "--resume",
        nargs="?",
        const=_RESUME_LATEST,
        default=None,
        metavar="PATH",
        help="continue from PATH, or (no PATH) from the latest weights/last.pt of output_dir",
    )

    p = sub.add_parser("eval", help="evaluate a checkpoint on the config's validation set")
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*", help=override_help)
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pt written by segdet train")
    p.add_argument("--output", type=Path, default=None, help="report folder (default: RUN/eval)")
    p.add_argument(
        "--worst", type=int, default=8, metavar="K", help="picture the K images scored worst in worst.png (default: 8)"
    )

    p = sub.add_parser("predict", help="run a checkpoint on images")
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*", help=override_help)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True, help="an image, a folder of images or a .txt list")
    p.add_argument("--output", type=Path, required=True, help="folder for masks and overlays")

    p = sub.add_parser("preview", help="write a grid of augmented training samples")
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*", help=override_help)
    p.add_argument("--output", type=Path, default=None, help="PNG file (default: OUTPUT_DIR/preview.png)")
    p.add_argument("--num", type=int, default=16, help="samples in the grid")

    p = sub.add_parser("export", help="write a checkpoint as an ONNX or TorchScript file")
    p.add_argument("config", type=Path)
    p.add_argument("overrides", nargs="*", help=override_help)
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pt written by segdet train")
    p.add_argument("--format", default="onnx", metavar="onnx|torchscript", help="file format (default: onnx)")
    p.add_argument("--output", type=Path, required=True, help="the file to write, e.g. model.onnx")

    p = sub.add_parser("init", help="write a commented config planned from a dataset folder and a time budget")
    p.add_argument("data", type=Path, help="folder with train/ and val/ (images/ + masks/ each), or images/ + masks/")
    p.add_argument("--output", type=Path, required=True, help="the YAML config to write, e.g. nuclei.yaml")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget, validation included (default: 10)")
    p.add_argument("--task", default="segmentation", help="segmentation (detection is not supported yet)")
    p.add_argument("--force", action="store_true", help="overwrite CONFIG and its split files")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``segdet`` script and ``python -m segdet``; returns the exit status."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input; ConfigError is a ValueError
        if os.environ.get("SEGDET_DEBUG"):
            raise
        checkpoint = getattr(exc, "checkpoint", None)  # an unreadable sample mid-epoch
        print(f"segdet: error: {_worker_message(exc)}{_resume_with(args, checkpoint)}", file=sys.stderr)
        return 2
    except BaseException as exc:  # imported here so that config errors never wait for torch
        from .checkpoint import CheckpointWriteError
        from .engine import NonFiniteLossError, TrainingInterrupted
        from .engine.distributed import DistributedTimeout

        if isinstance(exc, NonFiniteLossError):
            print(f"segdet: stopped: {exc}{_resume_with(args, exc.checkpoint)}", file=sys.stderr)
            return 1
        if isinstance(exc, CheckpointWriteError) and not os.environ.get("SEGDET_DEBUG"):
            previous = exc.path if exc.path.name == "last.pt" and exc.path.is_file() else None
            print(f"segdet: error: {exc}{_resume_with(args, previous)}", file=sys.stderr)
            return 1
        if isinstance(exc, DistributedTimeout) and not os.environ.get("SEGDET_DEBUG"):
            print(f"segdet: stalled: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, TrainingInterrupted):
            print(f"segdet: interrupted{_resume_with(args, exc.checkpoint)}", file=sys.stderr)
            return 130
        if isinstance(exc, KeyboardInterrupt):
            print("segdet: interrupted", file=sys.stderr)
            return 130
        raise


_WORKER_ERROR = re.compile(r"^Caught (\w+) in (DataLoader worker process \d+)\.\nOriginal Traceback", re.S)


def _worker_message(exc: BaseException) -> str:
    """The message of ``exc``; for an error torch re-raised from a loader worker, the worker's own.

    torch re-raises a worker's exception with the worker's whole traceback as its message; the
    user needs its last line, where the error was raised (``SEGDET_DEBUG=1`` keeps the rest).
    """
    text = str(exc)
    found = _WORKER_ERROR.match(text)
    if found is None:
        return text
    name, where = found.groups()
    raised = list(re.finditer(rf"\n(?:[\w.]+\.)?{name}: ", text))  # the traceback's last line: [module.]Name: ...
    if not raised:
        return text
    return f"{text[raised[-1].end() :].strip()} (raised in {where}; SEGDET_DEBUG=1 shows its traceback)"


def _resume_with(args: argparse.Namespace, checkpoint: Path | None) -> str:
    """``; resume with: segdet train CONFIG OVERRIDES --resume CHECKPOINT`` (empty without a checkpoint).

    The overrides are the ones this command was given, so the resumed run trains the same config.
    """
    if checkpoint is None or getattr(args, "command", None) != "train":
        return ""
    words = ["segdet", "train", str(args.config), *getattr(args, "all_overrides", args.overrides)]
    return "; resume with: " + shlex.join([*words, "--resume", str(checkpoint)])


def _run(args: argparse.Namespace) -> int:
    from .config import load_config

    if args.command == "init":  # plans a config: there is none to load yet
        from .planner import init_config

        init_config(args.data, args.output, minutes=args.minutes, task=args.task, force=args.force)
        return 0

    overrides = list(args.overrides)
    resume = getattr(args, "resume", None)
    if resume is not None and resume != _RESUME_LATEST and "=" in resume and not Path(resume).exists():
        overrides.append(resume)  # `--resume key=value`: the value was an override, not a path
        resume = _RESUME_LATEST
    args.all_overrides = overrides  # what a printed resume command repeats
    cfg = load_config(args.config, overrides)

    if args.command == "train":
        from .engine import train
        from .engine._rundir import find_last_checkpoint
        from .preview import write_preview

        if resume == _RESUME_LATEST:
            resume = find_last_checkpoint(cfg["output_dir"])
        train(cfg, resume=resume, preview=write_preview)  # the preview grid goes to TensorBoard (train.log)
    elif args.command == "eval":
        from .engine import evaluate

        metrics, table = evaluate(cfg, args.checkpoint, args.output, worst=args.worst)
        if table:  # empty on ranks other than 0 under torchrun
            print(table)
    elif args.command == "predict":
        from .engine import predict

        paths = predict(cfg, args.checkpoint, args.input, args.output)
        print(f"wrote masks and overlays of {len(paths)} image(s) to {args.output}")
    elif args.command == "preview":
        from .preview import write_preview
        from .task import build_task

        if args.num < 1:
            raise ValueError(f"--num must be at least 1, got {args.num}")
        task = build_task(cfg)
        train_ds, _, spec = task.build_datasets()
        out = args.output or Path(cfg["output_dir"]) / "preview.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_preview(
            train_ds, spec.classes, out, num=args.num, ignore_index=cfg["data"]["ignore_index"], seed=cfg["seed"]
        )
        print(f"wrote {out}")
    elif args.command == "export":
        from .engine import export

        out = export(cfg, args.checkpoint, args.format, args.output)
        print(f"wrote {out} ({args.format})")
    return 0
