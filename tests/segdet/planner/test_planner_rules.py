"""The plan rules as pure functions of a fingerprint and injected timings (no files, no timing)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from segdet.planner import plan as P
from segdet.planner.fingerprint import Fingerprint
from segdet.planner.layout import DataLayout


def make_fp(
    train_sizes=((256, 256),) * 40,
    val_sizes=((256, 256),) * 10,
    *,
    fg_share=0.1,
    diameters=(10.0, 14.0, 20.0),
    values=(0, 255),
    edge=(100.0, 100.0),
    halves=(50, 50, 50, 50),
    split=False,
) -> Fingerprint:
    """A fingerprint built by hand: ``fg_share`` of the pixels split evenly over the values after the first."""
    n = len(train_sizes)
    root = Path("/data")
    images = tuple(root / "images" / f"{i}.png" for i in range(n))
    masks = tuple(root / "masks" / f"{i}.png" for i in range(n))
    val = tuple(root / "images" / f"v{i}.png" for i in range(len(val_sizes)))
    layout = DataLayout(root, "one folder" if split else "train/ and val/", root, root, images, masks, val, val)
    total = 1_000_000
    fg = values[1:]
    pixels = {values[0]: round(total * (1 - fg_share)), **{v: round(total * fg_share / len(fg)) for v in fg}}
    return Fingerprint(
        layout=layout,
        train_sizes=tuple(train_sizes),
        val_sizes=tuple(val_sizes),
        modes={"RGB": n + len(val_sizes)},
        read=n,
        value_pixels=pixels,
        value_masks={v: n for v in values},
        value_halves={v: tuple(halves) for v in values},
        diameters={values[0]: (500.0,), **{v: tuple(diameters) for v in fg}},
        mean=(0.3, 0.3, 0.3),
        std=(0.2, 0.2, 0.2),
        edge_energy=edge,
        read_s=0.01,
    )


def timing(step_s=1.0, data_s=0.0, forward_px_s=1e-6, checkpoint_s=0.5, startup_s=2.0, device="cpu", workers=2):
    return P.Timing(step_s, data_s, forward_px_s, checkpoint_s, startup_s, device, workers)


# --- masks and classes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "mapping", "ignored"),
    [
        ([0, 255], {0: 0, 255: 1}, ()),
        ([0, 1], None, ()),
        ([0, 1, 2, 255], None, (255,)),
        ([0, 1, 255], None, (255,)),
        ([0, 128, 255], {0: 0, 128: 1, 255: 2}, ()),
        ([3, 7], {3: 0, 7: 1}, ()),
        ([0, 255, 1], None, (255,)),
    ],
)
def test_propose_mask_values(values, mapping, ignored):
    assert P.propose_mask_values(values) == (mapping, ignored)


def test_a_single_mask_value_is_an_error_naming_the_folder():
    with pytest.raises(ValueError, match=r"every mask read in /d/masks holds the single value 0; .*two values"):
        P.propose_mask_values([0], where="/d/masks")


def test_two_mask_values_plan_two_softmax_channels_and_say_so():
    two = P.plan_data(make_fp(values=(0, 255)))
    three = P.plan_data(make_fp(values=(0, 128, 255)))
    assert two.mode == three.mode == "multiclass"
    assert "'binary' trains one sigmoid channel" in two.why["data.mode"]
    assert "one softmax channel per class (3)" in three.why["data.mode"]


def test_class_frequencies_follow_the_mapping():
    fp = make_fp(values=(0, 128, 255), fg_share=0.3)
    d = P.plan_data(fp)
    assert d.classes == ("background", "class_1", "class_2")
    assert d.mask_values == {0: 0, 128: 1, 255: 2}
    assert d.frequencies == pytest.approx((0.7, 0.15, 0.15))
    assert sum(d.frequencies) == pytest.approx(1.0)


def test_ignored_value_is_left_out_of_the_frequencies():
    fp = make_fp(values=(0, 1, 255), fg_share=0.5)  # 0: 50%, 1: 25%, 255: 25% of the pixels
    d = P.plan_data(fp)
    assert d.mask_values is None and d.ignored == (255,)
    assert d.classes == ("background", "foreground")
    assert d.frequencies == pytest.approx((2 / 3, 1 / 3))


# --- loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("share", "loss"), [(0.05, {"ce": 1.0, "dice": 1.0}), (0.19, {"ce": 1.0, "dice": 1.0})])
def test_imbalanced_data_gets_dice_and_ce(share, loss):
    d = P.plan_data(make_fp(fg_share=share))
    assert d.loss == loss
    assert "imbalanced" in d.why["loss"] and f"{share:.1%}" in d.why["loss"]


def test_balanced_data_gets_cross_entropy_alone():
    d = P.plan_data(make_fp(fg_share=0.45))
    assert d.loss == {"ce": 1.0} and "balanced" in d.why["loss"]


def test_one_rare_class_among_several_is_imbalanced():
    d = P.plan_data(make_fp(values=(0, 1, 2, 3), fg_share=0.7))  # 30% background, 23% each: balanced
    assert d.loss == {"ce": 1.0}
    fp = make_fp(values=(0, 1, 2), fg_share=0.5)
    fp.value_pixels[2] = 10_000  # 2 is ~1.3% of the labelled pixels
    assert P.plan_data(fp).loss == {"ce": 1.0, "dice": 1.0}


# --- crop, scale, inference -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "crop"),
    [((64, 80), 64), ((100, 100), 96), ((256, 320), 256), ((360, 360), 352), ((1024, 2048), 512), ((40, 40), 32)],
)
def test_crop_is_the_largest_multiple_of_32_inside_the_median_image(size, crop):
    d = P.plan_data(make_fp(train_sizes=(size,) * 9, val_sizes=(size,) * 3))
    assert d.crop == crop
    assert d.crop % 32 == 0 and (d.crop <= min(size) or d.crop == 32) and d.crop <= P.CROP_CAP
    assert d.scale == 1.0


def test_crop_uses_the_median_not_the_largest_image():
    sizes = [(256, 256)] * 5 + [(1024, 1024)] * 4
    assert P.plan_data(make_fp(train_sizes=sizes)).crop == 256


def test_small_objects_stay_at_native_resolution_even_in_large_images():
    d = P.plan_data(make_fp(train_sizes=((2000, 2000),) * 4, diameters=(8.0, 12.0, 30.0, 400.0)))
    assert d.scale == 1.0 and "small objects stay sharp" in d.why["inference.scales"]


def test_large_objects_are_downscaled_so_the_small_ones_keep_64_px():
    d = P.plan_data(make_fp(train_sizes=((1024, 1024),) * 4, diameters=(260.0, 300.0, 400.0)))
    # 10th percentile of (260, 300, 400) by linear interpolation: 260 + 0.2 * 40 = 268 px; 64 / 268 -> 0.25
    assert d.scale == 0.25
    assert d.crop == 256  # 1024 * 0.25
    d = P.plan_data(make_fp(train_sizes=((1024, 1024),) * 4, diameters=(130.0, 140.0, 150.0)))
    assert d.scale == 0.5  # 64 / 132 = 0.48 -> 0.5
    assert d.crop == 512 and "downscaled x0.5" in d.why["inference.scales"]


def test_context_floor_follows_the_large_objects():
    d = P.plan_data(make_fp(train_sizes=((512, 512),) * 4, diameters=(10.0, 20.0) + (60.0,) * 10))
    # 90th percentile 60 px x 4 = 240 -> 256; the budget may not shrink the crop below it
    assert d.crop == 512 and d.min_crop == 256
    d = P.plan_data(make_fp(train_sizes=((512, 512),) * 4, diameters=(3.0, 4.0, 5.0)))
    assert d.min_crop == P.MIN_CROP


def test_whole_image_inference_unless_images_hold_many_crops():
    assert P.plan_data(make_fp(train_sizes=((512, 640),) * 5)).inference_mode == "whole"
    # median 4096x4096 with a 512 crop: 64 crops per image, tiles of 1024 fit every image
    d = P.plan_data(make_fp(train_sizes=((4096, 4096),) * 5, val_sizes=((3000, 4000),) * 2))
    assert d.inference_mode == "slide" and d.tile == 1024
    # a validation image smaller than a useful tile: whole images
    d = P.plan_data(make_fp(train_sizes=((4096, 4096),) * 5, val_sizes=((300, 300),)))
    assert d.inference_mode == "whole" and d.tile is None


# --- orientation -----------------------------------------------------------------------------


def test_no_up_and_down_gets_vertical_flips_and_rotations():
    d = P.plan_data(make_fp(edge=(100.0, 104.0), halves=(50, 52, 49, 51)))
    assert d.vflip and d.rot90


def test_dominant_edge_direction_keeps_horizontal_flips_only():
    d = P.plan_data(make_fp(edge=(100.0, 160.0)))
    assert not d.vflip and not d.rot90 and "up and down" in d.why["augment.train.HorizontalFlip"]


def test_objects_in_the_lower_half_keep_horizontal_flips_only():
    d = P.plan_data(make_fp(halves=(20, 80, 50, 50)))  # a road in the lower half
    assert not d.vflip and not d.rot90


def test_non_square_images_get_vertical_flips_but_no_rotation():
    d = P.plan_data(make_fp(train_sizes=((256, 512),) * 5))
    assert d.vflip and not d.rot90


# --- the budget ------------------------------------------------------------------------------


def _brute_force(avail, epoch_s, val_s, k):
    best = 0
    for e in range(1, 10_000):
        if e * epoch_s + math.ceil(e / k) * val_s <= avail:
            best = e
        else:
            break
    return best


@pytest.mark.parametrize(
    ("budget", "startup", "epoch_s", "val_s"),
    [(600, 10, 30, 20), (600, 5, 3.1, 20), (240, 4, 40, 45), (3600, 5, 7.5, 1.0), (120, 2, 1.0, 0.2), (60, 2, 0.3, 4)],
)
def test_fit_epochs_is_the_largest_run_within_the_budget(budget, startup, epoch_s, val_s):
    epochs, k, total, fits = P.fit_epochs(budget, startup, epoch_s, val_s)
    avail = budget * (1 - P.MARGIN) - startup - P.PROCESS_S
    assert fits and 1 <= k <= epochs
    assert total == pytest.approx(startup + P.PROCESS_S + epochs * epoch_s + math.ceil(epochs / k) * val_s)
    assert total <= budget * (1 - P.MARGIN) + 1e-9
    assert epochs == _brute_force(avail, epoch_s, val_s, k)  # no more epochs fit at this interval
    # k is the smallest interval whose validations stay within the share (or validates the last epoch only)
    for smaller in range(1, k):
        e = _brute_force(avail, epoch_s, val_s, smaller)
        too_much = math.ceil(e / smaller) * val_s > P.VAL_SHARE * budget and smaller < e
        assert too_much or (smaller >= e and k == epochs)  # or validating once left room for more epochs
    assert math.ceil(epochs / k) * val_s <= P.VAL_SHARE * budget or k == epochs


def test_fit_epochs_example_numbers():
    # 600 s: 570 s usable - 10 s start - 15 s process = 545 s; every 3 epochs: 15 x 30 + 5 x 20 = 550 > 545 -> 14
    assert P.fit_epochs(600, 10, 30, 20)[:2] == (14, 3)


def test_fit_epochs_validating_once_takes_every_epoch_one_validation_leaves_room_for():
    # 300 s: 285 usable - 2.5 start - 15 process = 267.5; every 3 epochs fits only 3 (4 would need two
    # validations, 276 s), but one validation after the last leaves room for 4 (233 s)
    epochs, k, total, fits = P.fit_epochs(300, 2.5, 47.5, 43)
    assert fits and (epochs, k) == (4, 4)
    avail = 300 * (1 - P.MARGIN) - 2.5 - P.PROCESS_S
    assert epochs == _brute_force(avail, 47.5, 43, 10_000)


def test_fit_epochs_over_budget_says_so():
    epochs, k, total, fits = P.fit_epochs(60, 5, 100, 5)
    assert (epochs, k, fits) == (1, 1, False) and total == pytest.approx(5 + P.PROCESS_S + 105)
    epochs, k, total, fits = P.fit_epochs(60, 5, 100, 30)  # one validation is half the budget: none
    assert (epochs, k, fits) == (1, None, False) and total == pytest.approx(5 + P.PROCESS_S + 100)


@pytest.mark.parametrize(
    ("budget", "startup", "epoch_s", "val_s"), [(300, 16, 30, 68), (240, 4, 92, 92), (600, 5, 7, 121)]
)
def test_a_validation_over_its_share_of_the_budget_gives_no_validation_and_every_epoch_that_fits(
    budget, startup, epoch_s, val_s
):
    assert val_s > P.VAL_SHARE * budget
    epochs, k, total, fits = P.fit_epochs(budget, startup, epoch_s, val_s)
    avail = budget * (1 - P.MARGIN) - startup - P.PROCESS_S
    best = max(e for e in range(1, 10_000) if e * epoch_s <= avail)  # brute force, no validation
    assert (epochs, k, fits) == (best, None, True) and total == pytest.approx(startup + P.PROCESS_S + best * epoch_s)


def test_ladder_goes_from_the_largest_step_to_the_smallest():
    steps = P.ladder(256, 160, [8, 4])
    pixels = [c.pixels for c in steps]
    assert pixels == sorted(pixels, reverse=True)
    assert steps[0] == P.Candidate("resnet18", 256, 8) and steps[-1] == P.Candidate("resnet18", 160, 4)
    assert {c.crop for c in steps} == {256, 224, 192, 160}


def test_estimates_scale_with_pixels_and_encoder():
    ref = P.Candidate("resnet18", 128, 4)
    t = timing(step_s=2.0, data_s=0.4, checkpoint_s=1.0)
    est = P.estimate_timing(P.Candidate("resnet18", 256, 8), {ref: t})
    assert est.step_s == pytest.approx(2.0 * 8) and est.data_s == pytest.approx(0.8) and not est.measured
    deep = P.estimate_timing(P.Candidate("resnet34", 128, 4), {ref: t})
    assert deep.step_s == pytest.approx(2.0 * P.ENCODER_COST["resnet34"][0])
    assert deep.checkpoint_s == pytest.approx(1.0 * P.ENCODER_COST["resnet34"][1])
    assert P.estimate_timing(ref, {ref: t}) is t


def test_step_cost_adds_loading_on_a_cpu_and_overlaps_it_on_a_gpu():
    assert timing(step_s=1.0, data_s=0.5).step_cost == pytest.approx(1.5)
    assert timing(step_s=1.0, data_s=3.0, device="cuda", workers=4).step_cost == pytest.approx(1.0)
    assert timing(step_s=1.0, data_s=8.0, device="cuda", workers=4).step_cost == pytest.approx(2.0)


def test_val_pixels_pads_each_batch_to_its_largest_image():
    sizes = [(100, 100), (200, 300), (64, 64), (64, 64)]
    # batch 2: [(100,100),(200,300)] -> 2 x 224 x 320; [(64,64),(64,64)] -> 2 x 64 x 64
    assert P.val_pixels(sizes, 2) == 2 * 224 * 320 + 2 * 64 * 64
    # with flips every image runs on its own, padded to 32, once per pass
    assert P.val_pixels(sizes, 2, flips=2) == 3 * (128 * 128 + 224 * 320 + 2 * 64 * 64)
    assert P.val_pixels([(1000, 1000)], 1, scale=0.5) == 512 * 512
    # sliding window of 256 over 600x600 with overlap 0.25: starts 0, 192, 344 per axis -> 9 tiles
    assert P.val_pixels([(600, 600)], 1, mode="slide", tile=256) == 9 * 256 * 256


def _budget_plan(fp, step_s, budget_s, **kw):
    d = P.plan_data(fp)
    measured = {c: timing(step_s=step_s * c.pixels / 65536, **kw) for c in P.ladder(d.crop, d.min_crop, [8, 4])}
    return P.plan_budget(fp, d, measured, budget_s)


def test_budget_plan_fits_the_formula_with_injected_timings():
    fp = make_fp(train_sizes=((256, 256),) * 200, val_sizes=((256, 320),) * 20)
    plan = _budget_plan(fp, 0.5, 600)
    t = plan.timing
    spe = 200 // plan.candidate.batch
    assert plan.steps_per_epoch == spe
    assert plan.epoch_s == pytest.approx(spe * t.step_cost + t.checkpoint_s)
    expected = P.fit_epochs(600, t.startup_s, plan.epoch_s, plan.val_s)
    assert (plan.epochs, plan.val_interval, plan.fits) == expected[:2] + (True,)
    assert plan.total_s <= 600 * (1 - P.MARGIN)
    assert f"{plan.epochs}" in str(plan.epochs) and "s/step (measured" in plan.why["train.epochs"]


def test_plenty_of_time_keeps_the_largest_step():
    fp = make_fp(train_sizes=((256, 256),) * 200)
    plan = _budget_plan(fp, 0.05, 3600)
    assert plan.candidate.crop == 256 and plan.candidate.batch == 8
    assert plan.total_steps >= P.TARGET_STEPS


def _steps(fp, d, candidate, step_s, budget):
    """Optimizer steps of a candidate's run, from the formula (0 when it does not fit)."""
    t = timing(step_s=step_s * candidate.pixels / 65536)
    spe = P.steps_per_epoch(len(fp.train_sizes), candidate.batch)
    val_s = P._val_seconds(fp, d, t, candidate.batch, flips=0)
    e, _, _, fits = P.fit_epochs(budget, t.startup_s, spe * t.step_cost + t.checkpoint_s, val_s)
    return e * spe if fits else 0


