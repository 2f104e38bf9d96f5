"""DataSpec's mode and threshold: validation, output channels and the checkpoint round trip."""

from __future__ import annotations

import pytest

from segdet.task import DataSpec


def test_checkpoint_round_trip_keeps_mode_and_threshold():
    spec = DataSpec(("a", "b", "c"), mode="multilabel", threshold=0.35)
    keys = spec.to_checkpoint()
    assert keys == {"classes": ["a", "b", "c"], "cat_ids": None, "mode": "multilabel", "threshold": 0.35}
    assert DataSpec.from_checkpoint(keys) == spec


def test_a_checkpoint_without_a_mode_is_multiclass_at_half():
    spec = DataSpec.from_checkpoint({"classes": ["bg", "fg"], "cat_ids": None})
    assert spec.mode == "multiclass" and spec.threshold == 0.5 and spec.out_channels == 2


@pytest.mark.parametrize("mode, channels", [("multiclass", 2), ("binary", 1), ("multilabel", 2)])
def test_out_channels(mode, channels):
    assert DataSpec(("x", "y"), mode=mode).out_channels == channels


def test_bad_values_are_named():
    with pytest.raises(ValueError, match=r"data.mode 'binay' \(did you mean 'binary'\?\) is not one of"):
        DataSpec(("a", "b"), mode="binay")
    with pytest.raises(ValueError, match=r"data.mode is binary but there are 3 classes \['a', 'b', 'c'\]"):
        DataSpec(("a", "b", "c"), mode="binary")
    for bad in (0.0, 1.0, -0.1, True):
        with pytest.raises(ValueError, match="data.threshold .* must lie strictly between 0 and 1"):
            DataSpec(("a", "b"), mode="binary", threshold=bad)
