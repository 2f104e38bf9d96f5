"""MixDataset: reproducibility, pipelines on every source, composition with albumentations."""

import os

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

import augment  # noqa: E402
from augment import MIXERS, CopyPaste, CutMix, MixDataset, MixUp  # noqa: E402

H, W = 24, 36


def _sample(v):
    masks = np.zeros((2, H, W), np.uint8)
    masks[0, 2:10, 3:20] = 1
    masks[1, 12:22, 20:34] = 1
    return {
        "image": np.full((H, W, 3), 10 * v, np.uint8),
        "mask": np.full((H, W), v, np.int64),
        "masks": masks,
        "bboxes": np.array([[3, 2, 20, 10], [20, 12, 34, 22]], np.float32),
        "labels": np.array([v, v], np.int64),
    }


DATA = [_sample(v) for v in range(6)]


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _pipeline():
    return A.Compose(
        [A.HorizontalFlip(p=0.5), A.Affine(translate_px=(-4, 4), p=0.5)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True, min_visibility=0.0),
    )


def test_same_seed_same_items_in_any_order_and_epochs_differ():
    mixers = [CutMix(p=0.7), CutMix(p=0.5, shape="fmix")]
    ds = MixDataset(DATA, mixers, seed=3)
    forward = [ds[i] for i in range(len(ds))]
    backward = [MixDataset(DATA, mixers, seed=3)[i] for i in reversed(range(len(ds)))][::-1]
    assert all(_same(a, b) for a, b in zip(forward, backward))  # like any split over workers
    ds.set_epoch(1)
    epoch1 = [ds[i] for i in range(len(ds))]
    assert not all(_same(a, b) for a, b in zip(forward, epoch1))
    ds.set_epoch(0)
    assert all(_same(a, ds[i]) for i, a in enumerate(forward))
    other = MixDataset(DATA, mixers, seed=4)
    assert not all(_same(a, other[i]) for i, a in enumerate(forward))


def test_pre_runs_on_partners_and_post_on_the_mix():
    calls = {"pre": 0, "post": 0}

    def pre(s):
        calls["pre"] += 1
        return {**s, "image": s["image"] + 1}  # colour 10v -> 10v + 1

    def post(s):
        calls["post"] += 1
        return {**s, "image": s["image"] * 2}

    ds = MixDataset(DATA, [CutMix(p=1.0), CutMix(p=1.0)], pre=pre, post=post)
    for i in range(len(ds)):
        out = ds[i]
        assert set(np.unique(out["image"] // 2 % 10)) == {1}
        # image and mask still agree on the source of each pixel
        np.testing.assert_array_equal(out["image"][..., 0] // 2 // 10, out["mask"])
    assert calls == {"pre": 3 * len(ds), "post": len(ds)}


def test_mixers_with_p_zero_never_fire():
    ds = MixDataset(DATA, [CutMix(p=0.0), MixUp(p=0.0, num_classes=6)], seed=1)
    for i in range(len(ds)):
        assert _same(ds[i], DATA[i])
        assert ds[i] is not DATA[i]


def test_albumentations_pipelines_compose_and_are_seeded_from_the_item():
    mixers = [
        CutMix(p=0.5, min_visibility=0.3),
        CopyPaste(p=0.5),
        MixUp(p=0.5, num_classes=6),
        CutMix(p=0.5, shape="fmix"),
    ]
    post = _pipeline()
    ds = MixDataset(DATA, mixers, pre=_pipeline(), post=post, seed=7)
    again = MixDataset(DATA, mixers, pre=_pipeline(), post=_pipeline(), seed=7)
    outs = [ds[i] for i in range(len(ds))]
    assert all(_same(a, again[i]) for i, a in enumerate(outs))
    for out in outs:
        boxes = out["bboxes"]
        assert boxes.dtype == np.float32 and out["labels"].dtype == np.int64
        assert len(boxes) == len(out["labels"]) == len(out["masks"])
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= W).all() and (boxes[:, [1, 3]] <= H).all()
        if out["mask"].ndim == 3:  # MixUp fired: soft mask; 1 per pixel, 0 where Affine filled
            total = out["mask"].sum(-1)
            assert (np.isclose(total, 1, rtol=1e-5) | (total == 0)).all()
    # the pipeline's randomness really varies between items (some flipped, some not)
    flips = {bool(np.array_equal(_pipeline_view(ds, i), DATA[i]["masks"])) for i in range(len(ds))}
    assert flips == {True, False}


def _pipeline_view(ds, i):
    """The primary after `pre` only (no mixers), under the item's seed."""
    plain = MixDataset(ds.dataset, [], pre=ds.pre, seed=ds.seed)
    return plain[i]["masks"]


def test_mixers_from_config_entries():
    config = [
        {"CutMix": {"p": 0.5, "alpha": 1.0, "shape": "fmix"}},
        {"MixUp": {"p": 0.3, "primary_dominant": True}},
        {"CopyPaste": {"p": 0.2, "max_instances": 3}},
    ]
    for entry in config:
        ((name, args),) = entry.items()
        mixer = MIXERS[name](**args, num_classes=6, ignore_index=255)
        assert mixer.p == args["p"] and mixer.num_sources == 2
    assert set(augment.__all__) >= {"MIXERS", "MixDataset", "CutMix", "MixUp", "CopyPaste"}


def test_boxes_dropped_by_albumentations_take_their_masks_and_weights_along():
    sample = {**_sample(1), "labels": np.array([7, 8]), "weights": np.array([0.25, 0.75], np.float32)}
    crop = A.Compose(
        [A.Crop(x_min=16, y_min=0, x_max=36, y_max=H)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.5),
    )
    out = MixDataset([sample], [], pre=crop)[0]
    # box 0 keeps 4 of 17 columns (dropped), box 1 lies inside the crop (kept)
    np.testing.assert_array_equal(out["labels"], [8])
    np.testing.assert_array_equal(out["weights"], [0.75])
    np.testing.assert_allclose(out["bboxes"], [[4, 12, 18, 22]], atol=1e-4)
    np.testing.assert_array_equal(out["masks"], sample["masks"][1:, :, 16:36])


def test_albumentations_without_pascal_voc_bbox_params_is_refused():
    with pytest.raises(ValueError, match="no bbox_params"):
        MixDataset(DATA, [], pre=A.Compose([A.HorizontalFlip(p=1.0)]))[0]
    coco = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="coco", label_fields=["labels"]))
    with pytest.raises(ValueError, match="format='coco'"):
        MixDataset(DATA, [], post=coco)[0]


def test_bad_arguments():
    with pytest.raises(TypeError, match="mixers\\[0\\]"):
        MixDataset(DATA, [lambda samples, rng: samples[0]])
    with pytest.raises(TypeError, match="indexable"):
        MixDataset(iter(DATA), [])
    with pytest.raises(IndexError):
        MixDataset(DATA, [])[len(DATA)]
    with pytest.raises(TypeError, match="sample dicts"):
        MixDataset([np.zeros(3)], [])[0]


def test_same_samples_with_zero_or_two_dataloader_workers():
    torch = pytest.importorskip("torch")
    pre = _pipeline()
    ds = MixDataset(DATA, [CutMix(p=0.5), MixUp(p=0.5, num_classes=6)], pre=pre, seed=11)
    ds.set_epoch(2)

    def load(workers):
        loader = torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=workers, multiprocessing_context="fork" if workers else None
        )
        return [{k: np.asarray(v) for k, v in item.items()} for item in loader]

    assert all(_same(a, b) for a, b in zip(load(0), load(2)))
