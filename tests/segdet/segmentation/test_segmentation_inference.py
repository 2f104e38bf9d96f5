"""Inference: sliding-window blending and TTA against naive float64 references, and its bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from segdet.config import load_config
from segdet.segmentation import SegmentationEvaluator, predict_segmentation
from segdet.segmentation.inference import Inference, gaussian_weight, tile_starts
from segdet.task import build_task


def _conv_model(seed: int = 0, k: int = 3, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, k, padding=k // 2), nn.Tanh(), nn.Conv2d(8, classes, k, padding=k // 2)).eval()


def _naive_slide(model, x, tile, overlap, blend):
    """Per-pixel weighted average of the (float32) tile logits, accumulated in float64 with explicit loops."""
    b, _, h, w = x.shape
    th, tw = tile
    out, norm = None, torch.zeros((h, w), dtype=torch.float64)
    ys = tile_starts(h, th, overlap)
    xs = tile_starts(w, tw, overlap)
    if blend == "gaussian":
        gy = np.exp(-0.5 * ((np.arange(th) - (th - 1) / 2) / (th / 8)) ** 2)
        gx = np.exp(-0.5 * ((np.arange(tw) - (tw - 1) / 2) / (tw / 8)) ** 2)
        wt = np.outer(gy, gx)
        wt = torch.from_numpy(np.maximum(wt / wt.max(), 1e-3))
    else:
        wt = torch.ones((th, tw), dtype=torch.float64)
    for y0, x0 in itertools.product(ys, xs):
        with torch.no_grad():
            logits = model(x[:, :, y0 : y0 + th, x0 : x0 + tw]).double()
        if out is None:
            out = torch.zeros((b, logits.shape[1], h, w), dtype=torch.float64)
        out[:, :, y0 : y0 + th, x0 : x0 + tw] += logits * wt
        norm[y0 : y0 + th, x0 : x0 + tw] += wt
    return out / norm


@pytest.mark.parametrize(
    "length,tile,overlap",
    [(10, 4, 0.5), (10, 4, 0.0), (257, 64, 0.25), (64, 64, 0.25), (1000, 333, 0.9), (5, 8, 0.5)],
)
def test_tile_starts_cover_the_axis_and_stay_inside(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and (s + tile <= length or (s == 0 and tile >= length))
        covered[s : s + tile] = True
    assert covered.all() and starts == sorted(set(starts))
    if tile < length:
        assert starts[-1] == length - tile  # the last tile is shifted inside, never padded
        steps = np.diff(starts)
        assert (steps[:-1] == max(1, int(tile * (1 - overlap)))).all()


def test_gaussian_weight_matches_the_formula():
    w = gaussian_weight(7, 12).double()
    gy = np.exp(-0.5 * ((np.arange(7) - 3) / (7 / 8)) ** 2)
    gx = np.exp(-0.5 * ((np.arange(12) - 5.5) / (12 / 8)) ** 2)
    ref = np.maximum(np.outer(gy, gx) / np.outer(gy, gx).max(), 1e-3)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize("blend", ["gaussian", "mean"])
@pytest.mark.parametrize("shape,tile,overlap", [((37, 53), (16, 24), 0.25), ((64, 64), (32, 32), 0.5)])
def test_slide_equals_the_naive_weighted_average(blend, shape, tile, overlap):
    model = _conv_model()
    x = torch.rand((2, 3, *shape), generator=torch.Generator().manual_seed(1))
    inf = Inference(mode="slide", tile=tile, overlap=overlap, blend=blend, batch=3)
    with torch.no_grad():
        ours = inf(model, x)
    ref = _naive_slide(model, x, tile, overlap, blend)
    assert ours.dtype == torch.float32 and ours.shape == (2, 3, *shape)
    torch.testing.assert_close(ours.double(), ref, rtol=0, atol=2e-6)


def test_slide_equals_whole_for_a_pointwise_model_at_millions_of_pixels():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1).eval()  # no context: every tile sees the same per-pixel logits
    x = torch.rand((1, 3, 1500, 1100), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model(x)
        slide = Inference(mode="slide", tile=(512, 384), overlap=0.25, blend="gaussian", batch=2)(model, x)
    torch.testing.assert_close(slide, whole, rtol=0, atol=1e-5)


def test_flip_and_scale_tta_average_the_mapped_back_logits():
    model = _conv_model(seed=3)
    x = torch.rand((1, 3, 40, 56), generator=torch.Generator().manual_seed(4))
    inf = Inference(flip=("h", "v"), scales=(0.75, 1.0))
    with torch.no_grad():
        ours = inf(model, x)
        passes = []
        for s in (0.75, 1.0):
            size = (round(40 * s), round(56 * s))
            xs = x if s == 1.0 else F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            for dims in (None, [-1], [-2]):
                y = model(xs.flip(dims)).flip(dims) if dims else model(xs)
                passes.append(F.interpolate(y, size=(40, 56), mode="bilinear", align_corners=False))
        ref = torch.stack(passes).double().mean(0)
    torch.testing.assert_close(ours.double(), ref, rtol=0, atol=1e-5)
    assert not inf.plain and Inference().plain


def test_slide_with_flip_combines_both():
    model = _conv_model(seed=5)
    x = torch.rand((1, 3, 48, 40), generator=torch.Generator().manual_seed(6))
    inf = Inference(mode="slide", tile=(32, 32), overlap=0.25, flip=("h",))
    with torch.no_grad():
        ours = inf(model, x)
    plain = _naive_slide(model, x, (32, 32), 0.25, "gaussian")
    flipped = _naive_slide(model, x.flip([-1]), (32, 32), 0.25, "gaussian").flip([-1])
    torch.testing.assert_close(ours.double(), (plain + flipped) / 2, rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "tiles"}, "inference.mode 'tiles' is not one of whole, slide"),
        ({"mode": "slide"}, "inference.mode slide needs inference.tile"),
        ({"mode": "slide", "tile": (0, 8)}, "inference.tile must be"),
        ({"overlap": 1.0}, r"inference.overlap must lie in \[0, 1\)"),
        ({"overlap": -0.1}, r"inference.overlap must lie in \[0, 1\)"),
        ({"scales": (0.0, 1.0)}, "inference.scales must be a non-empty list of positive factors"),
        ({"scales": ()}, "inference.scales must be a non-empty list"),
        ({"flip": ("x",)}, "inference.flip must list distinct directions"),
        ({"blend": "max"}, "inference.blend 'max' is not one of gaussian, mean"),
        ({"batch": 0}, "inference.batch must be a positive int"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Inference(**kwargs)


def test_a_tile_larger_than_the_image_is_refused_with_the_fix():
    inf = Inference(mode="slide", tile=(64, 64))
    with pytest.raises(ValueError, match=r"inference.tile \[64, 64\] is larger than a 40x80 image"):
        inf(_conv_model(), torch.rand(1, 3, 40, 80))


def test_config_errors_stop_before_any_data_is_read(tmp_path):
    cfg = load_config("configs/unet_cutmix.yaml", ["inference.mode=slide", f"output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="inference.mode slide needs inference.tile"):
        build_task(cfg).check()
    cfg = load_config("configs/unet_cutmix.yaml", ["inference.overlap=1.5", f"output_dir={tmp_path}"])
    with pytest.raises(ValueError, match=r"inference.overlap must lie in \[0, 1\)"):
        build_task(cfg).check()


def test_evaluator_scores_each_image_at_its_own_size_with_sliding_windows():
    model = _conv_model(seed=7, classes=2)
    g = torch.Generator().manual_seed(8)
    images = torch.zeros(2, 3, 64, 64)
    images[0, :, :40, :50] = torch.rand(3, 40, 50, generator=g)
    images[1, :, :64, :48] = torch.rand(3, 64, 48, generator=g)
    mask = torch.full((2, 64, 64), 255, dtype=torch.long)
    mask[0, :40, :50] = torch.randint(0, 2, (40, 50), generator=g)
    mask[1, :64, :48] = torch.randint(0, 2, (64, 48), generator=g)
    batch = {"image": images, "mask": mask, "sizes": torch.tensor([[40, 50], [64, 48]])}
    inf = Inference(mode="slide", tile=(32, 32), overlap=0.5, blend="mean")
    ev = SegmentationEvaluator(2, 255, ["bg", "fg"], "cpu", inference=inf)
    ev.update(model, batch)
    ref = np.zeros((2, 2), np.int64)
    for i, (h, w) in enumerate([(40, 50), (64, 48)]):
        pred = _naive_slide(model, images[i : i + 1, :, :h, :w], (32, 32), 0.5, "mean").argmax(1)[0]
        np.add.at(ref, (mask[i, :h, :w].numpy().ravel(), pred.numpy().ravel()), 1)
    np.testing.assert_array_equal(ev.confusion().numpy(), ref)


def test_predict_writes_the_argmax_of_the_sliding_window_logits(tmp_path):
    model = _conv_model(seed=9, classes=3)
    image = np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    inf = Inference(mode="slide", tile=(32, 32), overlap=0.25, flip=("v",))
    [written] = predict_segmentation(
        model, [tmp_path / "a.png"], tmp_path / "out", ["a", "b", "c"], "cpu", inference=inf
    )
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        expected = inf(model, x).argmax(1)[0].numpy()
    np.testing.assert_array_equal(np.asarray(Image.open(written)), expected)
