"""The hand-written smp baseline of the DSB2018 benchmark: what a practitioner writes without segdet.

U-Net ResNet-34 (random init, one output channel), every image resized to 256x256, flips, Dice +
BCE, AdamW 1e-3 with a cosine schedule, batch 8, a DataLoader with workers. It trains for a wall
clock budget: it times its first steps, plans the number of steps that fit the budget (the cosine
runs over them), re-plans every 5 steps from the mean step time so far, and stops at the budget in
any case. Then it predicts every validation image once at 256x256 and writes two 0/1 PNGs per
image: ``OUT/at256/<id>.png`` (scored against masks resized to 256, "baseline at 256") and
``OUT/original/<id>.png`` (logits upsampled bilinearly to the image's own size, threshold 0.5),
plus ``OUT/baseline.json`` with the times and steps.

Usage::

    python benchmarks/baseline_smp.py --data ../shared/datasets/dsb2018 --budget 300 --seed 0 --output /tmp/base
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402


class Nuclei(torch.utils.data.Dataset):
    def __init__(self, folder: Path, transform: A.Compose) -> None:
        self.images = sorted((folder / "images").glob("*.png"))
        self.masks = [folder / "masks" / p.name for p in self.images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = cv2.cvtColor(cv2.imread(str(self.images[i]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = (cv2.imread(str(self.masks[i]), cv2.IMREAD_GRAYSCALE) > 0).astype(np.float32)
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"][None]


def _seed_worker(worker_id: int) -> None:  # otherwise every worker draws the same flips
    info = torch.utils.data.get_worker_info()
    info.dataset.transform.set_random_seed(torch.initial_seed() % 2**32)


def _forever(loader):
    while True:
        yield from loader


def train(data: Path, budget_s: float, seed: int, size: int = 256, batch: int = 8, workers: int = 2) -> tuple:
    """Train for ``budget_s`` seconds of wall clock; returns (model, stats)."""
    start = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    aug = A.Compose(
        [A.Resize(size, size), A.HorizontalFlip(), A.VerticalFlip(), A.Normalize(), ToTensorV2()], seed=seed
    )
    ds = Nuclei(data / "train", aug)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=len(ds) > batch,
        persistent_workers=workers > 0, worker_init_fn=_seed_worker, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    model = smp.Unet("resnet34", encoder_weights=None, classes=1).to(device)
    dice, bce = smp.losses.DiceLoss(mode="binary"), torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    plan = {"steps": None}  # set after the first timed steps; the cosine runs over it
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 if plan["steps"] is None else 0.5 * (1 + math.cos(math.pi * min(s / plan["steps"], 1.0)))
    )
    step, timed, deadline = 0, 5, start + budget_s
    for x, y in _forever(loader):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = dice(logits, y) + bce(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        loss.item()
        step += 1
        now = time.perf_counter()
        if step == 1:
            t_first = now  # the first step also starts the workers: time the next ones
        elif (step - 1) % timed == 0:  # (re)plan from the mean step time so far, so the cosine ends at the budget
            plan["steps"] = step + int((deadline - now) / ((now - t_first) / (step - 1)))
        if now >= deadline or step == plan["steps"]:
            break
    stats = {"train_s": time.perf_counter() - start, "steps": step, "planned_steps": plan["steps"]}
    return model, {**stats, "epochs": step / len(loader), "budget_s": budget_s}


@torch.inference_mode()
def predict(model: torch.nn.Module, folder: Path, out: Path, size: int = 256) -> float:
    """Write the 0/1 masks at ``size`` and at each image's own size; returns the wall seconds."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    model.eval()
    tf = A.Compose([A.Resize(size, size), A.Normalize(), ToTensorV2()])
    at_size = f"at{size}"
    for sub in (at_size, "original"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for path in sorted((folder / "images").glob("*.png")):
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        logits = model(tf(image=image)["image"][None].to(device))
        full = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
        cv2.imwrite(str(out / at_size / path.name), (logits[0, 0] > 0).byte().cpu().numpy())
        cv2.imwrite(str(out / "original" / path.name), (full[0, 0] > 0).byte().cpu().numpy())
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ (images/, masks/)")
    p.add_argument("--budget", type=float, required=True, help="training wall clock in seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--size", type=int, default=256, help="the one size every image is resized to")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = p.parse_args()
    model, stats = train(args.data, args.budget, args.seed, args.size, workers=args.workers)
    stats["predict_s"] = predict(model, args.data / "val", args.output, args.size)
    (args.output / "baseline.json").write_text(json.dumps(stats, indent=2))
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
