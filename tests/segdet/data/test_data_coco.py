"""CocoDataset against pycocotools' annToMask and a naive per-pixel reference, plus bad input."""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segdet.data import CocoDataset, segmentation_to_mask

H, W = 20, 24
BCCD = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "bccd"


def _uncompressed_rle(binary):
    """COCO uncompressed RLE (column-major run lengths starting with zeros)."""
    flat = binary.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return {"size": [binary.shape[0], binary.shape[1]], "counts": counts}


def _make(tmp_path, extra_anns=(), categories=None, write_images=True):
    rng = np.random.default_rng(0)
    img_dir = tmp_path / "images"
    img_dir.mkdir(exist_ok=True)
    images = [
        {"id": 5, "file_name": "b.png", "height": H, "width": W},
        {"id": 2, "file_name": "a.png", "height": H, "width": W},
    ]  # id 5 has no annotations
    if write_images:
        for im in images:
            Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(img_dir / im["file_name"])
    rle_block = np.zeros((H, W), np.uint8)
    rle_block[2:9, 3:12] = 1
    compressed = mask_utils.encode(np.asfortranarray(np.pad(np.ones((5, 5), np.uint8), ((12, 3), (15, 4)))))
    compressed["counts"] = compressed["counts"].decode()
    crowd = np.zeros((H, W), np.uint8)
    crowd[10:19, 1:14] = 1
    anns = [
        # large polygon (category 7) overlapping the RLE block
        {
            "id": 1,
            "image_id": 2,
            "category_id": 7,
            "iscrowd": 0,
            "bbox": [1, 1, 14, 12],
            "segmentation": [[1.0, 1.0, 15.0, 1.0, 15.0, 13.0, 1.0, 13.0]],
        },
        # smaller uncompressed RLE (category 3) on top of the polygon
        {
            "id": 2,
            "image_id": 2,
            "category_id": 3,
            "iscrowd": 0,
            "bbox": [3, 2, 9, 7],
            "segmentation": _uncompressed_rle(rle_block),
        },
        # compressed RLE (category 7) inside the crowd region, partly
        {"id": 3, "image_id": 2, "category_id": 7, "iscrowd": 0, "bbox": [15, 12, 5, 5], "segmentation": compressed},
        # crowd (category 3): ignore where no object covers it; never a training box
        {
            "id": 4,
            "image_id": 2,
            "category_id": 3,
            "iscrowd": 1,
            "bbox": [1, 10, 13, 9],
            "segmentation": _uncompressed_rle(crowd),
        },
        # a second polygon made of two parts
        {
            "id": 6,
            "image_id": 2,
            "category_id": 3,
            "iscrowd": 0,
            "bbox": [17, 1, 6, 8],
            "segmentation": [[17, 1, 22, 1, 22, 4], [17, 6, 23, 6, 23, 9, 17, 9]],
        },
        *extra_anns,
    ]
    cats = categories or [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]  # json order != id order
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path, img_dir


def _naive_semantic(coco, image_id, ignore):
    """Per pixel: the smallest non-crowd object covering it (later one on ties), else crowd -> ignore, else 0."""
    cat_to_class = {cid: i + 1 for i, cid in enumerate(sorted(coco.getCatIds()))}
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
    rasters = [(a, coco.annToMask(a)) for a in anns]
    out = np.zeros((H, W), np.int64)
    for y in range(H):
        for x in range(W):
            best = None
            for a, m in rasters:
                if m[y, x] and not a["iscrowd"]:
                    area = int(m.sum())
                    if best is None or area <= best[0]:
                        best = (area, cat_to_class[a["category_id"]])
            if best is not None:
                out[y, x] = best[1]
            elif any(m[y, x] and a["iscrowd"] for a, m in rasters):
                out[y, x] = ignore
    return out


def _coco(path):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_rasterisation_matches_pycocotools_and_naive_reference(tmp_path):
    path, img_dir = _make(tmp_path)
    coco = _coco(path)
    for ann in coco.dataset["annotations"]:
        np.testing.assert_array_equal(segmentation_to_mask(ann["segmentation"], H, W, ann["id"]), coco.annToMask(ann))
    ds = CocoDataset(path, img_dir, ignore_index=255)
    assert ds.classes == ("background", "cat", "dog") and ds.cat_ids == [3, 7]
    assert ds.image_ids == [2, 5] and len(ds) == 2
    s = ds[0]
    ref = _naive_semantic(coco, 2, 255)
    np.testing.assert_array_equal(s["mask"], ref)
    assert {0, 1, 2, 255} <= set(np.unique(s["mask"]).tolist())
    np.testing.assert_array_equal(s["image"], np.asarray(Image.open(img_dir / "a.png").convert("RGB")))
    empty = ds[1]
    assert empty["mask"].shape == (H, W) and not empty["mask"].any()
    assert "bboxes" not in s


