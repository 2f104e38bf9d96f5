"""train.log: the schema of the key, results.csv, and the TensorBoard event files of a run."""

from __future__ import annotations

import csv
import math
import os
import signal
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from engine_fake_task import FakeTask, fake_config

from segdet.config import ConfigError, load_config, validate_config
from segdet.engine import NonFiniteLossError, TrainingInterrupted, train
from segdet.engine._tensorboard import VAL_PICTURES, TensorBoardLog
from segdet.task import DataSpec, Task

EPOCH_TAGS = ["epoch/ce", "epoch/data_wait", "epoch/images_per_s", "epoch/loss", "epoch/lr", "epoch/time_s", "val/acc"]


@pytest.fixture
def one_thread():
    """One torch thread: two spin-waiting threads on a shared 2-core machine cost more than they bring."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _events(folder: Path):
    """TensorBoard's own reader over the event files of ``folder`` (every event kept)."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def _steps(events, tag: str) -> list[int]:
    kind = events.Images if tag in events.Tags()["images"] else events.Scalars
    return [e.step for e in kind(tag)]


def _values(events, tag: str) -> list[float]:
    return [e.value for e in events.Scalars(tag)]


def _rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


class PicturedTask(FakeTask):
    """The fake task, recording each batch's loss and drawing a grey picture per validation image."""

    def __init__(self, cfg, **kwargs) -> None:
        super().__init__(cfg, **kwargs)
        self.losses: list[float] = []
        self.drawn: list[int] = []

    def loss(self, model, batch):
        total, terms = super().loss(model, batch)
        self.losses.append(total.item())
        return total, terms

    def draw_predictions(self, model, batch, spec):
        assert not model.training and not torch.is_grad_enabled()
        self.drawn.append(len(batch["image"]))
        return [np.full((16, 33, 3), 10 * i, np.uint8) for i in range(len(batch["image"]))]


def _fake_preview(calls: list):
    def preview(dataset, classes, path, **options):
        calls.append((len(dataset), tuple(classes), options))
        cv2.imwrite(str(path), np.zeros((10, 12, 3), np.uint8))
        return path

    return preview


# --- the key ---------------------------------------------------------------------------------------
def test_train_log_defaults_to_csv():
    assert validate_config({})["train"]["log"] == ["csv"]
    assert validate_config({"train": {"log": ["csv", "tensorboard"]}})["train"]["log"] == ["csv", "tensorboard"]


@pytest.mark.parametrize(
    "value,match",
    [
        (
            ["csv", "tensorbord"],
            r"train.log = \['csv', 'tensorbord'\]: 'tensorbord' is not one of csv, tensorboard; "
            r"did you mean 'tensorboard'\?",
        ),
        (["wandb"], r"'wandb' is not one of csv, tensorboard$"),
        ("tensorboard", r"train.log = 'tensorboard' is a string, expected a list \(each one of csv, tensorboard\)"),
    ],
)
def test_train_log_names_the_bad_entry_and_the_closest_name(value, match):
    with pytest.raises(ConfigError, match=match):
        validate_config({"train": {"log": value}})


