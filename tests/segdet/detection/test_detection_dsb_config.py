"""configs/maskrcnn_dsb.yaml: it validates, and on the DSB 2018 nuclei (when present) gives Mask R-CNN its samples."""

from pathlib import Path

import numpy as np
import pytest

from segdet.config import load_config
from segdet.data.synthetic import boxes_from_masks
from segdet.task import build_task

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "maskrcnn_dsb.yaml"
DSB = ROOT.parent / "shared" / "datasets" / "dsb2018"


def test_the_dsb_config_validates_and_names_the_shared_data():
    cfg = load_config(CONFIG)
    assert cfg["task"] == "detection" and cfg["model"]["arch"].startswith("maskrcnn")
    assert cfg["data"]["kind"] == "folder" and cfg["model"]["anchors"] == "fit"
    assert Path(cfg["data"]["folder"]["train"]) == (ROOT.parent / "shared/datasets/dsb2018/train").resolve()
    build_task(cfg).check()


@pytest.mark.skipif(not (DSB / "train" / "instances").is_dir(), reason="shared DSB 2018 dataset not present")
def test_the_dsb_config_builds_instance_samples_and_fits_anchors(tmp_path, capsys):
    stems = sorted(p.stem for p in (DSB / "train" / "images").iterdir())[:6]
    (tmp_path / "train.txt").write_text("\n".join(stems[:4]))
    val_stems = sorted(p.stem for p in (DSB / "val" / "images").iterdir())[:2]
    (tmp_path / "val.txt").write_text("\n".join(val_stems))
    overrides = [f"data.folder.train_split={tmp_path / 'train.txt'}", f"data.folder.val_split={tmp_path / 'val.txt'}"]
    task = build_task(load_config(CONFIG, overrides))
    train, val, spec = task.build_datasets()
    assert spec.classes == ("nucleus",) and len(train) == 4 and len(val) == 2
    train.set_epoch(0)
    for sample in (train[0], val[0]):
        masks = sample["masks"]
        assert masks.dtype == np.uint8 and masks.shape[1:] == (128, 128) and len(masks) == len(sample["bboxes"]) > 0
        np.testing.assert_array_equal(sample["bboxes"], boxes_from_masks(masks))
    model = task.build_model(spec)
    assert "model.anchors: fit scales them" in capsys.readouterr().out
    assert "anchor_sizes" in model.state_dict()


def test_tight_boxes_follow_the_visible_mask_and_drop_emptied_instances():
    from segdet.detection.data import tight_boxes

    masks = np.zeros((3, 10, 12), np.uint8)
    masks[0, 2:5, 0:3] = 1  # a crop clipped its box to x 0 but the visible pixels start there too
    masks[1, 6:9, 5:11] = 1
    masks[1, 6, 5] = 0
    sample = {
        "image": np.zeros((10, 12, 3), np.uint8),
        "bboxes": np.array([[0, 1, 4, 6], [4, 5, 11, 10], [0, 0, 2, 2]], np.float32),
        "labels": np.array([0, 1, 2]),
        "masks": masks,
    }
    out = tight_boxes(sample)
    np.testing.assert_array_equal(out["bboxes"], [[0, 2, 3, 5], [5, 6, 11, 9]])
    assert out["labels"].tolist() == [0, 1] and out["masks"].shape == (2, 10, 12)
    assert tight_boxes({"bboxes": sample["bboxes"]}) == {"bboxes": sample["bboxes"]}