def test_little_time_takes_the_most_steps_then_the_largest_step():
    fp = make_fp(train_sizes=((256, 256),) * 200, diameters=(10.0, 20.0, 40.0))  # floor 4 x 36 -> 160
    d = P.plan_data(fp)
    assert d.min_crop == 160
    for budget in (700, 1000):
        plan = _budget_plan(fp, 6.0, budget)
        order = P.ladder(d.crop, d.min_crop, [8, 4])
        steps = {c: _steps(fp, d, c, 6.0, budget) for c in order}
        best = max(steps.values())
        assert 0 < best < P.TARGET_STEPS
        assert plan.total_steps == steps[plan.candidate] == best
        assert plan.candidate.pixels == max(c.pixels for c in order if steps[c] == best)
        assert "the most steps any allowed step gets" in plan.why["data.batch_size"]


def test_the_chosen_step_is_the_first_that_reaches_the_target():
    fp = make_fp(train_sizes=((256, 256),) * 200, diameters=(4.0, 5.0, 6.0))
    d = P.plan_data(fp)
    order = P.ladder(d.crop, d.min_crop, [8, 4])
    reached = 0
    for budget in (300, 900, 1800, 3600):
        plan = _budget_plan(fp, 0.5, budget)
        steps = {c: _steps(fp, d, c, 0.5, budget) for c in order}
        first = next((c for c in order if steps[c] >= P.TARGET_STEPS), None)
        if first is not None:
            reached += 1
            assert plan.candidate == first and plan.total_steps <= steps[first]  # flip TTA may cost an epoch
    assert reached >= 2