def test_boxes_labels_instance_masks(tmp_path):
    path, img_dir = _make(tmp_path)
    coco = _coco(path)
    ds = CocoDataset(path, img_dir, with_mask=False, with_boxes=True, with_instance_masks=True)
    assert ds.classes == ("cat", "dog") == ds.box_classes
    assert ds.label_to_cat_id == {0: 3, 1: 7} and ds.cat_id_to_label == {3: 0, 7: 1}
    s = ds[0]
    kept = [a for a in coco.dataset["annotations"] if not a["iscrowd"]]
    ref_boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in kept]
    np.testing.assert_array_equal(s["bboxes"], np.asarray(ref_boxes, np.float32))
    assert s["bboxes"].dtype == np.float32 and s["labels"].dtype == np.int64
    assert s["labels"].tolist() == [ds.cat_id_to_label[a["category_id"]] for a in kept]
    assert s["masks"].shape == (len(kept), H, W) and s["masks"].dtype == np.uint8
    for j, a in enumerate(kept):
        np.testing.assert_array_equal(s["masks"][j], coco.annToMask(a))
    assert "mask" not in s
    empty = ds[1]
    assert empty["bboxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["masks"].shape == (0, H, W)


def test_clipped_and_degenerate_boxes_counted_in_one_warning(tmp_path):
    extra = [
        {"id": 10, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": [-3, 15, 10, 10]},  # clipped both ways
        {"id": 11, "image_id": 5, "category_id": 7, "iscrowd": 0, "bbox": [4, 4, 0, 5]},  # zero width
        {"id": 12, "image_id": 5, "category_id": 7, "iscrowd": 0, "bbox": [4, 4, 5, -2]},  # inverted
        {"id": 13, "image_id": 5, "category_id": 7, "iscrowd": 0, "bbox": [30, 4, 5, 5]},  # fully outside
    ]
    path, img_dir = _make(tmp_path, extra)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CocoDataset(path, img_dir, with_mask=False, with_boxes=True)
    msgs = [str(w.message) for w in caught if "ann.json" in str(w.message)]
    assert len(msgs) == 1
    assert "2 boxes partly outside their image were clipped (annotation ids 10, 13)" in msgs[0]
    assert "3 zero-area or inverted boxes were dropped (annotation ids 11, 12, 13)" in msgs[0]
    s = ds[1]  # image id 5
    np.testing.assert_array_equal(s["bboxes"], [[0, 15, 7, 20]])
    assert s["labels"].tolist() == [0]


def test_unknown_category(tmp_path):
    extra = [
        {
            "id": 99,
            "image_id": 2,
            "category_id": 42,
            "iscrowd": 0,
            "bbox": [1, 1, 2, 2],
            "segmentation": [[1, 1, 3, 1, 3, 3]],
        }
    ]
    path, img_dir = _make(tmp_path, extra)
    with pytest.raises(ValueError, match=r"annotation 99 has category_id 42.*not in 'categories'"):
        CocoDataset(path, img_dir)


def test_missing_image_file_and_dir(tmp_path):
    path, img_dir = _make(tmp_path)
    (img_dir / "b.png").unlink()
    with pytest.raises(ValueError, match=r"image file .*b\.png .*does not exist"):
        CocoDataset(path, img_dir)
    with pytest.raises(ValueError, match=r"image folder .*nowhere"):
        CocoDataset(path, tmp_path / "nowhere")


def test_unreadable_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"cannot read COCO annotation file .*bad\.json"):
        CocoDataset(bad, tmp_path)
    with pytest.raises(ValueError, match=r"missing\.json does not exist"):
        CocoDataset(tmp_path / "missing.json", tmp_path)
    bad.write_text('{"images": []}')
    with pytest.raises(ValueError, match=re.escape("lacks the list(s) ['annotations', 'categories']")):
        CocoDataset(bad, tmp_path)


def test_boxes_only_annotations_need_detection_mode(tmp_path):
    extra = [{"id": 20, "image_id": 2, "category_id": 3, "iscrowd": 0, "bbox": [1, 1, 2, 2]}]
    path, img_dir = _make(tmp_path, extra)
    with pytest.raises(ValueError, match=r"annotation 20 has no 'segmentation'.*with_mask=False"):
        CocoDataset(path, img_dir)
    assert len(CocoDataset(path, img_dir, with_mask=False, with_boxes=True)[0]["bboxes"]) == 5


def test_image_size_differs_from_json(tmp_path):
    path, img_dir = _make(tmp_path)
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(img_dir / "a.png")
    with pytest.raises(ValueError, match=r"a\.png is 21x24 but .*ann\.json says 20x24"):
        CocoDataset(path, img_dir)[0]


@pytest.mark.skipif(not BCCD.is_dir(), reason="shared BCCD dataset not present")
def test_bccd_boxes():
    ann = BCCD / "annotations" / "instances_val.json"
    ds = CocoDataset(ann, BCCD / "images", with_mask=False, with_boxes=True)
    coco = _coco(ann)
    assert ds.classes == ("RBC", "WBC", "Platelets") and ds.cat_ids == [1, 2, 3]
    for i in range(2):
        s = ds[i]
        info = coco.imgs[ds.image_ids[i]]
        assert s["image"].shape == (info["height"], info["width"], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[ds.image_ids[i]], iscrowd=False))
        ref = np.asarray(
            [
                [
                    a["bbox"][0],
                    a["bbox"][1],
                    min(a["bbox"][0] + a["bbox"][2], info["width"]),
                    min(a["bbox"][1] + a["bbox"][3], info["height"]),
                ]
                for a in anns
            ],
            np.float32,
        )
        np.testing.assert_allclose(s["bboxes"], ref)
        assert [ds.label_to_cat_id[int(v)] for v in s["labels"]] == [a["category_id"] for a in anns]


