"""predict_segmentation on real PNG files, against running the model on a padded tensor by hand; overlays."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from segdet._files import collect_image_paths
from segdet._images import read_image
from segdet.palette import LEGEND_ROW, class_palette, legend_cols, overlay_mask, upscale_factor
from segdet.segmentation.predict import pad_to_stride, predict_segmentation, render_overlay

CLASSES = ["background", "disc", "square"]


class TinySegModel(nn.Module):
    """A conv net whose output depends on position (so a wrong crop or pad changes the result)."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, num_classes, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))
        self.forward_sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_sizes.append(tuple(x.shape[-2:]))
        return self.conv2(torch.relu(self.conv1(x)))


def write_images(folder, sizes, rng: np.random.Generator):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (h, w) in enumerate(sizes):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = folder / f"img{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def repeat(a: np.ndarray, f: int) -> np.ndarray:
    """Naive nearest-neighbour enlargement: every pixel becomes an f x f block."""
    return np.repeat(np.repeat(a, f, axis=0), f, axis=1)


def by_hand(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Reference: pad the [0, 1] tensor with numpy, run the model, crop, argmax."""
    h, w = image.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    padded = np.zeros((ph, pw, 3), dtype=np.float32)
    padded[:h, :w] = image / 255.0
    x = torch.from_numpy(padded).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = model(x)
    return logits[0, :, :h, :w].argmax(0).numpy()


def test_outputs_match_the_model_on_a_padded_tensor(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [(37, 50), (32, 32), (20, 65)]
    paths = write_images(tmp_path / "in", sizes, rng)
    model = TinySegModel(len(CLASSES))
    model.train()
    written = predict_segmentation(model, collect_image_paths(tmp_path / "in"), tmp_path / "out", CLASSES, "cpu")

    assert model.training, "the model's mode is restored"
    assert model.forward_sizes == [(64, 64), (32, 32), (32, 96)]
    assert written == [tmp_path / "out" / f"img{i}.png" for i in range(3)]
    for path, (h, w) in zip(paths, sizes):
        mask = cv2.imread(str(tmp_path / "out" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == (h, w)
        assert mask.max() < len(CLASSES)
        image = read_image(path)
        np.testing.assert_array_equal(mask, by_hand(model, image))
        overlay = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / f"{path.stem}_overlay.png")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(overlay, render_overlay(image, mask, CLASSES))
        f = math.ceil(256 / w)  # enlarged to at least 256 px wide; the mask PNG above keeps (h, w)
        np.testing.assert_array_equal(overlay[: h * f], repeat(overlay_mask(image, mask, len(CLASSES)), f))
    assert len(list((tmp_path / "out").iterdir())) == 6, "no temporary files left behind"


def test_overlay_blends_palette_colours():
    image = np.full((2, 2, 3), 200, dtype=np.uint8)
    mask = np.array([[0, 1], [2, 1]])
    palette = class_palette(3)
    out = overlay_mask(image, mask, 3, alpha=0.5)
    every = overlay_mask(image, mask, 3, alpha=0.5, transparent=None)
    for (y, x), c in np.ndenumerate(mask):
        blended = np.rint((200 + palette[c].astype(float)) / 2)
        np.testing.assert_array_equal(every[y, x], blended)
        np.testing.assert_array_equal(out[y, x], image[y, x] if c == 0 else blended)


def test_palette_is_fixed_and_distinct():
    palette = class_palette(300)
    assert palette[:4].tolist() == [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200]]
    assert len({tuple(c) for c in palette.tolist()}) == 300
    for n in (0, 1, 5, 21, 22, 299):
        np.testing.assert_array_equal(class_palette(n), palette[:n])  # a class keeps its colour
    big = class_palette(65536)  # every class of a uint16 mask
    assert len(np.unique(big.astype(np.int64) @ [65536, 256, 1])) == 65536


def test_first_twenty_classes_are_far_apart():
    """Background + 20 classes: every pair at least 20 apart in CIELAB (Delta E 1976), and from white."""
    lab = cv2.cvtColor(class_palette(21).astype(np.float32)[None] / 255, cv2.COLOR_RGB2LAB)[0]
    for i in range(21):
        for j in range(i + 1, 21):
            assert np.linalg.norm(lab[i] - lab[j]) >= 20, (i, j)
        assert i == 0 or np.linalg.norm(lab[i] - [100, 0, 0]) >= 30, i  # white: the hatching of ignored pixels


def test_upscale_factor_is_the_smallest_integer_reaching_256():
    for width in range(1, 600):
        f = upscale_factor(10, width)
        assert f == next(k for k in range(1, 300) if k * width >= 256)
    assert upscale_factor(2000, 10) == 2  # a very thin picture stops at 4096 px
    assert upscale_factor(10, 40, min_width=1) == 1


def test_render_overlay_legend_lists_the_classes_present():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = np.zeros((20, 30), np.int64)
    mask[5:15, 10:20] = 2
    out = render_overlay(image, mask, CLASSES)
    f = 9  # ceil(256 / 30)
    entries = [("0 background", None), ("2 square", class_palette(3)[2])]
    widest = cv2.getTextSize("0 background", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]
    cols = legend_cols(entries, 30 * f - 8)
    assert cols == (30 * f - 8) // (widest + 22 + 12) == 1  # one entry per row: two rows
    assert out.shape == (20 * f + 2 * LEGEND_ROW + 4, 30 * f, 3)
    np.testing.assert_array_equal(out[: 20 * f], repeat(overlay_mask(image, mask, 3), f))
    swatch_y = 20 * f + 2 + 12
    assert out[swatch_y, 4 + 8].tolist() == [32, 32, 32]  # background: empty swatch
    assert out[swatch_y + LEGEND_ROW, 4 + 8].tolist() == class_palette(3)[2].tolist()
    assert not (out[20 * f :] == class_palette(3)[1]).all(axis=2).any()  # class 1 is absent: no swatch
    assert render_overlay(image, mask, CLASSES, min_width=1).shape[:2] == (20 + 2 * LEGEND_ROW + 4, 30)


def test_more_than_256_classes_write_uint16(tmp_path):
    paths = write_images(tmp_path / "in", [(5, 7)], np.random.default_rng(1))

    class Constant(nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 300, *x.shape[-2:])
            logits[:, 299] = 1.0
            return logits

    classes = [f"c{i}" for i in range(300)]
    predict_segmentation(Constant(), paths, tmp_path / "out", classes, "cpu")
    mask = cv2.imread(str(tmp_path / "out" / "img0.png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint16 and mask.shape == (5, 7) and (mask == 299).all()


def test_grey_and_rgba_inputs_are_read_as_rgb(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    rgba[..., 3] = 10
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 3) and (g == grey[..., None]).all()
    a = read_image(tmp_path / "a.png")
    assert a.shape == (3, 4, 3) and (a[..., 0] == 255).all() and (a[..., 1:] == 0).all()


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        predict_segmentation(TinySegModel(3), [bad], tmp_path / "out", CLASSES, "cpu")
    with pytest.raises(ValueError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_stem_collision_is_refused(tmp_path):
    paths = write_images(tmp_path / "a", [(4, 4)], np.random.default_rng(2))
    other = tmp_path / "b" / "img0.jpg"
    other.parent.mkdir()
    cv2.imwrite(str(other), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="both write img0.png"):
        predict_segmentation(TinySegModel(3), [paths[0], other], tmp_path / "out", CLASSES, "cpu")


def test_collect_image_paths(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ["b.PNG", "a.jpg", "c.txt", "d.tif"]:
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    assert [p.name for p in collect_image_paths(folder)] == ["a.jpg", "b.PNG", "d.tif"]
    assert collect_image_paths(folder / "a.jpg") == [folder / "a.jpg"]

    listing = tmp_path / "list.txt"
    listing.write_text("# images\nimgs/d.tif\n\nimgs/a.jpg\n")
    assert collect_image_paths(listing) == [folder / "d.tif", folder / "a.jpg"]
    listing.write_text("imgs/nope.png\n")
    with pytest.raises(ValueError, match="line 1.*nope.png"):
        collect_image_paths(listing)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images in folder .*empty"):
        collect_image_paths(empty)
    with pytest.raises(ValueError, match="does not exist"):
        collect_image_paths(tmp_path / "ghost")
    csv = tmp_path / "x.csv"
    csv.write_text("")
    with pytest.raises(ValueError, match="neither an image"):
        collect_image_paths(csv)


def test_pad_to_stride_matches_numpy_padding():
    x = torch.rand(2, 3, 37, 50)
    y = pad_to_stride(x, 32)
    assert y.shape == (2, 3, 64, 64)
    torch.testing.assert_close(y[..., :37, :50], x)
    assert (y[..., 37:, :] == 0).all() and (y[..., :, 50:] == 0).all()
    assert pad_to_stride(x[..., :32, :32], 32).shape == (2, 3, 32, 32)


def test_sixteen_bit_grey_is_scaled_by_its_maximum(tmp_path):
    grey = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    rgb = read_image(tmp_path / "g16.png")
    expected = (grey.astype(np.float64) * 255 / 4000).astype(np.uint8)
    assert rgb.dtype == np.uint8 and (rgb == expected[..., None]).all()