def test_deep_encoder_only_with_many_steps():
    fp = make_fp(train_sizes=((256, 256),) * 200)
    assert _budget_plan(fp, 0.5, 600).candidate.encoder == "resnet18"
    plan = _budget_plan(fp, 0.01, 3600)
    assert plan.candidate.encoder == "resnet34" and plan.total_steps >= P.DEEP_STEPS


def test_ema_and_cutmix_by_rule():
    fp = make_fp(train_sizes=((256, 256),) * 40)
    short = _budget_plan(fp, 2.0, 120)
    assert short.ema is None and short.mix == []
    long = _budget_plan(fp, 0.02, 3600)
    assert long.total_steps >= P.EMA_MIN_STEPS
    assert long.ema == pytest.approx(round(min(0.9999, max(0.99, 1 - 10 / long.total_steps)), 4))
    passes = long.total_steps * long.candidate.pixels / (40 * 256 * 256)
    assert passes >= P.CUTMIX_PASSES and long.mix == [{"CutMix": {"p": 0.5}}]


def test_flip_tta_only_when_a_validation_with_it_is_cheap():
    fp = make_fp(train_sizes=((256, 256),) * 40, val_sizes=((256, 256),) * 10, edge=(100, 100))
    cheap = _budget_plan(fp, 0.1, 600, forward_px_s=1e-7)
    assert cheap.flip == ("h", "v")
    dear = _budget_plan(fp, 0.1, 60, forward_px_s=2e-5)  # 3 passes x 10 x 65536 px x 2e-5 = 39 s > 6 s
    assert dear.flip == () and "no flip TTA" in dear.why["inference.flip"]
    upright = _budget_plan(make_fp(edge=(100, 200)), 0.1, 600, forward_px_s=1e-7)
    assert upright.flip == ("h",)


