"""Knowledge distillation for segmentation (the ``distill:`` section): a trained teacher guides the student.

Config::

    distill:
      teacher_checkpoint: runs/train/weights/best.pt   # a segdet segmentation checkpoint
      teacher_config: null     # optional YAML that rebuilds the teacher; null: the checkpoint's own config
      loss: kd                 # kd | cwd
      weight: 1.0
      temperature: 1.0

The training loss becomes ``loss + weight * distill``, with ``distill`` one of

- ``kd``: pixel-wise logit distillation (Hinton et al., 2015), :func:`losses.kd_loss`: KL of the
  teacher's softened distribution to the student's at each pixel, times T^2 (softmax over the
  classes in multiclass mode, per-channel Bernoulli in binary and multilabel);
- ``cwd``: channel-wise distillation (Shu et al., 2021), :func:`losses.cwd_loss`: per channel, KL
  of the distributions over the positions, times T^2, averaged over channels and images.

Both are computed over the pixels of each image (its ``sizes``; the padding of a batch of
differently sized images takes no part). The teacher is rebuilt from its checkpoint (its
``model`` section, the class names and mode the checkpoint stores, its EMA weights when present)
on the device of the first batch; it runs in eval mode under ``no_grad`` and inside the same
autocast as the student, and its logits are resized (bilinear) to the student's when their sizes
differ. It belongs to the task, not to the model, so it is never saved in the student's
checkpoint; the checkpoint's config holds the ``distill`` section, so a resumed run rebuilds the
same teacher. Evaluation, prediction and export never read the teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import losses
from segdet.checkpoint import inference_state_dict, load_checkpoint
from segdet.config import load_config
from segdet.task import DataSpec

from .model import build_segmentation_model

__all__ = ["DISTILL_LOSSES", "Distiller", "Teacher", "load_teacher", "image_mask"]

#: names of ``distill.loss``
DISTILL_LOSSES = ("kd", "cwd")


class Teacher:
    """A trained segmentation model that only gives logits: eval mode, ``no_grad``, moved to the batch's device.

    Args:
        model: maps (B, C, H, W) images in ``[0, 1]`` to (B, K, h, w) logits.
        spec: its classes and mode.
        source: where it was read from, for messages.
    """

    def __init__(self, model: nn.Module, spec: DataSpec, source: str) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.spec = spec
        self.source = source

    def logits(self, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, K, H, W) teacher logits of ``images``, resized (bilinear) to ``size`` when it differs."""
        param = next(self.model.parameters(), None)
        if param is not None and param.device != images.device:
            self.model.to(images.device)
        self.model.eval()
        with torch.no_grad():
            out = self.model(images)
            if size is not None and tuple(out.shape[-2:]) != tuple(size):
                out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out


def load_teacher(distill_cfg: Mapping[str, Any]) -> Teacher:
    """The teacher of ``distill.teacher_checkpoint``, rebuilt from its config (or ``distill.teacher_config``).

    Raises:
        ValueError: the checkpoint is missing or unreadable, is not a segmentation checkpoint,
            has no config to rebuild it from (and no ``teacher_config``), or its weights do not
            fit the model its config describes; each message names the file.
    """
    path = Path(distill_cfg["teacher_checkpoint"])
    try:
        ckpt = load_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"distill.teacher_checkpoint: {exc}") from None
    where = f"distill.teacher_checkpoint {path}"
    if distill_cfg.get("teacher_config"):
        cfg_path = Path(distill_cfg["teacher_config"])
        cfg = load_config(cfg_path)
        where += f" (with distill.teacher_config {cfg_path})"
    else:
        cfg = ckpt.get("config")
        if not isinstance(cfg, Mapping) or "model" not in cfg:
            raise ValueError(
                f"{where} holds no segdet config to rebuild the teacher from; set distill.teacher_config "
                "to the YAML it was trained with"
            )
    task = cfg.get("task", "segmentation")
    if task != "segmentation":
        raise ValueError(f"{where} is a {task} model; a segmentation student distils from a segmentation teacher")
    spec = DataSpec.from_checkpoint(ckpt)
    if spec is None:
        raise ValueError(
            f"{where} stores no class names, so the teacher's class count is unknown; use a checkpoint "
            "written by segdet train"
        )
    model_cfg = {**cfg["model"], "encoder_weights": None, "weights": None}  # the checkpoint has every weight
    model = build_segmentation_model(model_cfg, spec.out_channels)
    try:
        model.load_state_dict(inference_state_dict(ckpt))
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"{where}: its weights do not fit model.arch={model_cfg['arch']} with model.encoder="
            f"{model_cfg['encoder']} ({str(exc).splitlines()[0]}); check distill.teacher_config"
        ) from None
    return Teacher(model, spec, where)


