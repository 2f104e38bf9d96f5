"""train.log: the schema of the key, results.csv, and the TensorBoard event files of a run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segdet.config import ConfigError, validate_config
from segdet.task import DataSpec, Task


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
    assert picture.shape == (40, 2 * 50 + 2, 3)
    truth = draw_detections(rgb, target["boxes"].numpy(), np.array([0]), np.array([1.0]), list(spec.classes))
    pred = draw_detections(rgb, found["boxes"][:1].numpy(), np.array([1]), np.array([0.9]), list(spec.classes))
    np.testing.assert_array_equal(picture[:, :50], truth)
    np.testing.assert_array_equal(picture[:, 52:], pred)  # the 0.1 box is left out


def test_a_task_without_pictures_draws_none():
    assert Task({}).draw_predictions(None, {}, DataSpec(("a",))) == []