def test_warmup_is_a_twentieth_of_the_run_with_a_floor():
    fp = make_fp(train_sizes=((256, 256),) * 200)
    for step_s, budget in ((0.05, 3600), (2.0, 240)):
        plan = _budget_plan(fp, step_s, budget)
        s = plan.total_steps
        expected = min(0.2 * s, max(0.05 * s, 20)) / plan.steps_per_epoch
        assert plan.warmup_epochs == pytest.approx(max(expected, 0.001), abs=1e-3)
        assert plan.warmup_epochs < plan.epochs


def test_every_written_key_has_a_reason():
    fp = make_fp()
    plan = _budget_plan(fp, 0.5, 600)
    for key in (
        "data.batch_size",
        "augment.train.RandomCrop",
        "train.epochs",
        "train.val_interval",
        "train.ema",
        "augment.mix",
        "inference.flip",
        "inference.mode",
        "loss",
        "model.mean",
        "model.encoder",
    ):
        assert plan.why.get(key), key


@pytest.mark.parametrize(
    ("n", "device", "expected"),
    [(531, "cpu", [8, 4]), (531, "cuda", [16, 8, 4]), (20, "cpu", [4]), (3, "cpu", [2]), (1, "cpu", [1])],
)
def test_batch_sizes(n, device, expected):
    assert P.batch_sizes(n, device) == expected


