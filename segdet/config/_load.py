"""Loading, overriding and validating configs against :data:`segdet.config.schema.SCHEMA`."""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from segdet._atomic import atomic_write_text

from .errors import ConfigError
from .schema import KIND_SECTIONS, SCHEMA, TASK_ONLY, Field

_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true/false",
    list: "a list",
    dict: "a mapping",
}


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a YAML config, apply ``key.sub=value`` overrides, validate, fill defaults.

    Relative paths in the file (``data.folder.train``, ``model.weights``, ...) are resolved against
    the folder of the config file; relative paths given as overrides against the current directory.
    ``output_dir`` is always relative to the current directory.

    Args:
        path: the YAML file.
        overrides: strings like ``"train.epochs=3"``; values are parsed as YAML scalars/flow
            collections (``augment.mix=[]``, ``model.weights=null``).

    Returns:
        The validated config: a plain nested dict with every key of the schema.

    Raises:
        ConfigError: the file is missing, empty or not YAML, or a key/value is invalid (the message
            names the file or override, the key, the value and the fix). Checks across keys
            (required keys of the data kind, keys the task ignores) run once, after the
            overrides, so an override can supply or fix what the file lacks.

    Example:
        >>> cfg = load_config("configs/unet_cutmix.yaml", ["train.epochs=3"])
        >>> cfg["train"]["epochs"]
        3
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if raw is None:
        raise ConfigError(
            f"config {path} is empty (no key set, so every value would be a built-in default); write the "
            "sections to change (task:, data:, model:, train:, ...) or start from one of segdet's configs/*.yaml"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (task:, data:, model:, ...), got {type(raw).__name__}"
        )
    errors: list[str] = []
    cfg = _validate_section(raw, SCHEMA, (), str(path), errors, path.resolve().parent)
    if errors:
        raise ConfigError("\n".join(errors))
    if overrides:
        cfg = _override(cfg, overrides)
    _raise_cross_key_errors(cfg, str(path))
    return cfg


def validate_config(raw: dict[str, Any], source: str = "<config>", base_dir: Path | None = None) -> dict[str, Any]:
    """Check ``raw`` against the schema and return it with defaults filled and paths resolved.

    Args:
        raw: nested dict as read from YAML (possibly partial).
        source: the file name used in error messages.
        base_dir: folder that relative ``path`` fields are resolved against (``None``: the
            current directory).

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    errors: list[str] = []
    cfg = _validate_section(raw, SCHEMA, (), source, errors, base_dir or Path.cwd())
    if errors:
        raise ConfigError("\n".join(errors))
    _raise_cross_key_errors(cfg, source)
    return cfg


def apply_overrides(cfg: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of a validated ``cfg`` with ``key.sub=value`` overrides applied and re-validated.

    Raises:
        ConfigError: malformed override, unknown key (with did-you-mean) or bad value; after the
            last override, a required key missing or a key the task ignores.
    """
    cfg = _override(cfg, overrides)
    _raise_cross_key_errors(cfg, "the config with the command-line overrides")
    return cfg


def _override(cfg: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``cfg`` with each override applied and its keys and values checked (checks across keys: the caller)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        source = f"command-line override {item!r}"
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{source} must look like key.sub=value, e.g. train.epochs=3")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"{source}: the value {text!r} is not valid YAML ({exc.__class__.__name__}); "
                "quote strings with spaces or brackets"
            ) from None
        parts = key.split(".")
        node: Any = SCHEMA
        target = cfg
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, dict):  # a schema section
                if part not in node:
                    prefix = ".".join(parts[:i])
                    raise ConfigError(_unknown_key_message(part, prefix, node, source))
                node = node[part]
                if last:
                    target[part] = value
                elif isinstance(node, Field):
                    if dict not in node.types:
                        raise ConfigError(
                            f"{source}: {'.'.join(parts[: i + 1])} is {_expected(node)}, "
                            f"it has no sub-key {parts[i + 1]!r}"
                        )
                    if not isinstance(target.get(part), dict):
                        target[part] = {}
                    target = target[part]
                else:
                    target = target[part]
            else:  # inside a free-form mapping (e.g. loss.dice.weight)
                if last:
                    target[part] = value
                else:
                    if not isinstance(target.get(part), dict):
                        target[part] = {}
                    target = target[part]
        errors: list[str] = []
        cfg = _validate_section(cfg, SCHEMA, (), source, errors, Path.cwd())
        if errors:
            raise ConfigError("\n".join(errors))
    return cfg


