"""Prediction, pictures and export in binary and multilabel mode, against running the model by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from segdet._images import read_image
from segdet.palette import label_colours, overlay_labels
from segdet.preview import write_preview
from segdet.segmentation.inference import Inference
from segdet.segmentation.predict import predict_segmentation
from segdet.task import DataSpec


class TinySegModel(nn.Module):
    """A conv net whose output depends on position (a wrong crop or pad changes the result)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, channels, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


def _images(folder, sizes, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"im{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def _sigmoid_by_hand(model, image):
    """float64 sigmoid of the model on the image zero-padded to 32 with numpy, cropped back."""
    h, w = image.shape[:2]
    padded = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.float32)
    padded[:h, :w] = image / 255.0
    with torch.no_grad():
        out = model(torch.from_numpy(padded).permute(2, 0, 1)[None]).numpy()[0, :, :h, :w]
    return 1.0 / (1.0 + np.exp(-out.astype(np.float64)))


@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_binary_writes_0_1_masks_of_sigmoid_above_threshold(tmp_path, threshold):
    paths = _images(tmp_path / "in", [(30, 45), (64, 33)])
    model = TinySegModel(1)
    out = tmp_path / "out"
    written = predict_segmentation(model, paths, out, ["background", "cell"], "cpu", mode="binary", threshold=threshold)
    for path, mask_path in zip(paths, written):
        expected = (_sigmoid_by_hand(model, read_image(path))[0] > threshold).astype(np.uint8)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) <= {0, 1}
        np.testing.assert_array_equal(mask, expected)
        assert (out / f"{path.stem}_overlay.png").is_file()


