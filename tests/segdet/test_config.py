"""Config loading: defaults, did-you-mean, type errors, required keys, overrides, paths, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segdet.config import (
    SCHEMA,
    ConfigError,
    Field,
    all_keys,
    apply_overrides,
    load_config,
    save_config,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_empty_config_gets_every_default():
    cfg = validate_config({})
    for key, spec in all_keys():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == spec.default, key


def test_schema_fields_all_have_help_and_valid_defaults():
    for key, spec in all_keys():
        assert isinstance(spec, Field) and spec.help, key
        assert (
            spec.default is None
            or isinstance(spec.default, spec.types)
            or (float in spec.types and isinstance(spec.default, int))
        ), key


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(config):
    cfg = load_config(config)
    assert cfg["task"] in ("segmentation", "detection")


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("unet_*.yaml")), ids=lambda p: p.name)
def test_shipped_segmentation_configs_build_their_pipelines(config):
    from segdet.data import build_mixers, build_pipeline

    cfg = load_config(config)
    for key in ("train", "val", "post"):
        build_pipeline(cfg["augment"][key], boxes=True, key=f"augment.{key}")
    assert len(build_mixers(cfg["augment"]["mix"], num_classes=2, ignore_index=255)) == len(cfg["augment"]["mix"])


def test_unknown_key_names_file_key_and_closest(tmp_path):
    path = _write(tmp_path, "train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "'train.epoch'" in msg and "did you mean train.epochs" in msg


def test_unknown_key_in_the_wrong_section_points_to_the_right_one(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'train.lr'; did you mean optim.lr"):
        load_config(_write(tmp_path, "train:\n  lr: 0.1\n"))


def test_unknown_top_level_key_without_match_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'; valid keys: .*augment.*train"):
        load_config(_write(tmp_path, "zzz: 1\n"))


def test_all_problems_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "seed: abc\noptim:\n  lrr: 1\n"))
    assert len(str(err.value).splitlines()) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train:\n  epochs: three\n", "train.epochs = 'three' is a string, expected an integer"),
        ("train:\n  epochs: true\n", "train.epochs = True is true/false, expected an integer"),
        ("train:\n  epochs: 2.5\n", "train.epochs = 2.5 is a number, expected an integer"),
        ("optim:\n  lr: [1]\n", "optim.lr = [1] is a list, expected a number"),
        ("data:\n  classes: background\n", "data.classes = 'background' is a string, expected a list or null"),
        ("train:\n  epochs: 0\n", "train.epochs = 0 must be >= 1"),
        ("train:\n  ema: 1.5\n", "train.ema = 1.5 must be <= 1.0"),
        (
            "schedule:\n  name: cosin\n",
            "schedule.name = 'cosin' is not one of cosine, poly, onecycle, constant; did you mean 'cosine'?",
        ),
        ("train: 3\n", "section 'train' must be a mapping of keys, got 3"),
        ("task: null\n", "task is null but must be a string (one of segmentation, detection)"),
    ],
)
def test_bad_values_name_key_value_and_expected_type(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {expected}"


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_numbers_yaml_reads_as_strings_are_accepted_for_floats(tmp_path):
    cfg = load_config(_write(tmp_path, "optim:\n  lr: 1e-3\n  weight_decay: 0\n"))
    assert cfg["optim"]["lr"] == 0.001 and isinstance(cfg["optim"]["weight_decay"], float)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(_write(tmp_path, "train: [unclosed\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_required_keys_of_the_selected_data_kind(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, "data:\n  kind: folder\n  folder:\n    train: tr\n"))
    msg = str(err.value)
    assert "data.folder.val is required (data.kind is folder)" in msg and "data.folder.train" not in msg
    load_config(_write(tmp_path, "data:\n  kind: synthetic\n"))  # folder keys not needed then


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "configs"
    sub.mkdir()
    path = _write(
        sub, "data:\n  kind: folder\n  folder: {train: ../data/train, val: /abs/val}\nmodel:\n  weights: w.pt\n"
    )
    monkeypatch.chdir(tmp_path / "..")
    cfg = load_config(path)
    assert cfg["data"]["folder"]["train"] == str((tmp_path / "data" / "train").resolve())
    assert cfg["data"]["folder"]["val"] == "/abs/val"
    assert cfg["model"]["weights"] == str((sub / "w.pt").resolve())
    assert cfg["output_dir"] == "runs/train"  # output_dir stays relative to the current directory
    over = load_config(path, ["model.weights=x/w.pt"])  # overrides: relative to the current directory
    assert over["model"]["weights"] == str((tmp_path / ".." / "x" / "w.pt").resolve())


def test_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(
        ROOT / "configs" / "unet_cutmix.yaml",
        [
            "train.epochs=3",
            "model.encoder=resnet34",
            "augment.mix=[]",
            "train.ema=0.99",
            "data.classes=[a, b]",
            "loss.dice.weight=0.5",
            "train.patience=null",
            "optim.lr=1e-4",
        ],
    )
    assert cfg["train"]["epochs"] == 3 and cfg["model"]["encoder"] == "resnet34"
    assert cfg["augment"]["mix"] == [] and cfg["train"]["ema"] == 0.99
    assert cfg["data"]["classes"] == ["a", "b"] and cfg["loss"]["dice"] == {"weight": 0.5}
    assert cfg["train"]["patience"] is None and cfg["optim"]["lr"] == 1e-4


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "train.epoch=3",
            "command-line override 'train.epoch=3': unknown key 'train.epoch'; did you mean train.epochs?",
        ),
        (
            "train.epochs=x",
            "command-line override 'train.epochs=x': train.epochs = 'x' is a string, expected an integer",
        ),
        ("train.epochs", "command-line override 'train.epochs' must look like key.sub=value, e.g. train.epochs=3"),
        (
            "train.epochs.x=1",
            "command-line override 'train.epochs.x=1': train.epochs is an integer, it has no sub-key 'x'",
        ),
    ],
)
def test_bad_overrides(override, expected):
    base = validate_config({})
    with pytest.raises(ConfigError) as err:
        apply_overrides(base, [override])
    assert str(err.value) == expected


def test_override_does_not_modify_its_input():
    base = validate_config({})
    apply_overrides(base, ["train.epochs=3"])
    assert base["train"]["epochs"] == SCHEMA["train"]["epochs"].default


def test_saved_config_loads_back_identical(tmp_path):
    cfg = load_config(ROOT / "configs" / "unet_cutmix.yaml", ["train.epochs=2", "model.weights=/abs/w.pt"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(path.read_text()) == cfg
    assert load_config(path) == cfg
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_an_empty_file_is_an_error_not_the_defaults(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"^config {path} is empty \(no key set"):
        load_config(path)


def test_overrides_can_supply_the_required_keys_the_file_lacks(tmp_path):
    path = _write(tmp_path, "data:\n  kind: folder\n")
    cfg = load_config(path, ["data.folder.train=tr", "data.folder.val=va"])
    assert cfg["data"]["folder"]["val"] == str(Path("va").resolve())
    with pytest.raises(ConfigError, match=rf"^{path}: data.folder.val is required"):
        load_config(path, ["data.folder.train=tr"])


@pytest.mark.parametrize(
    "task, key, value, owner",
    [
        ("detection", "loss", {"dice": 1.0}, "segmentation"),
        ("detection", "model.encoder", "resnet50", "segmentation"),
        ("detection", "inference.mode", "slide", "segmentation"),
        ("segmentation", "model.detector_args", {"box_batch_size_per_image": 64}, "detection"),
        ("segmentation", "augment.mix_off_last_epochs", 2, "detection"),
    ],
)
def test_a_key_the_task_ignores_is_refused_when_set(task, key, value, owner):
    metric = {"train": {"metric": "map50" if task == "detection" else "miou"}}
    section, _, leaf = key.rpartition(".")
    raw = {"task": task, **metric, **({section: {leaf: value}} if section else {key: value})}
    with pytest.raises(ConfigError) as err:
        validate_config(raw, source="c.yaml")
    assert str(err.value).startswith(f"c.yaml: {key} = {value!r} is a {owner} setting, and task {task} ignores it (")
    assert str(err.value).endswith(f"or set task: {owner}")
    default = dict(all_keys())[key].default  # the default is accepted under either task
    validate_config({"task": task, **metric, **({section: {leaf: default}} if section else {key: default})})
    validate_config({**raw, "task": owner, "train": {"metric": "map50" if owner == "detection" else "miou"}})


def test_a_task_override_is_checked_against_the_whole_config():
    cfg = validate_config({"loss": {"dice": 1.0}})
    with pytest.raises(ConfigError, match=r"^the config with the command-line overrides: loss = \{'dice': 1\.0\} is a"):
        apply_overrides(cfg, ["task=detection", "train.metric=map50"])
    fixed = apply_overrides(cfg, ["loss={ce: 1.0, dice: 1.0}", "task=detection", "train.metric=map50"])
    assert fixed["task"] == "detection"


def test_mixing_switched_off_for_every_epoch_is_refused():
    path = ROOT / "configs" / "fasterrcnn_mosaic.yaml"  # augment.mix_off_last_epochs: 3
    with pytest.raises(ConfigError, match=r"mix_off_last_epochs = 3 switches the mixers off for all train\.epochs = 3"):
        load_config(path, ["train.epochs=3"])
    assert load_config(path, ["train.epochs=4"])["augment"]["mix_off_last_epochs"] == 3
    assert load_config(path, ["train.epochs=3", "augment.mix=[]"])["augment"]["mix"] == []  # nothing to switch off
