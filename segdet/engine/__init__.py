"""The training loop and the validation pass shared with ``segdet eval``.

Example:
    >>> from segdet.config import load_config
    >>> from segdet.engine import train
    >>> run_dir = train(load_config("configs/unet_cutmix.yaml", ["train.epochs=1"]))
"""

from .commands import evaluate, predict
from .ema import ModelEMA
from .export import export
from .optim import LRFactor, build_optimizer, build_scheduler
from .trainer import NonFiniteLossError, TrainingInterrupted, train, train_one_epoch
from .validate import validate

__all__ = [
    "train",
    "train_one_epoch",
    "validate",
    "evaluate",
    "predict",
    "export",
    "ModelEMA",
    "build_optimizer",
    "build_scheduler",
    "LRFactor",
    "NonFiniteLossError",
    "TrainingInterrupted",
]