def save_config(cfg: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML (atomically: temp file + rename); it loads back to the same dict."""
    return atomic_write_text(path, yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))


def all_keys(schema: dict[str, Any] = SCHEMA, prefix: str = "") -> list[tuple[str, Field]]:
    """Every leaf of the schema as ``("section.key", Field)``, in declaration order."""
    out = []
    for name, node in schema.items():
        key = f"{prefix}{name}"
        if isinstance(node, dict):
            out.extend(all_keys(node, key + "."))
        else:
            out.append((key, node))
    return out


# --------------------------------------------------------------------------------------------


def _validate_section(
    raw: Any, schema: dict[str, Any], where: tuple[str, ...], source: str, errors: list[str], base_dir: Path
) -> dict[str, Any]:
    name = ".".join(where)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.append(f"{source}: section {name!r} must be a mapping of keys, got {raw!r}")
        raw = {}
    for key in raw:
        if key not in schema:
            errors.append(_unknown_key_message(str(key), name, schema, source))
    out: dict[str, Any] = {}
    for key, node in schema.items():
        if isinstance(node, dict):
            out[key] = _validate_section(raw.get(key), node, where + (key,), source, errors, base_dir)
        elif key in raw:
            out[key] = _check_value(raw[key], node, ".".join(where + (key,)), source, errors, base_dir)
        else:
            out[key] = copy.deepcopy(node.default)
    return out


def _check_value(value: Any, spec: Field, key: str, source: str, errors: list[str], base_dir: Path) -> Any:
    if value is None:
        if spec.nullable or spec.default is None:
            return None
        errors.append(f"{source}: {key} is null but must be {_expected(spec)}")
        return spec.default
    converted = _coerce(value, spec.types)
    if converted is _BAD:
        errors.append(f"{source}: {key} = {value!r} is {_describe(value)}, expected {_expected(spec)}")
        return spec.default
    value = converted
    if spec.choices is not None:  # of a list: every element must be one of them
        for item in value if isinstance(value, list) else [value]:
            if item in spec.choices:
                continue
            hint = difflib.get_close_matches(str(item), [str(c) for c in spec.choices], n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            where = f"{key} = {value!r}: {item!r}" if isinstance(value, list) else f"{key} = {value!r}"
            errors.append(f"{source}: {where} is not one of {', '.join(map(str, spec.choices))}{extra}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            errors.append(f"{source}: {key} = {value!r} must be >= {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            errors.append(f"{source}: {key} = {value!r} must be <= {spec.maximum}")
    if spec.path and isinstance(value, str):
        p = Path(os.path.expanduser(value))
        value = str(p if p.is_absolute() else (base_dir / p).resolve())
    return value


_BAD = object()


def _coerce(value: Any, types: tuple[type, ...]) -> Any:
    """``value`` converted to one of ``types`` when that is lossless, else ``_BAD``."""
    for t in types:
        if t is bool:
            if isinstance(value, bool):
                return value
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif t is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
                try:
                    return float(value)
                except ValueError:
                    pass
        elif isinstance(value, t):
            return value
    return _BAD


def _expected(spec: Field) -> str:
    names = [_TYPE_NAMES.get(t, t.__name__) for t in spec.types]
    text = " or ".join(names)
    if spec.nullable:
        text += " or null"
    if spec.choices:
        each = "each " if list in spec.types else ""
        text += f" ({each}one of {', '.join(map(str, spec.choices))})"
    return text


def _describe(value: Any) -> str:
    for t in (bool, int, float, str, list, dict):
        if isinstance(value, t):
            return _TYPE_NAMES[t]
    return type(value).__name__


def _unknown_key_message(key: str, section: str, schema: dict[str, Any], source: str) -> str:
    full = f"{section}.{key}" if section else key
    close = difflib.get_close_matches(key, list(schema), n=3, cutoff=0.6)
    suggestions = [f"{section}.{c}" if section else c for c in close]
    # the same key name in another section (train.lr -> optim.lr)
    for other, _ in all_keys():
        if other.rsplit(".", 1)[-1] == key and other != full and other not in suggestions:
            suggestions.append(other)
    if suggestions:
        hint = "did you mean " + " or ".join(suggestions) + "?"
    else:
        valid = ", ".join(sorted(schema)) or "(none)"
        hint = f"valid keys{' of ' + section if section else ''}: {valid}"
    return f"{source}: unknown key {full!r}; {hint}"


def _raise_cross_key_errors(cfg: dict[str, Any], source: str) -> None:
    """The checks that read several keys at once: required keys of the data kind, keys the task ignores."""
    errors: list[str] = []
    _check_required(cfg, source, errors)
    _check_task_keys(cfg, source, errors)
    if errors:
        raise ConfigError("\n".join(errors))


def _check_task_keys(cfg: dict[str, Any], source: str, errors: list[str]) -> None:
    """Keys of :data:`TASK_ONLY` set away from their default under the other task; mixing that never runs."""
    task = cfg.get("task")
    for key, spec in all_keys():
        owner = next((TASK_ONLY[p] for p in _prefixes(key) if p in TASK_ONLY), None)
        if owner is None or owner[0] == task:
            continue
        value = _get(cfg, key)
        if value != spec.default:
            errors.append(
                f"{source}: {key} = {value!r} is a {owner[0]} setting, and task {task} ignores it ({owner[1]}); "
                f"remove it (default {spec.default!r}) or set task: {owner[0]}"
            )
    aug, epochs = cfg["augment"], cfg["train"]["epochs"]
    if cfg["train"]["val_interval"] is None and cfg["train"]["patience"] is not None:
        errors.append(
            f"{source}: train.patience = {cfg['train']['patience']} counts validations, but train.val_interval "
            "is null (no validation); set train.val_interval or train.patience=null"
        )
    if task == "detection" and aug["mix"] and aug["mix_off_last_epochs"] >= epochs:
        errors.append(
            f"{source}: augment.mix_off_last_epochs = {aug['mix_off_last_epochs']} switches the mixers off for all "
            f"train.epochs = {epochs} epochs, so augment.mix never runs; set it below train.epochs, e.g. "
            f"augment.mix_off_last_epochs={epochs // 5}"
        )


def _prefixes(key: str) -> list[str]:
    """``"a.b.c"`` -> ``["a.b.c", "a.b", "a"]``: the key and the sections holding it, innermost first."""
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _get(cfg: dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for p in key.split("."):
        node = node.get(p) if isinstance(node, dict) else None
    return node


def _check_required(cfg: dict[str, Any], source: str, errors: list[str]) -> None:
    for key, spec in all_keys():
        if not spec.required:
            continue
        parts = key.split(".")
        if len(parts) >= 3 and parts[0] == "data" and parts[1] in KIND_SECTIONS and cfg["data"]["kind"] != parts[1]:
            continue
        node: Any = cfg
        for p in parts:
            node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            why = f" (data.kind is {parts[1]})" if parts[0] == "data" and parts[1] in KIND_SECTIONS else ""
            errors.append(f"{source}: {key} is required{why}; set it in the file or with {key}=...")
