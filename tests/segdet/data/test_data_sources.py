"""open_sources: checks across the config and the data that no single dataset can make."""

from __future__ import annotations

import pytest

from segdet.config import validate_config
from segdet.data.sources import open_sources


def _data(**data):
    return validate_config({"data": {"kind": "synthetic", **data}})["data"]


@pytest.mark.parametrize("ignore", [0, 2, 3])
def test_ignore_index_that_is_a_class_index_is_refused(ignore):
    names = ("background", "circle", "square", "triangle")
    with pytest.raises(ValueError, match=rf"data\.ignore_index = {ignore} is class {ignore} \('{names[ignore]}'\)"):
        open_sources(_data(ignore_index=ignore), target="mask")
    assert open_sources(_data(ignore_index=4), target="mask").spec.classes == names  # outside 0..3: fine
    assert open_sources(_data(ignore_index=-1), target="mask").spec.classes == names


def test_ignore_index_is_checked_against_data_classes_before_any_file_is_read(tmp_path):
    folders = {"train": "x", "val": "x"}  # they do not exist: the ignore_index error comes first
    data = validate_config(
        {"data": {"kind": "folder", "classes": ["bg", "road"], "ignore_index": 1, "folder": folders}}, base_dir=tmp_path
    )["data"]
    with pytest.raises(ValueError, match=r"data\.ignore_index = 1 is class 1 \('road'\).*e\.g\. 255"):
        open_sources(data, target="mask")


def test_ignore_index_does_not_matter_for_boxes():
    assert open_sources(_data(ignore_index=1), target="boxes").spec.num_classes == 3
