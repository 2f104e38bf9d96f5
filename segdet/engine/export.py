"""``segdet export``: a trained checkpoint as one ONNX or TorchScript file that runs without segdet.

The task turns the trained model into an :class:`~segdet.task.Exportable` (tensors in, tensors
out, the axes that vary); this module writes it. ONNX goes through ``torch.onnx.export`` (the
``torch.export`` exporter, or the older tracing exporter where the task asks for it), TorchScript
through ``torch.jit.script``. Everything is built in memory and written with one atomic rename,
so a failed export leaves no file (and an older file at ``output`` untouched). The checkpoint's
class names travel in the file: ONNX metadata ``classes`` and the TorchScript extra file
``classes.json``, both a JSON list.

Example:
    >>> from segdet.config import load_config
    >>> from segdet.engine import export
    >>> export(load_config("configs/unet_cutmix.yaml"), "runs/unet_cutmix/weights/best.pt",
    ...        "onnx", "unet.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from segdet._atomic import atomic_write, atomic_write_bytes
from segdet._suggest import did_you_mean
from segdet.checkpoint import load_checkpoint
from segdet.task import EXPORT_FORMATS, Exportable, build_task

from .commands import _without_init_weights, inference_spec, load_trained_model

__all__ = ["export"]

#: ONNX opset of the tracing exporter (the ``torch.export`` one picks its own)
TRACING_OPSET = 17


def export(cfg: dict[str, Any], checkpoint: str | Path, fmt: str, output: str | Path) -> Path:
    """Write the model of ``checkpoint`` (EMA weights when present) to ``output`` as ``fmt``.

    Args:
        cfg: validated config (its model section must match the checkpoint's model).
        checkpoint: a ``.pt`` written by ``segdet train``; its class names are used (the config's
            ``data.classes`` win when set, as in ``segdet predict``).
        fmt: ``"onnx"`` or ``"torchscript"``.
        output: the file to write; its folder is created if missing.

    Returns:
        The written file.

    Raises:
        ValueError: unknown format, an output that cannot be written, a checkpoint that does not
            fit the config, a model that does not export to ``fmt`` (the message names it), or
            the ONNX packages missing.
        FileNotFoundError: the checkpoint does not exist.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format --format {fmt!r}{did_you_mean(fmt, EXPORT_FORMATS, n=1)}; "
            f"use one of {', '.join(EXPORT_FORMATS)}"
        )
    out = _check_output(Path(output))
    if fmt == "onnx":
        _require_onnx()
    cfg = _without_init_weights(cfg)
    task = build_task(cfg)
    ckpt = load_checkpoint(checkpoint)
    spec = inference_spec(task, cfg, ckpt)
    model = load_trained_model(task, spec, ckpt).cpu()
    exportable = task.export_module(model, fmt)
    classes = json.dumps(list(spec.classes))
    with torch.no_grad():
        if fmt == "onnx":
            atomic_write_bytes(out, _onnx_bytes(exportable, {"classes": classes}))
        else:
            with _torchscript_quiet():
                scripted = torch.jit.script(exportable.module)
                atomic_write(out, lambda f: torch.jit.save(scripted, f, _extra_files={"classes.json": classes}))
    return out


def _check_output(out: Path) -> Path:
    """Fail before any work when ``out`` cannot be written (nothing is created here)."""
    if out.is_dir():
        raise ValueError(f"--output {out} is a folder; give the file to write, e.g. {out / 'model.onnx'}")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write --output {out}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write --output {out}: folder {folder} is not writable ({exc.strerror})") from None
    return out


def _require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(
            f"ONNX export needs the package(s) {', '.join(missing)}: pip install 'segdet[export]' "
            "(onnx, onnxscript and onnxruntime)"
        )


def _onnx_bytes(ex: Exportable, metadata: dict[str, str]) -> bytes:
    """The serialised ONNX model of ``ex``, with ``metadata`` as its metadata properties."""
    import onnx

    if ex.onnx_exporter == "dynamo":
        # Dim.AUTO, not named Dims: named ones make torch.export reject the size-1 feature maps of
        # tiny inputs and retry (twice the time); the axes get their names back below, and an axis
        # the exporter fixed after all is an error there
        shapes = tuple(
            {axis: torch.export.Dim.AUTO for axis in ex.dynamic_axes[name]} if name in ex.dynamic_axes else None
            for name in ex.input_names
        )
        program = torch.onnx.export(
            ex.module,
            ex.example,
            dynamo=True,
            input_names=list(ex.input_names),
            output_names=list(ex.output_names),
            dynamic_shapes=shapes,
            external_data=False,
            verbose=False,
        )
        proto = program.model_proto
        _name_dynamic_axes(proto.graph, ex.dynamic_axes)
    elif ex.onnx_exporter == "torchscript":
        buf = io.BytesIO()
        with warnings.catch_warnings():  # PyTorch deprecated this exporter; it is the one torchvision's detectors pass
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*[Tt]he feature will be removed.*")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")  # torchvision's transform
            warnings.filterwarnings("ignore", message="Exporting aten::index operator")  # no negative indices here
            torch.onnx.export(
                ex.module,
                ex.example,
                buf,
                dynamo=False,
                input_names=list(ex.input_names),
                output_names=list(ex.output_names),
                dynamic_axes={k: dict(v) for k, v in ex.dynamic_axes.items()},
                opset_version=TRACING_OPSET,
            )
        proto = onnx.load_from_string(buf.getvalue())
    else:
        raise ValueError(f"unknown onnx_exporter {ex.onnx_exporter!r}; use 'dynamo' or 'torchscript'")
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _name_dynamic_axes(graph: Any, dynamic_axes: Mapping[str, Mapping[int, str]]) -> None:
    """Rename the exporter's symbolic sizes (``s40``, ...) of the graph's inputs and outputs to the labels.

    Raises:
        ValueError: an axis meant to vary came out with a fixed size.
    """
    ends = {v.name: v for v in [*graph.input, *graph.output]}
    rename: dict[str, str] = {}
    for name, axes in dynamic_axes.items():
        for axis, label in axes.items():
            dim = ends[name].type.tensor_type.shape.dim[axis]
            if not dim.dim_param:
                raise ValueError(
                    f"the exported graph fixed axis {axis} ({label}) of {name!r} to {dim.dim_value}; "
                    "this model does not export with that axis dynamic"
                )
            rename.setdefault(dim.dim_param, label)
            dim.dim_param = label
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in rename:
                dim.dim_param = rename[dim.dim_param]


@contextlib.contextmanager
def _torchscript_quiet() -> Iterator[None]:
    """Silence the one deprecation notice ``torch.jit`` repeats for every submodule it compiles."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated.*")
        yield
