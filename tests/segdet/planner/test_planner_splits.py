"""data.folder.train_split / val_split: a text file of stems selecting the pairs of a folder."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from planner_data import make_folder, write_pair

from segdet.config import load_config
from segdet.data import FolderSegmentation
from segdet.data.sources import open_sources


def test_split_selects_the_listed_pairs_in_stem_order(tmp_path):
    pairs = make_folder(tmp_path / "d", 6)
    split = tmp_path / "train.txt"
    split.write_text("# training stems\nimg004\n\n  img001  \nimg002\n")
    ds = FolderSegmentation(tmp_path / "d", split=split, mask_values={0: 0, 255: 1})
    assert [p.stem for p in ds.images] == ["img001", "img002", "img004"]
    assert [p.stem for p in ds.masks] == ["img001", "img002", "img004"]
    np.testing.assert_array_equal(ds[0]["image"], pairs["img001"][0])
    np.testing.assert_array_equal(ds[2]["mask"], (pairs["img004"][1] == 255).astype(np.uint8))


def test_config_keys_reach_the_folder_source_relative_to_the_config(tmp_path):
    make_folder(tmp_path / "d", 5)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "a.txt").write_text("img000\nimg001\nimg002\n")
    (tmp_path / "cfg" / "b.txt").write_text("img003\nimg004\n")
    config = tmp_path / "cfg" / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "kind": "folder",
                    "folder": {
                        "train": "../d",
                        "val": "../d",
                        "train_split": "a.txt",
                        "val_split": "b.txt",
                        "mask_values": {0: 0, 255: 1},
                    },
                }
            }
        )
    )
    cfg = load_config(config)
    assert cfg["data"]["folder"]["train_split"] == str(tmp_path / "cfg" / "a.txt")
    sources = open_sources(cfg["data"], target="mask")
    assert [p.stem for p in sources.train.images] == ["img000", "img001", "img002"]
    assert [p.stem for p in sources.val.images] == ["img003", "img004"]


def test_null_split_is_every_file(tmp_path):
    make_folder(tmp_path / "d", 4)
    assert len(FolderSegmentation(tmp_path / "d", split=None, mask_values={0: 0, 255: 1})) == 4


def test_pairs_outside_the_split_need_no_partner(tmp_path):
    make_folder(tmp_path / "d", 3)
    rng = np.random.default_rng(0)
    write_pair(tmp_path / "d", "orphan", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), None)
    split = tmp_path / "s.txt"
    split.write_text("img000\nimg001\n")
    assert len(FolderSegmentation(tmp_path / "d", split=split, mask_values={0: 0, 255: 1})) == 2
    with pytest.raises(ValueError, match="orphan.png has no mask"):
        FolderSegmentation(tmp_path / "d", mask_values={0: 0, 255: 1})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("img000\nimg009\n", r"data.folder.val_split file .*s.txt names 'img009', which has no image in .*images"),
        ("img000\nimg001.png\nimg7\n", r"names 'img001.png'.*\(and 1 more stems\); list file stems without"),
        ("img000\n\n# x\nimg000\n", r"lists 'img000' twice \(lines 1 and 4\)"),
        ("\n# nothing\n", r"s.txt names no stem; write one file stem per line"),
    ],
)
def test_bad_split_files_name_the_file_and_the_fix(tmp_path, text, pattern):
    make_folder(tmp_path / "d", 2)
    split = tmp_path / "s.txt"
    split.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        FolderSegmentation(tmp_path / "d", split=split, mask_values={0: 0, 255: 1}, split_key="data.folder.val_split")


def test_missing_split_file(tmp_path):
    make_folder(tmp_path / "d", 2)
    with pytest.raises(ValueError, match=r"data.folder.train_split file .*nope.txt does not exist; .*null"):
        FolderSegmentation(tmp_path / "d", split=tmp_path / "nope.txt")
