"""One seed reproduces a detection run exactly on the CPU: same weights bit for bit, whatever the
number of loader workers (each sample's augmentation and mixing is seeded from (seed, epoch,
index), not from the worker that draws it)."""

import torch

from segdet.config import validate_config
from segdet.engine import train


def _run(tmp_path, name, workers):
    cfg = validate_config(
        {
            "task": "detection",
            "seed": 0,
            "deterministic": True,
            "output_dir": str(tmp_path / name),
            "data": {
                "kind": "synthetic",
                "batch_size": 2,
                "num_workers": workers,
                "synthetic": {"train_size": 4, "val_size": 2, "height": 48, "width": 64},
            },
            "augment": {
                "train": [{"HorizontalFlip": {"p": 0.5}}],
                "mix": [{"Mosaic": {"p": 0.5, "size": [48, 64]}}, {"MixUp": {"p": 0.5}}],
            },
            "model": {"arch": "fasterrcnn_mobilenet_v3_large_p3_fpn", "min_size": 48, "max_size": 64},
            "train": {"epochs": 2, "metric": "map50", "progress": False},
        }
    )
    run = train(cfg)
    return torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)["model"]


def test_same_seed_same_weights_with_and_without_loader_workers(tmp_path):
    a = _run(tmp_path, "a", workers=0)
    b = _run(tmp_path, "b", workers=1)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
