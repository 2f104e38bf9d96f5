"""The sample contract of every mixer in ``augment.MIXERS``.

Every test is parametrized over the registry, so a mixer added to ``MIXERS`` is held to the
contract of :mod:`augment.sample` without being listed here: shapes and dtypes, one instance
mask per box, boxes inside the image, reproducible draws, the degenerate inputs (no boxes,
every pixel ignored) and the errors for a bad ``rng`` or a wrong number of sources. The
mixer-specific tests (test_cutmix.py, test_mosaic.py, ...) compare each one to a naive reference.
"""

import copy
import inspect

import numpy as np
import pytest

import augment
from augment import MIXERS

H, W = 24, 40  # non-square: catches swapped axes
C, IGNORE = 4, 255
NAMES = sorted(MIXERS)


def _mixer(name):
    """The registered mixer, always firing, given num_classes and ignore_index when it takes them."""
    cls = MIXERS[name]
    params = inspect.signature(cls).parameters
    options = {"p": 1.0}
    options.update({k: v for k, v in (("num_classes", C), ("ignore_index", IGNORE)) if k in params})
    return cls(**options)


def _sources(n, seed, boxes=3, mask="hard"):
    """n samples with image, semantic mask, instance masks (non-rectangular), boxes and labels.

    mask: ``"hard"`` class indices, ``"ignored"`` with a block of ``IGNORE`` pixels,
    ``"soft"`` source 1 holds (H, W, C) probabilities, ``"all_ignored"`` every pixel ``IGNORE``.
    Labels are ``10 * source + instance``, so each output label names its source.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x0, y0 = rng.integers(0, W - 3, boxes), rng.integers(0, H - 3, boxes)
        x1, y1 = np.minimum(x0 + rng.integers(3, 16, boxes), W), np.minimum(y0 + rng.integers(3, 12, boxes), H)
        masks = np.zeros((boxes, H, W), np.uint8)
        for k in range(boxes):
            masks[k, y0[k] : y1[k], x0[k] : x1[k]] = 1
            masks[k, y0[k], x0[k]] = 0  # not a rectangle; the box stays tight
        semantic = rng.integers(0, C, (H, W))
        if mask == "ignored":
            semantic[: H // 3, : W // 4] = IGNORE
        elif mask == "all_ignored":
            semantic[:] = IGNORE
        elif mask == "soft" and i == 1:
            semantic = rng.dirichlet(np.ones(C), size=(H, W)).astype(np.float32)
        out.append(
            {
                "image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                "mask": semantic,
                "masks": masks,
                "bboxes": np.stack([x0, y0, x1, y1], 1).astype(np.float32),
                "labels": 10 * i + np.arange(boxes, dtype=np.int64),
            }
        )
    return out


def _check_contract(out, sources, all_labelled):
    """The output of a mixer against the sample contract (augment.sample.SAMPLE_KEYS)."""
    image, mask = out["image"], out["mask"]
    assert image.shape == (H, W, 3) and image.dtype in (np.uint8, np.float32)
    if mask.ndim == 2:
        assert mask.shape == (H, W) and np.issubdtype(mask.dtype, np.integer)
        assert np.isin(mask, [*range(C), IGNORE]).all()
    else:  # a soft mask: per-pixel probabilities that sum to 1 where the pixel is labelled
        assert mask.shape == (H, W, C) and mask.dtype == np.float32
        assert (mask >= 0).all() and (mask <= 1 + 1e-6).all()
        total = mask.sum(-1)
        labelled = total > 0
        np.testing.assert_allclose(total[labelled], 1.0, atol=1e-5)
        if all_labelled:
            assert labelled.all()
    boxes, labels, masks = out["bboxes"], out["labels"], out["masks"]
    n = len(boxes)
    assert boxes.shape == (n, 4) and boxes.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert masks.shape == (n, H, W)  # one instance mask per box
    assert ((boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= W) & (boxes[:, 3] <= H)).all()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    assert set(labels.tolist()) <= {int(v) for s in sources for v in s["labels"]}
    for box, inst in zip(boxes, masks):  # each mask is non-empty and inside its own box
        rows, cols = np.nonzero(inst)
        assert len(rows), box
        tol = 0.5 + 1e-4  # nearest-neighbour pixels of a scaled tile may straddle the box edge
        assert cols.min() >= box[0] - tol and cols.max() + 1 <= box[2] + tol, box
        assert rows.min() >= box[1] - tol and rows.max() + 1 <= box[3] + tol, box
    if "weights" in out:
        assert out["weights"].shape == (n,) and out["weights"].dtype == np.float32
        assert ((out["weights"] >= 0) & (out["weights"] <= 1)).all()


def test_registry_entries_are_exported_mixers():
    for name, cls in MIXERS.items():
        assert cls.__name__ == name and name in augment.__all__
        mixer = _mixer(name)
        assert mixer.p == 1.0 and int(mixer.num_sources) >= 1 and callable(mixer)


@pytest.mark.parametrize("mask", ["hard", "ignored", "soft"])
@pytest.mark.parametrize("name", NAMES)
def test_output_keeps_the_contract(name, mask):
    mixer = _mixer(name)
    for seed in range(4):
        sources = _sources(mixer.num_sources, seed, mask=mask)
        out = mixer(sources, np.random.default_rng(seed))
        _check_contract(out, sources, all_labelled=mask != "ignored")
        if mask == "soft":
            assert out["mask"].ndim == 3


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_and_sources_untouched(name):
    mixer = _mixer(name)
    sources = _sources(mixer.num_sources, 5)
    before = copy.deepcopy(sources)
    a = mixer(sources, np.random.default_rng(7))
    b = mixer(sources, np.random.default_rng(7))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for s, c in zip(sources, before):
        assert all(np.array_equal(s[k], c[k]) for k in c)


@pytest.mark.parametrize("name", NAMES)
def test_sources_without_boxes(name):
    mixer = _mixer(name)
    sources = _sources(mixer.num_sources, 1, boxes=0)
    out = mixer(sources, np.random.default_rng(0))
    _check_contract(out, sources, all_labelled=True)
    assert out["bboxes"].shape == (0, 4) and out["labels"].shape == (0,) and out["masks"].shape == (0, H, W)


@pytest.mark.parametrize("name", NAMES)
def test_every_pixel_ignored(name):
    mixer = _mixer(name)
    sources = _sources(mixer.num_sources, 2, mask="all_ignored")
    out = mixer(sources, np.random.default_rng(0))
    _check_contract(out, sources, all_labelled=False)
    if out["mask"].ndim == 2:
        assert (out["mask"] == IGNORE).all()
    else:
        assert not out["mask"].any()  # all-zero vectors: unlabelled


@pytest.mark.parametrize("rng, shown", [(None, "None"), (np.random.RandomState(0), "RandomState"), (7, "7")])
@pytest.mark.parametrize("name", NAMES)
def test_rng_must_be_a_numpy_generator(name, rng, shown):
    mixer = _mixer(name)
    with pytest.raises(TypeError, match=rf"Generator.*got {shown}"):
        mixer(_sources(mixer.num_sources, 0), rng)


@pytest.mark.parametrize("source", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_a_class_outside_num_classes_is_refused(name, source):
    mixer = _mixer(name)
    sources = _sources(mixer.num_sources, 3)
    sources[source]["mask"][2, 5] = C + 3  # neither a class 0..C-1 nor ignore_index
    with pytest.raises(ValueError, match=rf"source {source} mask has class {C + 3} outside \[0, {C}\) and it is not"):
        mixer(sources, np.random.default_rng(0))


@pytest.mark.parametrize("mixers", [augment.CutMix(), augment.CutMix, 3], ids=["one mixer", "a class", "a number"])
def test_mix_dataset_wants_a_list_of_mixers(mixers):
    data = [{"image": np.zeros((4, 6, 3), np.uint8)}]
    with pytest.raises(TypeError, match=r"MixDataset mixers must be a list of mixer"):
        augment.MixDataset(data, mixers)
    assert len(augment.MixDataset(data, [augment.CutMix()]).mixers) == 1


@pytest.mark.parametrize("name", NAMES)
def test_wrong_number_of_sources(name):
    mixer = _mixer(name)
    n = int(mixer.num_sources)
    for k in (n - 1, n + 1):
        with pytest.raises(ValueError, match=rf"{n} samples.*got {k} samples"):
            mixer(_sources(k, 0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="got a dict"):
        mixer(_sources(1, 0)[0], np.random.default_rng(0))