def test_duplicate_image_ids_are_refused(tmp_path):
    path, img_dir = _make(tmp_path)
    data = json.loads(path.read_text())
    data["images"][0]["id"] = 2  # b.png now shares the id of a.png: their annotations would merge
    path.write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"ann\.json: image id 2 is listed twice in 'images' \('b\.png' and 'a\.png'\)"
    ):
        CocoDataset(path, img_dir)


def test_polygons_of_fewer_than_three_points_are_counted_in_one_warning(tmp_path):
    two_points = {"id": 30, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": [1, 1, 4, 4]}
    extra = [
        {**two_points, "segmentation": [[1, 1, 5, 5]]},  # vanishes
        {**two_points, "id": 31, "segmentation": [[1, 1, 5, 1, 5, 5], [2, 2]]},  # loses one part
    ]
    path, img_dir = _make(tmp_path, extra)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CocoDataset(path, img_dir)
    msgs = [str(w.message) for w in caught if "fewer than three points" in str(w.message)]
    assert msgs == [
        f"{path}: 2 annotations have polygons of fewer than three points, which cover no pixel and were skipped "
        "(annotation ids 30, 31)"
    ]
    assert ds.num_short_polygons == 2
    with warnings.catch_warnings(record=True) as caught:  # detection reads boxes, not polygons: nothing to say
        warnings.simplefilter("always")
        CocoDataset(path, img_dir, with_mask=False, with_boxes=True)
    assert not [w for w in caught if "fewer than three points" in str(w.message)]


@pytest.mark.parametrize("bbox", [["1", 2, 3, 4], [1, 2, "wide", 4], [1, 2, None, 4]])
def test_bbox_that_is_not_numbers_names_the_file_and_annotation(tmp_path, bbox):
    path, img_dir = _make(tmp_path, [{"id": 40, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": bbox}])
    with pytest.raises(ValueError, match=r"ann\.json: annotation 40 \(image 5\) has bbox .*expected four numbers"):
        CocoDataset(path, img_dir, with_mask=False, with_boxes=True)


@pytest.mark.parametrize(
    "counts, message",
    [
        ([3, 4], rf"counts sum to 7 pixels but the image has {H}x{W} = {H * W}"),
        ([-3, H * W + 3], "counts must be a compressed string or a list of non-negative integers"),
        (7, "counts must be a compressed string or a list of non-negative integers"),
    ],
)
def test_invalid_uncompressed_rle_names_file_and_annotation_up_front(tmp_path, counts, message):
    ann = {"id": 50, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": [1, 1, 4, 4]}
    path, img_dir = _make(tmp_path, [{**ann, "segmentation": {"size": [H, W], "counts": counts}}])
    with pytest.raises(ValueError, match=rf"ann\.json: annotation 50: invalid RLE.*{re.escape(message)}"):
        CocoDataset(path, img_dir)


def test_compressed_rle_that_does_not_decode_names_file_and_annotation(tmp_path):
    ann = {"id": 51, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": [1, 1, 4, 4]}
    path, img_dir = _make(tmp_path, [{**ann, "segmentation": {"size": [H, W], "counts": "!!garbage##"}}])
    ds = CocoDataset(path, img_dir)
    with pytest.raises(ValueError, match=r"ann\.json: annotation 51: invalid RLE.*pycocotools\.mask\.encode"):
        ds[1]  # image id 5