def test_multilabel_writes_one_0_255_mask_per_class_and_an_overlay(tmp_path):
    paths = _images(tmp_path / "in", [(30, 45), (40, 40)], seed=1)
    classes = ["nucleus", "membrane", "vesicle"]
    model = TinySegModel(3, seed=1)
    out = tmp_path / "out"
    predict_segmentation(model, paths, out, classes, "cpu", mode="multilabel", threshold=0.4)
    for path in paths:
        image = read_image(path)
        present = _sigmoid_by_hand(model, image) > 0.4
        assert present.any(axis=(1, 2)).all()  # every class shows somewhere (the test means something)
        for k, name in enumerate(classes):
            mask = cv2.imread(str(out / name / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(mask, np.where(present[k], 255, 0).astype(np.uint8))
        overlay = read_image(out / f"{path.stem}_overlay.png")
        h, w = image.shape[:2]
        f = overlay.shape[1] // w
        top = overlay[: h * f : f, ::f]  # one pixel per enlarged block
        np.testing.assert_array_equal(top, overlay_labels(image, present))
    assert sorted(p.name for p in out.iterdir()) == sorted(classes + [f"{p.stem}_overlay.png" for p in paths])


def test_multilabel_class_names_must_be_folder_names(tmp_path):
    paths = _images(tmp_path / "in", [(8, 8)])
    with pytest.raises(ValueError, match=r"class name 'a/b' cannot be a folder name .*data.classes"):
        predict_segmentation(TinySegModel(2), paths, tmp_path / "o", ["x", "a/b"], "cpu", mode="multilabel")


@pytest.mark.parametrize("channels, mode", [(1, "binary"), (3, "multilabel")])
def test_tta_and_sliding_window_average_logits_before_the_threshold(tmp_path, channels, mode):
    paths = _images(tmp_path / "in", [(48, 64)], seed=2)
    model = TinySegModel(channels, seed=2)
    classes = ["bg", "fg"] if mode == "binary" else ["a", "b", "c"]
    inference = Inference(mode="slide", tile=(32, 32), overlap=0.5, flip=("h",))
    predict_segmentation(model, paths, tmp_path / "o", classes, "cpu", mode=mode, inference=inference)
    image = torch.from_numpy(read_image(paths[0])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        logits = inference(model, image)[0].double().numpy()
    present = 1.0 / (1.0 + np.exp(-logits)) > 0.5
    assert logits.shape[0] == channels
    if mode == "binary":
        got = cv2.imread(str(tmp_path / "o" / "im0.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(got, present[0].astype(np.uint8))
    else:
        for k, name in enumerate(classes):
            got = cv2.imread(str(tmp_path / "o" / name / "im0.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(got, np.where(present[k], 255, 0).astype(np.uint8))


def test_overlay_labels_is_the_mean_colour_of_the_classes_present():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    present = rng.integers(0, 2, (3, 5, 6)).astype(bool)
    got = overlay_labels(image, present, alpha=0.4)
    colours = label_colours(3).astype(np.float64)
    for y in range(5):
        for x in range(6):
            ks = [k for k in range(3) if present[k, y, x]]
            if not ks:
                assert got[y, x].tolist() == image[y, x].tolist()
                continue
            mean = np.mean([colours[k] for k in ks], axis=0)
            expected = np.clip(np.rint(0.6 * image[y, x] + 0.4 * mean), 0, 255)
            assert np.abs(got[y, x].astype(float) - expected).max() <= 1, (y, x)


def test_draw_predictions_and_export_in_each_mode(tmp_path):
    from segdet.config import validate_config
    from segdet.segmentation.task import SegmentationTask

    for mode, classes, channels in (("binary", ("bg", "fg"), 1), ("multilabel", ("a", "b", "c"), 3)):
        cfg = validate_config({"data": {"mode": mode}, "model": {"encoder": "resnet18"}})
        task = SegmentationTask(cfg)
        spec = DataSpec(classes, mode=mode)
        model = task.build_model(spec).eval()
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, channels, 32, 32)
        if mode == "binary":
            mask = torch.randint(0, 2, (2, 32, 48))
        else:
            mask = torch.randint(0, 2, (2, 3, 32, 48)).to(torch.uint8)
        batch = {"image": torch.rand(2, 3, 32, 48), "mask": mask, "sizes": torch.tensor([[32, 48], [30, 40]])}
        with torch.no_grad():
            pictures = task.draw_predictions(model, batch, spec)
        assert [p.shape for p in pictures] == [(32, 48 * 3 + 4, 3), (30, 40 * 3 + 4, 3)]
        if mode == "multilabel":
            truth_panel = pictures[0][:, 48 + 2 : 2 * 48 + 2]
            image = (batch["image"][0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            np.testing.assert_array_equal(truth_panel, overlay_labels(image, mask[0].numpy() == 1))
        ex = task.export_module(model, "torchscript")
        with torch.no_grad():
            x = torch.rand(1, 3, 40, 50)
            torch.testing.assert_close(ex.module(x), model(x))


def test_preview_draws_multilabel_masks(tmp_path):
    from segdet.preview import GAP

    rng = np.random.default_rng(4)
    samples = [
        {
            "image": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
            "mask": rng.integers(0, 2, (16, 16, 2)).astype(np.uint8),
        }
        for _ in range(2)
    ]
    samples[1]["mask"][:4] = 255
    picture = read_image(write_preview(samples, ["a", "b"], tmp_path / "p.png", num=2, seed=0))
    order = np.random.default_rng(0).choice(2, size=2, replace=False)
    colours = label_colours(2).astype(np.float32)
    factor = 16  # 16 px tiles enlarged to 256 px
    for k, index in enumerate(order):
        s = samples[int(index)]
        left = GAP + k * (16 * factor + GAP)
        for y in range(4, 16):
            for x in range(16):
                ks = [c for c in range(2) if s["mask"][y, x, c] == 1]
                expected = s["image"][y, x].astype(np.float32)
                if ks:
                    expected = expected * 0.5 + 0.5 * np.mean([colours[c] for c in ks], axis=0)
                got = picture[GAP + y * factor + factor // 2, left + x * factor + factor // 2]
                assert np.abs(got.astype(float) - expected.astype(np.uint8)).max() <= 1, (k, y, x)
