"""One rank of the two-process DDP tests, launched like torchrun does (environment variables).

Kept light: spawned children import it by name.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import torch

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "unet_cutmix.yaml"


def tiny_overrides(out_dir: str) -> list[str]:
    """The default config shrunk to seconds on CPU: 8 training and 5 (odd) validation images."""
    return [
        "data.synthetic.train_size=8",
        "data.synthetic.val_size=5",
        "data.synthetic.height=32",
        "data.synthetic.width=64",
        "data.batch_size=2",
        "data.num_workers=0",
        "train.epochs=1",
        "train.device=cpu",
        "train.progress=false",
        "train.dist_timeout=60",
        "schedule.warmup_epochs=0",
        f"output_dir={out_dir}",
    ]


def ddp_logs() -> str:
    """The run logs of the two-process test: TensorBoard too where it is installed."""
    import importlib.util

    return "[csv,tensorboard]" if importlib.util.find_spec("tensorboard") else "[csv]"


def _torchrun_env(rank: int, world: int, port: int) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world),
            "NO_ALBUMENTATIONS_UPDATE": "1",
        }
    )


def train_then_eval(rank: int, port: int, out_dir: str, result_file: str) -> None:
    """Train the tiny config for one epoch on two ranks, evaluate its last.pt on two ranks, then
    provoke a stalled collective on rank 0 (rank 1 skips it) and record the message."""
    torch.set_num_threads(1)
    _torchrun_env(rank, 2, port)
    import torch.distributed as dist

    from segdet.config import load_config
    from segdet.engine import distributed, evaluate, train

    cfg = load_config(CONFIG, tiny_overrides(out_dir) + [f"train.log={ddp_logs()}"])
    run_dir = train(cfg)
    ckpt = Path(out_dir) / "weights" / "last.pt"
    metrics, table = evaluate(cfg, ckpt)

    stalled = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=2))
    message = None
    if rank == 0:
        try:
            with distributed.watch("the test's lone all-reduce", timeout=2):
                dist.all_reduce(torch.ones(1), group=stalled)
        except distributed.DistributedTimeout as exc:
            message = str(exc)
    dist.barrier()  # rank 1 waits here until rank 0's all-reduce timed out
    torch.save(
        {"run_dir": run_dir, "metrics": metrics, "table": table, "timeout_message": message}, f"{result_file}.{rank}"
    )
    distributed.cleanup()


def train_feature_mix(rank: int, port: int, out_dir: str, result_file: str) -> None:
    """Train the tiny config on two ranks with encoder-feature mixing (ManifoldMixup and PatchUp on
    every step) and EMA; save this rank's final weights and the run folder it saw."""
    torch.set_num_threads(1)
    _torchrun_env(rank, 2, port)
    from segdet.config import load_config
    from segdet.engine import distributed, train

    overrides = tiny_overrides(out_dir) + [
        "augment.mix=[]",
        "augment.feature_mix=[{ManifoldMixup: {p: 0.5}}, {PatchUp: {p: 0.5}}]",
        "train.ema=0.9",
        "data.synthetic.train_size=16",
    ]
    from segdet.engine.ema import ModelEMA
    from segdet.segmentation import feature_mix

    mixed, seen = [0], {}
    mix, update = feature_mix._StageHooks.mix, ModelEMA.update

    def counting_mix(self, x):
        mixed[0] += 1
        return mix(self, x)

    def remembering_update(self, model):
        seen["model"] = model  # this rank's replica (inside DDP), read after training
        return update(self, model)

    feature_mix._StageHooks.mix, ModelEMA.update = counting_mix, remembering_update
    run_dir = train(load_config(CONFIG, overrides))
    # parameters only: batch-norm statistics are rank-local between DDP's buffer broadcasts
    replica = {k: v.detach().clone() for k, v in seen["model"].named_parameters()}
    torch.save({"run_dir": run_dir, "mixed": mixed[0], "replica": replica}, f"{result_file}.{rank}")
    distributed.cleanup()