def test_steps_per_epoch_drops_the_last_partial_batch():
    for n, b in itertools.product((1, 3, 8, 9, 531), (1, 4, 8)):
        assert P.steps_per_epoch(n, b) == (n // b if n > b else 1)


def test_flip_tta_when_it_costs_little_more_than_padded_plain_batches():
    # mixed sizes: a plain pass pads each batch to its 1024x1024 image, TTA runs every image at its own size
    val = tuple([(256, 256), (1024, 1024)] * 5)
    fp = make_fp(train_sizes=((256, 256),) * 40, val_sizes=val, edge=(100, 100))
    plan = _budget_plan(fp, 0.1, 600, forward_px_s=1e-5)
    plain = P.val_pixels(val, plan.candidate.batch)
    one_flip = P.val_pixels(val, plan.candidate.batch, flips=1)
    assert one_flip <= 1.1 * plain < P.val_pixels(val, plan.candidate.batch, flips=2)
    assert one_flip * 1e-5 > P.TTA_SHARE * 600  # not cheap in absolute terms
    assert plan.flip == ("h",) and "pads every batch" in plan.why["inference.flip"]


def test_when_nothing_fits_the_quickest_run_is_planned_and_flagged():
    fp = make_fp(train_sizes=((256, 256),) * 200)
    plan = _budget_plan(fp, 20.0, 60)
    d = P.plan_data(fp)
    assert plan.candidate == P.ladder(d.crop, d.min_crop, [8, 4])[-1] and not plan.fits and plan.epochs == 1
    assert "MORE than the 1 min budget; raise --minutes" in plan.why["train.epochs"]
