"""Detector builder, label mapping of the wrapper, and detection collation."""

import numpy as np
import pytest
import torch

from segdet.detection import DETECTORS, Detector, build_detector, detection_collate


def test_required_detectors_are_registered():
    for name in (
        "fasterrcnn_resnet50_fpn",
        "fasterrcnn_mobilenet_v3_large_fpn",
        "retinanet_resnet50_fpn",
        "fcos_resnet50_fpn",
        "ssdlite320_mobilenet_v3_large",
        "maskrcnn_resnet50_fpn",
    ):
        assert name in DETECTORS


def test_unknown_name_suggests_the_closest():
    with pytest.raises(
        ValueError,
        match=r"unknown detector model.arch='fasterrcnn_mobilenet' \(did you mean "
        r"'fasterrcnn_mobilenet_v3_large_fpn'",
    ):
        build_detector("fasterrcnn_mobilenet", 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        build_detector("fcos_resnet50_fpn", 0)
    with pytest.raises(ValueError, match="fixed input size"):
        build_detector("ssdlite320_mobilenet_v3_large", 2, min_size=64)


def test_faster_rcnn_has_a_background_class_and_random_weights():
    det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 3, min_size=64, max_size=96, score_thresh=0.2)
    assert det.label_offset == 1
    assert det.model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
    assert det.model.transform.min_size == (64,) and det.model.roi_heads.score_thresh == 0.2
    again = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 3, min_size=64, max_size=96)
    a, b = det.state_dict(), again.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # not pretrained


class _Recorder(torch.nn.Module):
    """Stands in for a torchvision model: records the targets, predicts label 1 in eval."""

    def forward(self, images, targets=None):
        if targets is not None:
            self.seen = targets
            return {"loss": torch.tensor(0.0)}
        return [{"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.tensor([1])} for _ in images]


@pytest.mark.parametrize("offset", [0, 1])
def test_wrapper_maps_zero_based_labels_both_ways(offset):
    inner = _Recorder()
    det = Detector(inner, num_classes=2, label_offset=offset)
    det.train()
    det([torch.zeros(3, 8, 8)], [{"boxes": torch.zeros(1, 4), "labels": torch.tensor([0]), "weights": torch.ones(1)}])
    assert inner.seen[0]["labels"].tolist() == [offset]
    assert "weights" not in inner.seen[0]
    det.eval()
    assert det([torch.zeros(3, 8, 8)])[0]["labels"].tolist() == [1 - offset]


def test_dense_detectors_use_labels_as_is():
    assert build_detector("retinanet_resnet50_fpn", 2, min_size=64, max_size=64).label_offset == 0


def test_mask_rcnn_needs_masks():
    det = Detector(_Recorder(), 1, 1, needs_masks=True).train()
    with pytest.raises(ValueError, match="Mask R-CNN trains on instance masks"):
        det([torch.zeros(3, 8, 8)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])


def test_images_without_boxes_train():
    torch.manual_seed(0)
    det = build_detector("fasterrcnn_mobilenet_v3_large_fpn", 2, min_size=64, max_size=64).train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    one = {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])}
    for targets in ([empty, empty], [empty, one]):
        losses = det([torch.rand(3, 40, 48), torch.rand(3, 40, 48)], targets)
        total = sum(losses.values())
        assert torch.isfinite(total)
        total.backward()


def test_collate_contract():
    s1 = {
        "image": np.full((4, 6, 3), 255, np.uint8),
        "bboxes": np.array([[0, 0, 2, 3]], np.float32),
        "labels": np.array([2]),
        "image_id": 7,
    }
    s2 = {
        "image": np.full((5, 5, 3), 127.5, np.float32),
        "bboxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros(0, np.int64),
        "weights": np.zeros(0, np.float32),
        "masks": np.zeros((0, 5, 5), np.uint8),
    }
    b = detection_collate([s1, s2])
    assert b["image"][0].shape == (3, 4, 6) and b["image"][0].dtype == torch.float32
    assert b["image"][0].max() == 1.0 and b["image"][1].max() == pytest.approx(0.5)  # both 0..255 scales
    t1, t2 = b["targets"]
    assert t1["boxes"].dtype == torch.float32 and t1["labels"].tolist() == [2] and t1["weights"].tolist() == [1.0]
    assert t2["boxes"].shape == (0, 4) and t2["masks"].shape == (0, 5, 5)
    assert b["image_id"] == [7, None]


def test_collate_rejects_mismatched_targets():
    s = {"image": np.zeros((4, 4, 3), np.uint8), "bboxes": np.zeros((2, 4), np.float32), "labels": np.zeros(1)}
    with pytest.raises(ValueError, match="sample 0: 2 boxes but 1 labels"):
        detection_collate([s])
    s = {
        "image": np.zeros((4, 4, 3), np.uint8),
        "bboxes": np.zeros((1, 4), np.float32),
        "labels": np.zeros(1),
        "masks": np.zeros((2, 4, 4), np.uint8),
    }
    with pytest.raises(ValueError, match=r"sample 0: \(2, 4, 4\) instance masks for 1 boxes"):
        detection_collate([s])


def test_misspelled_detector_args_are_rejected():
    # torchvision would pass an unknown keyword to its transform and silently drop it
    with pytest.raises(
        ValueError, match=r"no argument 'box_batch_size_per_imag' \(did you mean 'box_batch_size_per_image'"
    ):
        build_detector("fasterrcnn_mobilenet_v3_large_fpn", 2, box_batch_size_per_imag=64)


def test_light_box_head_replaces_the_rcnn_head():
    det = build_detector(
        "fasterrcnn_mobilenet_v3_large_fpn", 2, min_size=64, max_size=64, box_head_size=32, box_roi_size=3
    )
    heads = det.model.roi_heads
    assert heads.box_roi_pool.output_size == (3, 3) and heads.box_head.fc6.in_features == 256 * 9
    assert heads.box_predictor.cls_score.out_features == 3 and heads.box_predictor.bbox_pred.out_features == 12
    out = det.eval()([torch.rand(3, 40, 48)])
    assert out[0]["boxes"].shape[1] == 4
    with pytest.raises(ValueError, match="Faster/Mask R-CNN only"):
        build_detector("fcos_resnet50_fpn", 2, box_head_size=32)
