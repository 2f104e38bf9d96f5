"""A tiny task for testing the training loop without smp, albumentations or the data package.

Images are 3x16x16 noise whose class per pixel is the argmax of the first C channels' blurred
values; the dataset flips samples with numpy's *global* generator (as many user datasets do), so
the tests also cover the loop's per-epoch reseeding.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segdet.config import validate_config
from segdet.task import DataSpec, Evaluator, Task

NUM_CLASSES = 3


class NoiseSegmentation(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int, delay: float = 0.0, flip: bool = True) -> None:
        rng = np.random.default_rng(seed)
        self.images = rng.random((n, 3, 16, 16), dtype=np.float32)
        self.masks = self.images[:, :NUM_CLASSES].argmax(1).astype(np.int64)
        self.delay, self.flip = delay, flip
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        if self.delay:
            time.sleep(self.delay)
        image, mask = self.images[i], self.masks[i]
        if self.flip and np.random.random() < 0.5:  # global RNG on purpose
            image, mask = image[..., ::-1], mask[..., ::-1]
        return {"image": np.ascontiguousarray(image), "mask": np.ascontiguousarray(mask)}


def collate(samples: list[dict]) -> dict:
    return {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
        "mask": torch.from_numpy(np.stack([s["mask"] for s in samples])),
    }


class AccuracyEvaluator(Evaluator):
    def __init__(self, device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, model, batch) -> None:
        pred = model(batch["image"]).argmax(1)
        self.correct += int((pred == batch["mask"]).sum())
        self.total += batch["mask"].numel()

    def compute(self) -> dict[str, float]:
        return {"acc": self.correct / max(self.total, 1)}

    def report(self, out_dir: Path) -> str:
        return f"acc {self.compute()['acc']:.4f}"


class FakeTask(Task):
    name = "fake"
    metrics = ("acc",)

    def __init__(
        self, cfg, fail_at_call: int | None = None, nan_at_call: int | None = None, delay: float = 0.0
    ) -> None:
        super().__init__(cfg)
        self.calls = 0
        self.fail_at_call, self.nan_at_call, self.delay = fail_at_call, nan_at_call, delay

    def build_datasets(self):
        spec = DataSpec(tuple(f"class_{i}" for i in range(NUM_CLASSES)))
        return NoiseSegmentation(16, 1, self.delay), NoiseSegmentation(8, 2, flip=False), spec  # val: no randomness

    def collate_fn(self, spec):
        return collate

    def build_model(self, spec=None) -> nn.Module:
        torch.manual_seed(self.cfg["seed"])
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2), nn.Conv2d(8, NUM_CLASSES, 1)
        )

    def loss(self, model, batch):
        self.calls += 1
        if self.fail_at_call is not None and self.calls == self.fail_at_call:
            raise RuntimeError("simulated crash")
        logits = model(batch["image"])
        ce = nn.functional.cross_entropy(logits, batch["mask"])
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            ce = ce * float("nan")
        return ce, {"ce": ce.detach()}

    def make_evaluator(self, spec, device):
        return AccuracyEvaluator(device)


def fake_config(out: Path, **train) -> dict:
    """A validated config for FakeTask writing to ``out``."""
    cfg = {
        "task": "segmentation",
        "seed": 3,
        "deterministic": True,
        "output_dir": str(out),
        "data": {"batch_size": 4, "num_workers": 0},
        "optim": {"name": "adamw", "lr": 0.01},
        "schedule": {"name": "cosine", "warmup_epochs": 0.5},
        "train": {"epochs": 2, "device": "cpu", "metric": "acc", "progress": False, "ema": 0.9, **train},
    }
    return validate_config(cfg)


class KilledTask(FakeTask):
    """SIGKILLs its own process at loss call ``kill_at`` (1-based, counted over this process's calls)."""

    def __init__(self, cfg, kill_at: int, **kwargs) -> None:
        super().__init__(cfg, **kwargs)
        self.kill_at = kill_at

    def loss(self, model, batch):
        if self.calls + 1 == self.kill_at:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(model, batch)


if __name__ == "__main__":  # the SIGKILL, progress and fault-injection runs: python fake_task.py OUT EPOCHS [RESUME]
    import sys

    from segdet.engine import train

    torch.set_num_threads(int(os.environ.get("FAKE_THREADS", "1")))
    out, epochs = Path(sys.argv[1]), int(sys.argv[2])
    resume = sys.argv[3] if len(sys.argv) > 3 else None
    every = os.environ.get("FAKE_CHECKPOINT_EVERY")
    cfg = fake_config(
        out,
        epochs=epochs,
        progress=os.environ.get("FAKE_PROGRESS") == "1",
        checkpoint_every=int(every) if every else None,
        accumulate=int(os.environ.get("FAKE_ACCUMULATE", "1")),
    )
    cfg["data"]["num_workers"] = int(os.environ.get("FAKE_WORKERS", "0"))
    delay = float(os.environ.get("FAKE_DELAY", "0"))
    kill_at = int(os.environ.get("FAKE_KILL_AT", "0"))
    task = KilledTask(cfg, kill_at, delay=delay) if kill_at else FakeTask(cfg, delay=delay)
    train(cfg, resume=resume, task=task)