def image_mask(sizes: torch.Tensor | None, shape: tuple[int, int, int], device: torch.device) -> torch.Tensor | None:
    """(B, H, W) bool, True inside each image's own ``sizes`` (B, 2) of a padded batch; ``None`` when all are full."""
    if sizes is None:
        return None
    b, h, w = shape
    sizes = sizes.to(device)
    rows = torch.arange(h, device=device)[None, :, None] < sizes[:, 0, None, None]
    cols = torch.arange(w, device=device)[None, None, :] < sizes[:, 1, None, None]
    return rows & cols


class Distiller:
    """The distillation term of a training batch: ``weight * loss(student, teacher)``.

    Args:
        teacher: the :class:`Teacher`.
        loss: ``kd`` or ``cwd``.
        weight: factor of the term in the total loss (>= 0).
        temperature: T > 0.
        mode: the student's ``data.mode`` (``kd`` softens per class in multiclass, per channel otherwise).
        student: what the student was trained on, for the class-count message.

    Raises:
        ValueError: an unknown loss, a temperature <= 0, a negative weight, or a teacher of another mode.
    """

    def __init__(
        self,
        teacher: Teacher,
        loss: str = "kd",
        weight: float = 1.0,
        temperature: float = 1.0,
        mode: str = "multiclass",
        student: str = "the student",
    ) -> None:
        if loss not in DISTILL_LOSSES:
            raise ValueError(f"distill.loss = {loss!r} is not one of {', '.join(DISTILL_LOSSES)}")
        if not temperature > 0:
            raise ValueError(f"distill.temperature = {temperature!r} must be > 0 (1 leaves the logits as they are)")
        if not weight >= 0:
            raise ValueError(f"distill.weight = {weight!r} must be >= 0")
        if teacher.spec.mode != mode:
            raise ValueError(
                f"{teacher.source} was trained in data.mode {teacher.spec.mode} and the student trains in {mode}; "
                "distil between models of the same mode"
            )
        self.teacher, self.loss, self.weight, self.temperature, self.mode = teacher, loss, weight, temperature, mode
        self.student = student
        self._checked = False

    def check_classes(self, channels: int) -> None:
        """Stop unless the teacher's logits have the student's ``channels``.

        Raises:
            ValueError: naming both class counts, the teacher's file and the student's data.
        """
        if self.teacher.spec.out_channels == channels:
            return
        t, s = self.teacher.spec, self.teacher.spec.num_classes
        student = channels if self.mode != "binary" else 2
        raise ValueError(
            f"{self.teacher.source} has {s} classes ({', '.join(t.classes)}) and the student trained on "
            f"{self.student} has {student}: the teacher's logits cannot be distilled into the student's; "
            "use a teacher trained on the same classes"
        )

    def __call__(self, student_logits: torch.Tensor, images: torch.Tensor, sizes: torch.Tensor | None) -> torch.Tensor:
        """The unweighted distillation loss of one batch (the caller adds ``weight`` times it)."""
        if not self._checked:
            self.check_classes(int(student_logits.shape[1]))
            self._checked = True
        teacher = self.teacher.logits(images, tuple(student_logits.shape[-2:]))
        n, _, h, w = student_logits.shape
        mask = image_mask(sizes, (n, h, w), student_logits.device)
        if self.loss == "kd":
            return losses.kd_loss(student_logits, teacher, self.mode, self.temperature, mask=mask)
        return losses.cwd_loss(student_logits, teacher, self.temperature, mask=mask)
