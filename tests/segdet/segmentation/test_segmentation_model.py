"""Model building by name, in-model normalisation and padding, local weights."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch

from segdet.checkpoint import save_checkpoint
from segdet.segmentation.model import SegmentationModel, build_segmentation_model, load_weights

CFG = {"arch": "Unet", "encoder": "resnet18", "encoder_weights": None, "weights": None}


def test_wrapper_equals_smp_on_normalised_input():
    torch.manual_seed(0)
    model = build_segmentation_model(CFG, num_classes=3).eval()
    x = torch.rand(2, 3, 64, 96)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net((x - mean) / std))
    assert isinstance(model.net, smp.Unet)


def test_input_not_divisible_by_32_is_padded_with_zeros_and_cropped_back():
    torch.manual_seed(0)
    model = build_segmentation_model({**CFG, "arch": "fpn"}, num_classes=2).eval()
    x = torch.rand(1, 3, 40, 50)
    padded = torch.zeros(1, 3, 64, 64)
    padded[..., :40, :50] = x
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, model(padded)[..., :40, :50])
    assert out.shape == (1, 2, 40, 50)


@pytest.mark.parametrize(
    "key, value, hint",
    [
        ("arch", "Unte", "did you mean 'Unet'"),
        ("arch", "deeplab", "available: Unet"),
        ("encoder", "resnet-18", "did you mean 'resnet18'"),
    ],
)
def test_unknown_names_suggest_the_closest(key, value, hint):
    with pytest.raises(ValueError, match=f"model.{key} '{value}' is not an smp .*{hint}"):
        build_segmentation_model({**CFG, key: value}, num_classes=2)


def test_weights_from_checkpoint_and_from_bare_smp_state_dict(tmp_path):
    torch.manual_seed(1)
    source = build_segmentation_model(CFG, num_classes=3)
    save_checkpoint({"model": source.state_dict(), "ema": None, "epoch": 1}, tmp_path / "ckpt.pt")
    torch.save(source.net.state_dict(), tmp_path / "bare.pt")
    for name in ("ckpt.pt", "bare.pt"):
        model = build_segmentation_model({**CFG, "weights": str(tmp_path / name)}, num_classes=3)
        for k, v in source.state_dict().items():
            assert torch.equal(model.state_dict()[k], v), (name, k)


def test_weights_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        build_segmentation_model({**CFG, "weights": str(tmp_path / "missing.pt")}, num_classes=3)
    torch.save(build_segmentation_model(CFG, num_classes=5).state_dict(), tmp_path / "five.pt")
    with pytest.raises(ValueError, match=r"five.pt: net.segmentation_head.0.weight has shape \(5,"):
        load_weights(build_segmentation_model(CFG, num_classes=3), tmp_path / "five.pt")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt does not fit this model"):
        load_weights(build_segmentation_model(CFG, num_classes=3), tmp_path / "other.pt")


def test_bad_mean_std():
    with pytest.raises(ValueError, match="model.mean has 2 values but model.std has 3"):
        SegmentationModel(torch.nn.Identity(), mean=[0.5, 0.5], std=[1, 1, 1])
