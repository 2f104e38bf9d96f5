"""Config files: YAML validated against one declarative schema.

Example:
    >>> from segdet.config import load_config
    >>> cfg = load_config("configs/unet_cutmix.yaml", ["train.epochs=3", "model.encoder=resnet34"])
    >>> cfg["data"]["batch_size"]
    8
"""

from ._load import all_keys, apply_overrides, load_config, save_config, validate_config
from .errors import ConfigError
from .schema import KIND_SECTIONS, SCHEMA, TASK_ONLY, Field

__all__ = [
    "ConfigError",
    "Field",
    "SCHEMA",
    "KIND_SECTIONS",
    "TASK_ONLY",
    "load_config",
    "validate_config",
    "apply_overrides",
    "save_config",
    "all_keys",
]
