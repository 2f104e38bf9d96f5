"""train.log: the schema of the key, results.csv, and the TensorBoard event files of a run."""

from __future__ import annotations

import pytest

from segdet.config import ConfigError, validate_config


# --- the key ---------------------------------------------------------------------------------------
def test_train_log_defaults_to_csv():
    assert validate_config({})["train"]["log"] == ["csv"]
    assert validate_config({"train": {"log": ["csv", "tensorboard"]}})["train"]["log"] == ["csv", "tensorboard"]


@pytest.mark.parametrize(
    "value,match",
    [
        (
            ["csv", "tensorbord"],
            r"train.log = \['csv', 'tensorbord'\]: 'tensorbord' is not one of csv, tensorboard; "
            r"did you mean 'tensorboard'\?",
        ),
        (["wandb"], r"'wandb' is not one of csv, tensorboard$"),
        ("tensorboard", r"train.log = 'tensorboard' is a string, expected a list \(each one of csv, tensorboard\)"),
    ],
)
def test_train_log_names_the_bad_entry_and_the_closest_name(value, match):
    with pytest.raises(ConfigError, match=match):
        validate_config({"train": {"log": value}})