# --- the pictures a task draws for the log ---------------------------------------------------------
def test_segmentation_draws_image_truth_and_prediction_cropped_to_the_image():
    from segdet.palette import overlay_mask
    from segdet.segmentation import SegmentationTask

    task = SegmentationTask(validate_config({}))
    spec = DataSpec(("background", "a", "b"))
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 32, generator=gen)
    mask = torch.randint(0, 3, (2, 32, 32), generator=gen)
    mask[0, :4] = 255  # unlabelled
    batch = {"image": image, "mask": mask, "sizes": torch.tensor([[30, 20], [32, 32]])}

    def model(x):  # class 1 on the left half, class 2 on the right
        logits = torch.zeros(x.shape[0], 3, *x.shape[-2:])
        logits[:, 1, :, :16] = logits[:, 2, :, 16:] = 1.0
        return logits

    pictures = task.draw_predictions(model, batch, spec)
    assert [p.shape for p in pictures] == [(30, 3 * 20 + 4, 3), (32, 3 * 32 + 4, 3)]
    rgb = (image[0, :, :30, :20].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    pred = np.where(np.arange(20) < 16, 1, 2)[None].repeat(30, 0)
    first = pictures[0]
    np.testing.assert_array_equal(first[:, :20], rgb)
    np.testing.assert_array_equal(first[:, 22:42], overlay_mask(rgb, mask[0, :30, :20].numpy(), 3))
    np.testing.assert_array_equal(first[:, 44:], overlay_mask(rgb, pred, 3))
    assert (first[:, 20:22] == 32).all() and (first[:, 42:44] == 32).all()
    assert (first[:4, 22:42] > rgb[:4] // 2 + 120).all()  # unlabelled pixels: blended with white


def test_detection_draws_truth_and_confident_predictions():
    from segdet.detection import DetectionTask
    from segdet.detection.predict import draw_detections

    task = DetectionTask(validate_config({"task": "detection"}))
    spec = DataSpec(("cell", "blob"))
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(0))
    target = {"boxes": torch.tensor([[5.0, 5.0, 20.0, 20.0]]), "labels": torch.tensor([0])}
    found = {
        "boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0], [1.0, 1.0, 4.0, 4.0]]),
        "scores": torch.tensor([0.9, 0.1]),
        "labels": torch.tensor([1, 0]),
    }
    (picture,) = task.draw_predictions(
        lambda images: [found for _ in images], {"image": [image], "targets": [target]}, spec
    )
    rgb = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    truth = draw_detections(rgb, target["boxes"].numpy(), np.array([0]), np.array([1.0]), list(spec.classes))
    pred = draw_detections(rgb, found["boxes"][:1].numpy(), np.array([1]), np.array([0.9]), list(spec.classes))
    h, w = truth.shape[:2]  # draw_detections enlarges small images
    assert picture.shape == (h, 2 * w + 2, 3) and pred.shape == truth.shape
    np.testing.assert_array_equal(picture[:, :w], truth)
    np.testing.assert_array_equal(picture[:, w + 2 :], pred)  # the 0.1 box is left out


def test_a_task_without_pictures_draws_none():
    assert Task({}).draw_predictions(None, {}, DataSpec(("a",))) == []


# --- TensorBoard -----------------------------------------------------------------------------------
def test_tensorboard_logs_every_step_every_epoch_and_the_pictures(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = fake_config(tmp_path / "run", epochs=2, log=["csv", "tensorboard"])
    task, calls = PicturedTask(cfg), []
    run = train(cfg, task=task, preview=_fake_preview(calls))
    events = _events(run / "tensorboard")
    tags = events.Tags()

    # 16 images in batches of 4: 4 optimizer steps per epoch, on one x-axis over the run
    assert sorted(tags["scalars"]) == sorted(["step/loss", "step/ce", "step/lr", *EPOCH_TAGS])
    for tag in ("step/loss", "step/ce", "step/lr"):
        assert _steps(events, tag) == list(range(1, 9)), tag
    for tag in EPOCH_TAGS:
        assert _steps(events, tag) == [4, 8], tag
    assert _values(events, "step/loss") == pytest.approx(task.losses, rel=1e-6)
    assert _values(events, "step/ce") == pytest.approx(task.losses, rel=1e-6)  # the fake loss is its one term
    assert _values(events, "step/lr")[:2] == pytest.approx([0.005, 0.01])  # warm-up: the rate each step used

    # the epoch numbers are those of results.csv
    rows = _rows(run)
    for tag, column in [("epoch/loss", "loss"), ("epoch/ce", "train/ce"), ("epoch/lr", "lr"), ("val/acc", "acc")]:
        assert _values(events, tag) == pytest.approx([float(r[column]) for r in rows], rel=1e-6), tag
    assert float(rows[0]["loss"]) == pytest.approx(np.mean(task.losses[:4]), rel=1e-6)

    # the preview grid once at step 0, the first validation images every epoch
    assert calls == [(16, ("class_0", "class_1", "class_2"), {"ignore_index": 255, "seed": 3})]
    assert (run / "preview.png").is_file()
    assert sorted(tags["images"]) == ["train/preview", *(f"val/prediction/{i}" for i in range(VAL_PICTURES))]
    assert _steps(events, "train/preview") == [0]
    assert [(e.width, e.height) for e in events.Images("train/preview")] == [(12, 10)]
    for i in range(VAL_PICTURES):
        assert _steps(events, f"val/prediction/{i}") == [4, 8]
    assert task.drawn == [VAL_PICTURES, VAL_PICTURES]
    assert (run / "results.csv").is_file() and (run / "results.png").is_file()


def test_tensorboard_steps_are_optimizer_steps_when_accumulating(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = fake_config(tmp_path / "run", epochs=1, accumulate=3, log=["tensorboard"])
    task = PicturedTask(cfg)
    events = _events(train(cfg, task=task) / "tensorboard")
    assert _steps(events, "step/loss") == [1, 2]  # 4 batches: a step of 3 and the epoch's last one
    losses = task.losses
    assert _values(events, "step/loss") == pytest.approx([np.mean(losses[:3]), losses[3]], rel=1e-6)
    assert _values(events, "step/ce") == pytest.approx([np.mean(losses[:3]), losses[3]], rel=1e-6)
    assert _steps(events, "val/acc") == [2]


def test_the_loss_terms_reach_the_host_in_one_copy_per_flush(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    log = TensorBoardLog(tmp_path, flush_every=3)
    reads = {"cpu": 0, "item": 0, "float": 0}
    for name, key in (("cpu", "cpu"), ("item", "item"), ("__float__", "float")):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _key=key, **kwargs):
            reads[_key] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    for i in range(7):
        log.batch(float(i), {"a": torch.tensor(float(i)), "b": torch.tensor(2.0 * i)})
        log.step(lr=0.1)
    assert reads == {"cpu": 2, "item": 0, "float": 0}  # after steps 3 and 6, not once per step
    log.close()
    monkeypatch.undo()
    assert reads["cpu"] == 3
    events = _events(tmp_path)
    assert _steps(events, "step/a") == list(range(1, 8))
    assert _values(events, "step/a") == [float(i) for i in range(7)]
    assert _values(events, "step/b") == [2.0 * i for i in range(7)]
    assert _values(events, "step/loss") == [float(i) for i in range(7)]


def test_csv_alone_writes_no_tensorboard_folder(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1)
    assert cfg["train"]["log"] == ["csv"]
    calls = []
    run = train(cfg, task=PicturedTask(cfg), preview=_fake_preview(calls))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "results.csv", "results.png", "weights"]
    assert calls == []


def test_an_empty_train_log_writes_no_logs(tmp_path):
    cfg = fake_config(tmp_path / "run", epochs=1, log=[])
    run = train(cfg, task=PicturedTask(cfg))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "weights"]


def test_missing_tensorboard_is_one_clear_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an environment without it sees
    cfg = fake_config(tmp_path / "run", epochs=1, log=["csv", "tensorboard"])
    with pytest.raises(ValueError, match=r"train.log includes 'tensorboard'.*pip install segdet\[tensorboard\]"):
        train(cfg, task=PicturedTask(cfg))
    assert not (tmp_path / "run").exists()


def test_the_command_line_reports_missing_tensorboard_as_segdet_error(tmp_path, monkeypatch, capsys):
    from _segdet_ddp_worker import CONFIG

    from segdet.cli import main

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    status = main(["train", str(CONFIG), "train.log=[csv,tensorboard]", f"output_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith("segdet: error: train.log includes 'tensorboard' but TensorBoard is not installed")
    assert "pip install segdet[tensorboard]" in err[0]
    assert not (tmp_path / "run").exists()


def test_nan_stop_closes_the_event_file_with_every_step_before_it(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = fake_config(tmp_path / "run", epochs=3, log=["tensorboard"])
    with pytest.raises(NonFiniteLossError):
        train(cfg, task=PicturedTask(cfg, nan_at_call=6))  # epoch 2, step 2
    events = _events(tmp_path / "run" / "tensorboard")
    # the loss is read back only at the epoch end here (progress off): steps 6-8 ran, 6 logged as nan
    assert _steps(events, "step/loss") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [math.isnan(e.value) for e in events.Scalars("step/loss")][4:6] == [False, True]
    assert _steps(events, "val/acc") == [4]


def test_ctrl_c_then_resume_logs_each_step_once(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = fake_config(tmp_path / "run", epochs=2, log=["tensorboard"])

    class CtrlC(PicturedTask):
        def loss(self, model, batch):
            if self.calls == 5:  # second epoch, second step
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss(model, batch)

    calls = []
    with pytest.raises(TrainingInterrupted) as err:
        train(cfg, task=CtrlC(cfg), preview=_fake_preview(calls))
    first = _events(tmp_path / "run" / "tensorboard")
    assert _steps(first, "step/loss") == [1, 2, 3, 4, 5, 6]  # written when the run stopped
    resumed = PicturedTask(cfg)
    run = train(cfg, resume=err.value.checkpoint, task=resumed, preview=_fake_preview(calls))
    events = _events(run / "tensorboard")
    assert len(list((run / "tensorboard").iterdir())) == 2  # one event file per session
    assert _steps(events, "step/loss") == list(range(1, 9))  # each step once: the resumed run did 7 and 8
    assert len(resumed.losses) == 2 and _values(events, "step/loss")[6:] == pytest.approx(resumed.losses, rel=1e-6)
    assert _steps(events, "val/acc") == [4, 8]
    assert _steps(events, "train/preview") == [0] and len(calls) == 1  # drawn at the start of the run only


def test_real_segmentation_run_logs_the_preview_grid_and_prediction_pictures(tmp_path, one_thread):
    """The default config shrunk to seconds, with segdet.preview's grid (what the front door passes)."""
    pytest.importorskip("tensorboard")
    from _segdet_ddp_worker import CONFIG, tiny_overrides

    from segdet.preview import write_preview

    cfg = load_config(CONFIG, tiny_overrides(str(tmp_path / "run")) + ["train.log=[csv,tensorboard]"])
    run = train(cfg, preview=write_preview)
    events = _events(run / "tensorboard")
    tags = events.Tags()
    assert {"step/loss", "step/ce", "step/dice", "step/lr", "epoch/loss", "val/miou", "val/mdice"} <= set(
        tags["scalars"]
    )
    assert _steps(events, "step/dice") == [1, 2, 3, 4] and _steps(events, "val/miou") == [4]
    preview = cv2.cvtColor(cv2.imread(str(run / "preview.png")), cv2.COLOR_BGR2RGB)
    (grid,) = events.Images("train/preview")
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(grid.encoded_image_string, np.uint8), 1), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, preview)  # the PNG write_preview wrote, as it is
    # 5 validation images of 32x64: the first 4 as image | ground truth | prediction
    assert sorted(tags["images"]) == [
        "train/preview",
        "val/prediction/0",
        "val/prediction/1",
        "val/prediction/2",
        "val/prediction/3",
    ]
    assert [(e.width, e.height, e.step) for e in events.Images("val/prediction/3")] == [(3 * 64 + 4, 32, 4)]
