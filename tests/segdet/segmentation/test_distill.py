"""Knowledge distillation (``distill:``): the term against losses.kd_loss / cwd_loss on the teacher's own
logits, the teacher frozen and in eval mode, the bad inputs, and a training run whose checkpoint holds no
teacher and resumes."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import losses
from segdet.checkpoint import load_checkpoint, save_checkpoint
from segdet.config import ConfigError, load_config
from segdet.engine.trainer import train
from segdet.segmentation.distill import Distiller, Teacher, image_mask, load_teacher
from segdet.segmentation.model import build_segmentation_model
from segdet.segmentation.task import SegmentationTask
from segdet.task import DataSpec

SHAPES = ("background", "circle", "square", "triangle")  # the synthetic data's classes
TINY = [
    "data.synthetic.train_size=4",
    "data.synthetic.val_size=2",
    "data.synthetic.height=32",
    "data.synthetic.width=32",
    "data.batch_size=2",
    "data.num_workers=0",
    "train.device=cpu",
    "train.progress=false",
    "train.epochs=1",
    "model.encoder=resnet18",
]


def _config(tmp_path, extra=(), name="c.yaml"):
    path = tmp_path / name
    path.write_text("task: segmentation\n")
    return load_config(path, [*TINY, f"output_dir={tmp_path / 'runs'}", *extra])


def _teacher_checkpoint(tmp_path, classes=SHAPES, mode="multiclass", task="segmentation", with_config=True):
    cfg = _config(tmp_path, [f"data.mode={mode}"] if mode != "multiclass" else [], name="teacher.yaml")
    cfg["task"] = task
    spec = DataSpec(classes, mode=mode)
    torch.manual_seed(1)
    model = build_segmentation_model(cfg["model"], spec.out_channels)
    path = tmp_path / f"teacher_{len(classes)}_{mode}_{task}.pt"
    state = {"model": model.state_dict(), "ema": None, **spec.to_checkpoint()}
    if with_config:
        state["config"] = cfg
    save_checkpoint(state, path)
    return path, model


def _distill(path, **kw):
    return {
        "teacher_checkpoint": str(path),
        "teacher_config": None,
        "loss": "kd",
        "weight": 1.0,
        "temperature": 1.0,
        **kw,
    }


@pytest.mark.parametrize("loss", ["kd", "cwd"])
def test_distill_term_is_the_loss_on_the_frozen_teachers_logits(tmp_path, loss):
    path, reference = _teacher_checkpoint(tmp_path)
    teacher = load_teacher(_distill(path))
    bn = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    distiller = Distiller(teacher, loss, weight=0.5, temperature=2.0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 48, generator=g)
    sizes = torch.tensor([[32, 48], [20, 30]])  # the second image padded
    student = torch.randn(2, 4, 32, 48, generator=g, requires_grad=True)
    value = distiller(student, images, sizes)
    with torch.no_grad():
        expect_teacher = reference.eval()(images)
    mask = torch.zeros(2, 32, 48, dtype=torch.bool)
    mask[0] = True
    mask[1, :20, :30] = True
    if loss == "kd":
        expect = losses.kd_loss(student, expect_teacher, "multiclass", 2.0, mask=mask)
    else:
        expect = losses.cwd_loss(student, expect_teacher, 2.0, mask=mask)
    torch.testing.assert_close(value, expect)
    value.backward()
    grad = student.grad[1]  # the padding takes no part, the image does
    assert grad[:, 20:].abs().sum() == 0 and grad[:, :, 30:].abs().sum() == 0 and grad[:, :20, :30].abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in teacher.model.parameters())
    assert not teacher.model.training
    assert all(torch.equal(v, bn[k]) for k, v in teacher.model.state_dict().items())  # BatchNorm untouched


def test_teacher_runs_under_the_callers_autocast_and_is_resized():
    class Half(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return self.conv(x)[..., ::2, ::2]

    torch.manual_seed(0)
    teacher = Teacher(Half(), DataSpec(("a", "b")), "a test teacher")
    images = torch.rand(2, 3, 16, 20)
    with torch.no_grad():
        small = teacher.model(images)
    expect = F.interpolate(small, size=(16, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(teacher.logits(images, (16, 20)), expect)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert teacher.logits(images, (16, 20)).dtype == torch.bfloat16
    assert image_mask(None, (2, 16, 20), torch.device("cpu")) is None


def test_bad_teachers(tmp_path):
    with pytest.raises(ValueError, match=r"distill.teacher_checkpoint: checkpoint .*missing.pt does not exist"):
        load_teacher(_distill(tmp_path / "missing.pt"))
    det, _ = _teacher_checkpoint(tmp_path, task="detection")
    with pytest.raises(ValueError, match="is a detection model"):
        load_teacher(_distill(det))
    bare, _ = _teacher_checkpoint(tmp_path, classes=("a", "b", "c"), with_config=False)
    with pytest.raises(ValueError, match="holds no segdet config.*teacher_config"):
        load_teacher(_distill(bare))
    (tmp_path / "t.yaml").write_text("task: segmentation\nmodel: {encoder: resnet34}\n")
    with pytest.raises(ValueError, match="do not fit model.arch=Unet with model.encoder=resnet34"):
        load_teacher(_distill(bare, teacher_config=str(tmp_path / "t.yaml")))
    (tmp_path / "t18.yaml").write_text("task: segmentation\nmodel: {encoder: resnet18}\n")
    assert load_teacher(_distill(bare, teacher_config=str(tmp_path / "t18.yaml"))).spec.num_classes == 3
    three = load_teacher(_distill(bare, teacher_config=str(tmp_path / "t18.yaml")))
    with pytest.raises(ValueError, match=r"teacher_3.*has 3 classes \(a, b, c\) and the student .* has 4"):
        Distiller(three, "kd")(torch.randn(1, 4, 32, 32), torch.rand(1, 3, 32, 32), None)
    binary, _ = _teacher_checkpoint(tmp_path, classes=("background", "fg"), mode="binary")
    with pytest.raises(ValueError, match="data.mode binary and the student trains in multiclass"):
        Distiller(load_teacher(_distill(binary)), "kd", mode="multiclass")
    with pytest.raises(ValueError, match="temperature"):
        Distiller(three, "kd", temperature=0.0)


def test_config_keys_and_early_errors(tmp_path):
    path, _ = _teacher_checkpoint(tmp_path, classes=("a", "b", "c"))
    task = SegmentationTask(_config(tmp_path, [f"distill.teacher_checkpoint={path}", "data.classes=[w, x, y, z]"]))
    with pytest.raises(ValueError, match="has 3 classes .* has 4"):
        task.check()  # before any data is read
    with pytest.raises(ValueError, match="distill.loss = 'cwd' is set but distill.teacher_checkpoint is null"):
        SegmentationTask(_config(tmp_path, ["distill.loss=cwd"])).check()
    with pytest.raises(ValueError, match="distill with augment.feature_mix"):
        SegmentationTask(
            _config(tmp_path, [f"distill.teacher_checkpoint={path}", "augment.feature_mix=[{PatchUp: {p: 1}}]"])
        ).check()
    with pytest.raises(ConfigError, match="distill.loss = 'kld' is not one of kd, cwd"):
        _config(tmp_path, ["distill.loss=kld"])
    with pytest.raises(
        ConfigError,
        match=r"distill.teacher_checkpoint = .* is a segmentation setting, and task "
        r"detection ignores it",
    ):
        _config(tmp_path, ["task=detection", "loss={}", f"distill.teacher_checkpoint={path}"])
    with pytest.raises(ConfigError, match="augment.feature_mix = .* is a segmentation setting"):
        _config(tmp_path, ["task=detection", "augment.feature_mix=[{PatchUp: {}}]"])


def test_training_with_a_teacher_saves_no_teacher_and_resumes(tmp_path):
    path, _ = _teacher_checkpoint(tmp_path)
    cfg = _config(tmp_path, [f"distill.teacher_checkpoint={path}", "distill.loss=cwd", "distill.temperature=2"])
    run = train(cfg)
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    student = build_segmentation_model(cfg["model"], 4)
    assert set(ckpt["model"]) == set(student.state_dict())  # the student's weights and nothing else
    flat = repr({k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "config", "rng")})
    assert "teacher" not in flat and not any("teacher" in k for k in ckpt["model"])
    assert ckpt["config"]["distill"] == cfg["distill"]  # the distillation state travels with the run
    with open(run / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["train/distill"]) > 0
    resumed = train({**cfg, "train": {**cfg["train"], "epochs": 2}}, resume=run / "weights" / "last.pt")
    assert resumed == run and load_checkpoint(run / "weights" / "last.pt")["epoch"] == 2
