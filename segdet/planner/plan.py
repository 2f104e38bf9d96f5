"""The choices of ``segdet init``: pure functions of a :class:`Fingerprint` and measured step times.

Two stages, as nnU-Net plans a dataset from its fingerprint:

1. :func:`plan_data` decides what the data alone decides: the mask mapping and class names, the
   loss, the input scale, the largest useful crop, the flips and rotations, the normalisation and
   the inference mode.
2. :func:`plan_budget` decides what the time budget decides, from :class:`Timing` figures of
   real training steps on this machine: the crop and batch actually trained, the encoder, the
   epochs and the validation interval, flip TTA, EMA, CutMix and the warmup.

Every choice carries its reason with the figure behind it (``Plan.why``, keyed by the dotted
config key), which :mod:`segdet.planner.write` puts beside the value in the written YAML. The
rules' thresholds are the module constants below; they are general rules, not a fit to one dataset.

The budget formula (:func:`fit_epochs`): with ``E`` epochs validated every ``k`` epochs and after
the last, a run takes ``startup + PROCESS_S + E * epoch_s + ceil(E / k) * val_s`` seconds, where ``epoch_s``
is ``steps_per_epoch * step_cost + checkpoint_s``; ``E`` is the largest that fits
``(1 - MARGIN) * budget`` and ``k`` the smallest that keeps validation within ``VAL_SHARE`` of the
budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .fingerprint import Fingerprint
from .layout import VAL_EVERY

__all__ = [
    "FIXED_WHY",
    "Candidate",
    "DataPlan",
    "Plan",
    "Timing",
    "batch_sizes",
    "estimate_timing",
    "first_candidate",
    "fit_epochs",
    "ladder",
    "plan_budget",
    "plan_data",
    "propose_mask_values",
    "steps_per_epoch",
    "val_pixels",
]

STRIDE = 32  #: crops and tiles are multiples of the smp encoders' output stride
CROP_CAP = 512  #: the largest training crop (pixels per side)
MIN_CROP = 64  #: the smallest crop the budget may shrink to, unless objects ask for more
CONTEXT = 4  #: a crop holds at least this many 90th-percentile objects across
DOWNSCALE_ABOVE = 128.0  #: downscale only when the smallest tenth of objects is wider than this (px)
DOWNSCALE_TO = 64.0  #: ... and then so that it becomes this wide
MIN_SCALE = 0.25
#: optimizer steps the largest step must still get before the budget shrinks it: on a CPU the pixels
#: per second are the same for small and large steps, and at equal time fewer steps of more pixels
#: won (DSB2018, 5 min: 132 steps of 8 crops of 256 scored mean IoU 0.865, 528 steps of 4 crops
#: of 160 scored 0.801; bigger crops hold more context, bigger batches steadier BatchNorm statistics)
TARGET_STEPS = 100
DEEP_STEPS = 4000  #: steps that pay for the deeper encoder (resnet34)
BATCHES_CPU = (8, 4)  #: batch sizes tried, largest first (BatchNorm wants 4 or more)
BATCHES_CUDA = (16, 8, 4)
MARGIN = 0.05  #: share of the budget kept for what is not timed
#: seconds a run spends outside its epochs besides opening the data and building the model: starting
#: Python and importing torch, smp and albumentations, starting the loader processes, the final
#: results.png (15 s measured for a 30 s run on the 2-core CPU, 6 s of it the imports)
PROCESS_S = 15.0
VAL_SHARE = 0.2  #: validation takes at most this share of the budget
TTA_SHARE = 0.1  #: flip TTA when one validation with it takes at most this share of the budget ...
TTA_EXTRA = 0.1  #: ... or at most 10 % longer than the plain pass (which pads batches of mixed sizes)
IMBALANCED = 0.2  #: a class under this share of the labelled pixels makes the data imbalanced
EMA_MIN_STEPS = 500  #: fewer steps: the last weights are the best, no average
CUTMIX_PASSES = 20.0  #: CutMix when every training pixel is seen at least this often
SQUARE = 1.25  #: "square-ish": median height / width within [1 / SQUARE, SQUARE]
EDGE_BALANCE = 0.15  #: no dominant orientation: row and column edge energies within 15 %
SPREAD_BALANCE = 0.2  #: ... and the objects spread evenly between the halves (within 20 %)
SLIDE_AREA = 16  #: sliding window when the typical image holds 16 crops (4x per side)
LR = 1e-3
#: step time of an encoder relative to resnet18 (used before it is measured) and checkpoint size ratio
ENCODER_COST = {"resnet18": (1.0, 1.0), "resnet34": (1.4, 1.7)}


#: reasons of the choices that do not depend on the data or the budget
FIXED_WHY = {
    "seed": "one seed: the same data order and augmentation on every run",
    "output_dir": "run folder, relative to where segdet train runs",
    "data.kind": "images/ and masks/ matched by stem",
    "data.num_workers": "auto: one loader process per core (at most 8)",
    "augment.val": "none: validation scores every image whole, at its own resolution",
    "augment.post": "nothing after mixing",
    "model.arch": "U-Net: its full-resolution decoder keeps small objects and boundaries sharp",
    "model.encoder_weights": "random init, no download ('imagenet' fetches pretrained weights once)",
    "model.weights": "no starting checkpoint",
    "optim.name": "AdamW: forgiving about the learning rate for networks trained from scratch",
    "optim.lr": "1e-3, the usual AdamW peak for U-Nets trained from scratch at batch 4-16",
    "optim.weight_decay": "light decoupled decay: a time-bounded run underfits rather than overfits",
    "schedule.name": "cosine: ends the budget at a low rate with no step points to tune",
    "schedule.min_lr_ratio": "the last steps run at 1% of the peak",
    "train.device": "auto: CUDA when present, else the CPU",
    "train.amp": "auto: bf16 (else fp16) on CUDA, full precision on a CPU",
    "train.metric": "mean IoU over the classes picks best.pt",
    "train.patience": "no early stop: the cosine schedule ends with the budget, stopping early cuts its low-rate end",
    "inference.blend": "Gaussian weights hide the seams between tiles",
    "inference.overlap": "a quarter of each tile shared with its neighbour",
    "inference.batch": "tiles per forward pass",
}


@dataclass(frozen=True)
class Candidate:
    """One training configuration to time: encoder, square crop side and batch size."""

    encoder: str
    crop: int
    batch: int

    @property
    def pixels(self) -> int:
        """Input pixels of one step."""
        return self.batch * self.crop * self.crop

    def __str__(self) -> str:
        return f"{self.encoder} crop {self.crop} batch {self.batch}"


@dataclass(frozen=True)
class Timing:
    """Measured (or, with ``measured=False``, estimated) costs of one :class:`Candidate` on this machine.

    Attributes:
        step_s: one optimizer step (forward, backward, AdamW) after a warm-up step.
        data_s: building one batch (read, augment, collate) in one process.
        forward_px_s: seconds per input pixel of a full-resolution forward pass in eval mode.
        checkpoint_s: writing one checkpoint (weights, EMA weights, optimizer state).
        startup_s: opening the datasets (the mask checks) and building the model.
        device: ``cpu`` or ``cuda``.
        workers: loader processes the run will use.
        measured: False for a figure scaled from another candidate's.
    """

    step_s: float
    data_s: float
    forward_px_s: float
    checkpoint_s: float
    startup_s: float
    device: str
    workers: int
    measured: bool = True

    @property
    def step_cost(self) -> float:
        """Seconds per training step with loading: on a CPU the loader shares the cores, on a GPU it overlaps."""
        if self.device == "cpu":
            return self.step_s + self.data_s
        return max(self.step_s, self.data_s / max(self.workers, 1))


@dataclass(frozen=True)
class DataPlan:
    """What the data alone decides (:func:`plan_data`); ``why`` maps dotted config keys to reasons."""

    mask_values: dict[int, int] | None
    ignored: tuple[int, ...]
    classes: tuple[str, ...]
    frequencies: tuple[float, ...]
    diameters: dict[int, tuple[float, float, float, int]]  # class -> (p10, median, p90, count)
    scale: float
    crop: int
    min_crop: int
    vflip: bool
    rot90: bool
    mode: str
    inference_mode: str
    tile: int | None
    loss: dict[str, Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    why: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """The whole plan: the data's choices plus the budget's (:func:`plan_budget`).

    Attributes:
        data: the :class:`DataPlan`.
        candidate: the encoder, crop and batch trained.
        timing: the figures behind it (``timing.measured`` tells whether this candidate was timed).
        epochs: training epochs.
        val_interval: epochs between validations; ``None``: no validation during training.
        steps_per_epoch: optimizer steps per epoch.
        epoch_s: seconds per epoch (steps, loading, checkpoint).
        val_s: seconds per validation.
        total_s: the predicted run time (:func:`fit_epochs`).
        budget_s: the budget.
        fits: False when even one epoch and one validation exceed the budget.
        flip: flip TTA directions.
        ema: EMA decay or None.
        mix: the ``augment.mix`` list.
        warmup_epochs: linear warmup length.
        why: reasons, by dotted config key (the data plan's included).
    """

    data: DataPlan
    candidate: Candidate
    timing: Timing
    epochs: int
    val_interval: int | None
    steps_per_epoch: int
    epoch_s: float
    val_s: float
    total_s: float
    budget_s: float
    fits: bool
    flip: tuple[str, ...]
    ema: float | None
    mix: list[dict[str, Any]]
    warmup_epochs: float
    why: dict[str, str]

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.epochs * self.steps_per_epoch


# --- stage 1: the data -------------------------------------------------------------------------


def propose_mask_values(
    values: Sequence[int], ignore_index: int = 255, where: str = "the masks"
) -> tuple[dict[int, int] | None, tuple[int, ...]]:
    """The ``data.folder.mask_values`` mapping for the stored values found, and the values left ignored.

    - values ``0..K-1``: class indices already, no mapping;
    - values ``0..K-1`` (K >= 2) and ``ignore_index``: the same, ``ignore_index`` unlabelled;
    - otherwise each value, in increasing order, becomes the next class (``{0: 0, 255: 1}`` for
      0/255 masks).

    Raises:
        ValueError: fewer than two values (nothing to segment), naming ``where``.

    Example:
        >>> propose_mask_values([0, 255])
        ({0: 0, 255: 1}, ())
        >>> propose_mask_values([0, 1, 2, 255])
        (None, (255,))
    """
    ordered = sorted(int(v) for v in values)
    if len(ordered) < 2:
        shown = ordered[0] if ordered else "none"
        raise ValueError(
            f"every mask read in {where} holds the single value {shown}; segmentation needs masks with at "
            "least two values (background and an object class)"
        )
    if ordered == list(range(len(ordered))):
        return None, ()
    rest = [v for v in ordered if v != ignore_index]
    if len(rest) >= 2 and ignore_index in ordered and rest == list(range(len(rest))):
        return None, (ignore_index,)
    return {v: i for i, v in enumerate(ordered)}, ()


def class_names(count: int) -> tuple[str, ...]:
    """``background, foreground`` for two classes, else ``background, class_1, class_2, ...``."""
    if count == 2:
        return ("background", "foreground")
    return ("background", *(f"class_{i}" for i in range(1, count)))


def plan_data(fp: Fingerprint, ignore_index: int = 255) -> DataPlan:
    """The choices the data alone decides (see the module docstring); pure.

    Raises:
        ValueError: masks with a single value.
    """
    masks_dir = fp.layout.train_root / "masks"
    mapping, ignored = propose_mask_values(fp.values, ignore_index, str(masks_dir))
    to_class = mapping or {v: v for v in fp.values if v not in ignored}
    classes = class_names(len(to_class))
    labelled = sum(n for v, n in fp.value_pixels.items() if v in to_class)
    freq = [0.0] * len(classes)
    diam: dict[int, list[float]] = {}
    for v, c in to_class.items():
        freq[c] += fp.value_pixels.get(v, 0) / max(labelled, 1)
        diam.setdefault(c, []).extend(fp.diameters.get(v, ()))
    stats = {c: _percentiles(d) for c, d in diam.items() if c != 0 and d}
    why: dict[str, str] = {}
    shown_values = ", ".join(
        f"{v} ({fp.value_pixels[v] / max(sum(fp.value_pixels.values()), 1):.1%})" for v in fp.values
    )
    if mapping:
        why["data.folder.mask_values"] = (
            f"stored values {shown_values} of the pixels read, in order to classes 0..{len(classes) - 1}"
        )
    else:
        why["data.folder.mask_values"] = f"the masks hold class indices already: {shown_values}"
    why["data.classes"] = f"{len(classes)} classes, one per stored value; rename them freely"
    lay = fp.layout
    why["data.folder.train"] = f"{len(lay.train_images)} training pairs"
    why["data.folder.val"] = f"{len(lay.val_images)} validation pairs"
    if lay.split:
        why["data.folder.train_split"] = (
            f"one images/ + masks/ folder, split here: stems sorted, every {VAL_EVERY}th to validation"
        )
        why["data.folder.val_split"] = f"the {len(lay.val_images)} validation stems (file written beside this one)"
    else:
        why["data.folder.train_split"] = why["data.folder.val_split"] = "every pair of the folder"
    why["data.ignore_index"] = (
        f"stored value {ignored[0]} marks unlabelled pixels"
        if ignored
        else "not in the masks: only the padding of small images"
    )
    mode = "multiclass"  # two-value masks too: two softmax channels; binary is a one-line edit
    if len(classes) == 2:
        why["data.classes"] += "; two mask values: binary data"
    why["data.mode"] = (
        "two softmax channels (background, foreground); 'binary' trains one sigmoid channel instead"
        if len(classes) == 2
        else f"one softmax channel per class ({len(classes)})"
    )

    # object sizes and the scale
    fg = [c for c in range(1, len(classes))]
    p10s = [stats[c][0] for c in fg if c in stats]
    p90s = [stats[c][2] for c in fg if c in stats]
    objects = "; ".join(
        f"{classes[c]}: {stats[c][3]} objects, diameter median {stats[c][1]:.0f} px, 10th pct {stats[c][0]:.0f} px"
        for c in fg
        if c in stats
    )
    smallest = min(p10s) if p10s else 0.0
    scale = 1.0
    if smallest > DOWNSCALE_ABOVE:
        scale = max(MIN_SCALE, round(DOWNSCALE_TO / smallest * 8) / 8)
    h, w = fp.typical_size
    if scale < 1.0:
        why["inference.scales"] = why["augment.train.RandomScale"] = (
            f"downscaled x{scale:g}: even the smallest tenth of objects is {smallest:.0f} px wide "
            f"(> {DOWNSCALE_ABOVE:.0f}), {DOWNSCALE_TO:.0f} px is plenty to resolve them ({objects})"
        )
    else:
        why["inference.scales"] = f"native resolution: {objects or 'no objects found'}" + (
            f"; small objects stay sharp (10th pct {smallest:.0f} px <= {DOWNSCALE_ABOVE:.0f})" if p10s else ""
        )
    side = min(h, w) * scale
    crop = int(min(CROP_CAP, max(STRIDE, side // STRIDE * STRIDE)))
    need = max(p90s, default=0.0) * scale * CONTEXT
    min_crop = int(min(crop, max(MIN_CROP, math.ceil(need / STRIDE) * STRIDE)))
    why["augment.train.RandomCrop"] = (
        f"median image {h}x{w}{f' (x{scale:g})' if scale < 1 else ''}: the largest multiple of {STRIDE} "
        f"inside it{f', capped at {CROP_CAP}' if side > CROP_CAP else ''}"
    )

    # orientation: vertical flips and 90-degree turns only where the data has no up and down
    ex, ey = fp.edge_energy[1], fp.edge_energy[0]
    edge_gap = abs(ex - ey) / max(ex + ey, 1e-12)
    halves = [0, 0, 0, 0]
    for v, c in to_class.items():
        if c != 0:
            halves = [a + b for a, b in zip(halves, fp.value_halves.get(v, (0, 0, 0, 0)))]
    top_bottom = abs(halves[0] - halves[1]) / max(halves[0] + halves[1], 1)
    left_right = abs(halves[2] - halves[3]) / max(halves[2] + halves[3], 1)
    aspect = h / max(w, 1)
    no_up = edge_gap <= EDGE_BALANCE and top_bottom <= SPREAD_BALANCE and left_right <= SPREAD_BALANCE
    square = 1 / SQUARE <= aspect <= SQUARE
    vflip, rot90 = no_up, no_up and square
    figures = (
        f"edge energy rows/columns differ by {edge_gap:.0%}, objects top/bottom by {top_bottom:.0%}, "
        f"left/right by {left_right:.0%}"
    )
    why["augment.train.HorizontalFlip"] = "mirror images are as likely as the originals in almost any data"
    if not vflip:
        why["augment.train.HorizontalFlip"] += f"; no vertical flips, the data has an up and down ({figures})"
    else:
        why["augment.train.VerticalFlip"] = (
            f"no up and down in the data: {figures} (limits {EDGE_BALANCE:.0%}, {SPREAD_BALANCE:.0%})"
        )
        if rot90:
            why["augment.train.RandomRotate90"] = f"no dominant orientation and square-ish images (median {h}x{w})"
        else:
            why["augment.train.VerticalFlip"] += f"; no 90-degree turns, images are not square-ish (median {h}x{w})"
    why["augment.train.RandomBrightnessContrast"] = "exposure and contrast vary between images and acquisitions"
    why["augment.train.PadIfNeeded"] = "images smaller than the crop are padded with ignore_index, never background"

    # loss
    rarest = min(freq[1:]) if len(freq) > 1 else 1.0
    shares = ", ".join(f"{n} {f:.1%}" for n, f in zip(classes, freq))
    if min(freq) < IMBALANCED:
        loss = {"ce": 1.0, "dice": 1.0}
        why["loss"] = (
            f"imbalanced classes ({shares} of the labelled pixels; rarest {rarest:.1%} < {IMBALANCED:.0%}): "
            "Dice weighs every class equally, cross-entropy keeps the gradients smooth"
        )
    else:
        loss = {"ce": 1.0}
        why["loss"] = f"balanced classes ({shares}): cross-entropy alone, Dice adds nothing when no class is rare"

    mean = tuple(round(m, 4) for m in fp.mean)
    std = tuple(round(max(s, 1e-3), 4) for s in fp.std)
    why["model.mean"] = (
        f"the data's own per-channel mean over the {fp.read} training images read; the model subtracts it "
        "inside, so a randomly initialised encoder sees zero-mean inputs (ImageNet values fit pretrained encoders only)"
    )
    why["model.std"] = "the data's own per-channel standard deviation: unit-variance inputs"

    # inference
    crop_native = crop
    area = h * w * scale * scale
    tile = int(min(2 * crop_native, *(s * scale for s in fp.min_size)) // STRIDE * STRIDE)
    if area > SLIDE_AREA * crop_native * crop_native and tile >= crop_native:
        mode_inf = "slide"
        why["inference.mode"] = (
            f"the median image ({h}x{w}) holds {area / crop_native**2:.0f} crops of {crop_native}: "
            f"tiles of {tile} bound the memory"
        )
    else:
        mode_inf, tile = "whole", None
        why["inference.mode"] = (
            f"the median image ({h}x{w}) is {area / crop_native**2:.1f} crops of {crop_native}: "
            "one pass over the whole image"
        )
    return DataPlan(
        mask_values=mapping,
        ignored=ignored,
        classes=classes,
        frequencies=tuple(freq),
        diameters=stats,
        scale=scale,
        crop=crop,
        min_crop=min_crop,
        vflip=vflip,
        rot90=rot90,
        mode=mode,
        inference_mode=mode_inf,
        tile=tile,
        loss=loss,
        mean=mean,
        std=std,
        why=why,
    )


def _percentiles(values: Sequence[float]) -> tuple[float, float, float, int]:
    ordered = sorted(values)

    def at(q: float) -> float:  # linear interpolation between closest ranks (numpy's default)
        pos = q * (len(ordered) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return at(0.1), at(0.5), at(0.9), len(ordered)


# --- stage 2: the budget -----------------------------------------------------------------------


def steps_per_epoch(train_count: int, batch: int) -> int:
    """Optimizer steps per epoch: full batches only (the loader drops the last partial one), at least one."""
    return train_count // batch if train_count > batch else 1


def batch_sizes(train_count: int, device: str) -> list[int]:
    """Batch sizes to try, largest first: :data:`BATCHES_CUDA` or :data:`BATCHES_CPU`, at most a quarter of the data.

    Example:
        >>> batch_sizes(531, "cpu"), batch_sizes(20, "cpu"), batch_sizes(3, "cpu")
        ([8, 4], [4], [2])
    """
    allowed = [b for b in (BATCHES_CUDA if device == "cuda" else BATCHES_CPU) if b <= max(2, train_count // 4)]
    return allowed or [max(1, min(2, train_count))]


def first_candidate(fp: Fingerprint, data: DataPlan, device: str = "cpu") -> Candidate:
    """The candidate timed first: the smallest step of the :func:`ladder` (the quickest to time).

    Larger steps are then estimated from it (step time in proportion to the pixels of a step,
    which overestimates a GPU's larger steps, never underestimates them) until the chosen one is
    timed itself.
    """
    return ladder(data.crop, data.min_crop, batch_sizes(len(fp.train_sizes), device))[-1]


def ladder(crop: int, min_crop: int, batches: Sequence[int], encoder: str = "resnet18") -> list[Candidate]:
    """Candidates from the largest step to the smallest: crops ``crop`` down to ``min_crop`` by 32, each batch.

    Ordered by pixels per step, larger first; at equal pixels the larger crop first.
    """
    crops = list(range(crop, min_crop - 1, -STRIDE)) or [crop]
    out = [Candidate(encoder, c, b) for c in crops for b in batches]
    return sorted(out, key=lambda k: (-k.pixels, -k.crop))


def estimate_timing(candidate: Candidate, measured: Mapping[Candidate, Timing]) -> Timing:
    """``measured[candidate]``, else a figure scaled from the nearest measured candidate.

    Step time scales with the pixels of a step and :data:`ENCODER_COST`; loading with the batch;
    forward and checkpoint costs with the encoder. Estimates are marked ``measured=False``.

    Raises:
        ValueError: nothing measured.
    """
    if candidate in measured:
        return measured[candidate]
    if not measured:
        raise ValueError("no candidate was timed; time at least one before planning")
    same = [k for k in measured if k.encoder == candidate.encoder]
    pool = same or list(measured)
    ref = min(pool, key=lambda k: (abs(math.log(k.pixels / candidate.pixels)), -k.pixels))
    t = measured[ref]
    step_ratio = ENCODER_COST.get(candidate.encoder, (1.0, 1.0))[0] / ENCODER_COST.get(ref.encoder, (1.0, 1.0))[0]
    size_ratio = ENCODER_COST.get(candidate.encoder, (1.0, 1.0))[1] / ENCODER_COST.get(ref.encoder, (1.0, 1.0))[1]
    return replace(
        t,
        step_s=t.step_s * candidate.pixels / ref.pixels * step_ratio,
        data_s=t.data_s * candidate.batch / ref.batch,
        forward_px_s=t.forward_px_s * step_ratio,
        checkpoint_s=t.checkpoint_s * size_ratio,
        measured=False,
    )


def val_pixels(
    sizes: Sequence[tuple[int, int]],
    batch: int,
    *,
    scale: float = 1.0,
    flips: int = 0,
    mode: str = "whole",
    tile: int | None = None,
    overlap: float = 0.25,
) -> float:
    """Input pixels the network sees in one validation over images of ``sizes`` (in loader order).

    A plain pass (whole image, no flip, scale 1) runs each batch padded to its largest image (to
    the stride); otherwise each image runs on its own, rescaled and padded to the stride, or as
    sliding-window tiles, once plus once per flip.
    """
    from segdet.segmentation.inference import tile_starts

    def pad(n: float) -> int:
        return int(math.ceil(n / STRIDE) * STRIDE)

    if mode == "whole" and not flips and scale == 1.0:
        total = 0.0
        for start in range(0, len(sizes), batch):
            chunk = sizes[start : start + batch]
            total += len(chunk) * pad(max(h for h, _ in chunk)) * pad(max(w for _, w in chunk))
        return total
    total = 0.0
    for h, w in sizes:
        sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
        if mode == "slide" and tile is not None and (tile < sh or tile < sw):
            th, tw = min(tile, sh), min(tile, sw)
            total += len(tile_starts(sh, th, overlap)) * len(tile_starts(sw, tw, overlap)) * pad(th) * pad(tw)
        else:
            total += pad(sh) * pad(sw)
    return total * (1 + flips)


def fit_epochs(
    budget_s: float, startup_s: float, epoch_s: float, val_s: float, val_share: float = VAL_SHARE
) -> tuple[int, int | None, float, bool]:
    """The most epochs, and the smallest validation interval, that fit the budget.

    A run of ``E`` epochs validated every ``k`` (and after the last) takes
    ``startup_s + PROCESS_S + E * epoch_s + ceil(E / k) * val_s``. ``E`` is the largest value within
    ``(1 - MARGIN) * budget_s`` for the chosen ``k``; ``k`` is the smallest for which the
    validations take at most ``val_share * budget_s``, or ``E`` (the last epoch only). When one
    validation alone takes more than ``val_share * budget_s``, the run is not validated at all
    (``k = None``; ``segdet eval`` scores it afterwards) and every second goes to training.

    Returns:
        ``(epochs, interval, predicted seconds, fits)``; ``fits`` is False when one epoch (and
        one validation, if any) already exceeds the budget (then ``(1, interval, ...)``).

    Example:
        >>> fit_epochs(600, 10, 30, 20)[:2]
        (14, 3)
        >>> fit_epochs(300, 10, 30, 70)[:2]
        (8, None)
    """
    avail = budget_s * (1.0 - MARGIN) - startup_s - PROCESS_S

    def cost(epochs: int, k: int | None) -> float:
        return epochs * epoch_s + (0.0 if k is None else math.ceil(epochs / k) * val_s)

    if val_s > val_share * budget_s:  # one validation costs more than its share: none during training
        epochs = max(1, int(avail // max(epoch_s, 1e-9)))
        return epochs, None, startup_s + PROCESS_S + cost(epochs, None), cost(1, None) <= avail

    if cost(1, 1) > avail:
        return 1, 1, startup_s + PROCESS_S + cost(1, 1), False

    def most(k: int) -> int:  # the largest E with cost(E, k) <= avail (cost grows with E)
        lo, hi = 1, max(1, int(avail // max(epoch_s, 1e-9)))
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if cost(mid, k) <= avail else (lo, mid - 1)
        return lo

    k = 1
    while True:
        epochs = most(k)
        if k >= epochs:  # validated after the last epoch only: the most epochs one validation leaves room for
            epochs = most(max(epochs, int(avail // max(epoch_s, 1e-9))))
            return epochs, epochs, startup_s + PROCESS_S + cost(epochs, epochs), True
        if math.ceil(epochs / k) * val_s <= val_share * budget_s:
            return epochs, k, startup_s + PROCESS_S + cost(epochs, k), True
        k += 1


def plan_budget(
    fp: Fingerprint,
    data: DataPlan,
    measured: Mapping[Candidate, Timing],
    budget_s: float,
    *,
    device: str = "cpu",
    only_measured: bool = False,
) -> Plan:
    """The budget's choices for ``data`` from the ``measured`` timings (estimates for the rest); pure.

    The candidate is the first of :func:`ladder` (largest step first) whose run holds at least
    :data:`TARGET_STEPS` optimizer steps; when none does, the one with the most steps, and at
    equal steps (whole epochs) the largest step; when not even one epoch fits, the quickest.
    resnet34 replaces resnet18 when it still gets :data:`DEEP_STEPS`. With ``only_measured``
    only measured candidates compete.
    """
    n_train = len(fp.train_sizes)
    batches = batch_sizes(n_train, device)

    def evaluate(candidate: Candidate) -> tuple[Timing, int, float, float, tuple[int, int, float, bool]]:
        t = estimate_timing(candidate, measured)
        spe = steps_per_epoch(n_train, candidate.batch)
        epoch_s = spe * t.step_cost + t.checkpoint_s
        val_s = _val_seconds(fp, data, t, candidate.batch, flips=0)
        return t, spe, epoch_s, val_s, fit_epochs(budget_s, t.startup_s, epoch_s, val_s)

    pool = ladder(data.crop, data.min_crop, batches)
    if only_measured:
        pool = [k for k in pool if k in measured] or sorted(measured, key=lambda k: -k.pixels)
    steps_of, total_of = {}, {}
    for candidate in pool:
        _, spe, _, _, (epochs, _k, total_of[candidate], fits) = evaluate(candidate)
        steps_of[candidate] = epochs * spe if fits else 0
        if steps_of[candidate] >= TARGET_STEPS:
            chosen = candidate
            break
    else:  # none reaches the target: the most steps, at equal steps the most pixels per step
        fitting = [k for k in pool if steps_of[k]]
        if fitting:
            chosen = max(fitting, key=lambda k: (steps_of[k], k.pixels, k.crop))
        else:  # not even one epoch fits: the quickest run
            chosen = min(pool, key=lambda k: (round(total_of[k], 6), k.pixels))
    deep = replace(chosen, encoder="resnet34")
    if not only_measured or deep in measured:
        _, spe, _, _, (epochs, *_rest) = evaluate(deep)
        if epochs * spe >= DEEP_STEPS:
            chosen = deep
    t, spe, epoch_s, val_s, (epochs, interval, total, fits) = evaluate(chosen)
    plain_val_s = val_s

    why = {**FIXED_WHY, **data.why}
    why["train.channels_last"] = (
        "NHWC memory format: faster convolutions on recent GPUs" if device == "cuda" else "off: no gain on a CPU"
    )
    flip: tuple[str, ...] = ()
    options = [("h", "v"), ("h",)] if data.vflip else [("h",)]
    costs = [_val_seconds(fp, data, t, chosen.batch, flips=len(f)) for f in options]
    allowed = max(TTA_SHARE * budget_s, (1.0 + TTA_EXTRA) * plain_val_s)
    for flips, tta_s in zip(options, costs):
        if tta_s <= allowed:
            flip, val_s = flips, tta_s
            epochs, interval, total, fits = fit_epochs(budget_s, t.startup_s, epoch_s, val_s)
            why["inference.flip"] = f"flip TTA: a validation with {1 + len(flips)} passes takes {_s(tta_s)} s, <= " + (
                f"{TTA_SHARE:.0%} of the {budget_s / 60:g} min budget"
                if tta_s <= TTA_SHARE * budget_s
                else f"{1 + TTA_EXTRA:g}x the {_s(plain_val_s)} s of one plain pass (which pads every batch "
                "to its largest image; TTA runs each image at its own size)"
            )
            break
    else:
        why["inference.flip"] = (
            f"no flip TTA: {1 + len(options[-1])} passes would make a validation {_s(costs[-1])} s "
            f"(> {TTA_SHARE:.0%} of the {budget_s / 60:g} min budget and > {1 + TTA_EXTRA:g}x the "
            f"{_s(plain_val_s)} s of one plain pass)"
        )

    steps = epochs * spe
    source = "measured" if t.measured else "estimated"
    why["train.epochs"] = (
        f"{t.step_cost:.2f} s/step ({source}, {chosen}) x {spe} steps/epoch + {t.checkpoint_s:.1f} s checkpoint"
        + (
            " + no validation"
            if interval is None
            else f" + {_s(val_s)} s validation every {interval} epoch{'s' if interval > 1 else ''} (and after the last)"
        )
        + f" + {_s(t.startup_s + PROCESS_S)} s start and end = {total / 60:.1f} min"
        + (
            f" of the {budget_s / 60:g} min budget ({MARGIN:.0%} kept spare)"
            if fits
            else f": MORE than the {budget_s / 60:g} min budget; raise --minutes"
        )
    )
    if interval is None:
        why["train.val_interval"] = (
            f"none: one full-resolution validation takes {_s(val_s)} s, more than {VAL_SHARE:.0%} of the budget, "
            "so it all goes to training; best.pt is the last weights, score them with segdet eval"
        )
    elif epochs == 1:
        why["train.val_interval"] = f"one epoch, validated after it ({_s(val_s)} s at full resolution)"
    elif interval < epochs:
        why["train.val_interval"] = (
            f"a full-resolution validation takes {_s(val_s)} s; every {interval} epoch{'s' if interval > 1 else ''} "
            f"keeps validation within {VAL_SHARE:.0%} of the budget"
        )
    else:
        why["train.val_interval"] = (
            f"a full-resolution validation takes {_s(val_s)} s: only after the last epoch, to spend the budget "
            "on training"
        )
    enough = (
        f"the largest step that still gets >= {TARGET_STEPS}"
        if steps >= TARGET_STEPS
        else f"< {TARGET_STEPS}: the most steps any allowed step gets (crop >= {data.min_crop}: {CONTEXT}x the "
        f"90th-percentile object, {MIN_CROP} at least; batch >= {min(batches)}), the largest step among those"
    )
    native = why["augment.train.RandomCrop"]
    why["augment.train.RandomCrop"] = (
        f"{chosen.crop}: {native}"
        if chosen.crop == data.crop
        else f"{chosen.crop}, shrunk from {data.crop} ({native}) for the budget: {steps} steps, {enough}"
    )
    why["data.batch_size"] = f"{chosen.batch} crops of {chosen.crop}: {steps} optimizer steps in the budget, {enough}"
    why["model.encoder"] = (
        f"resnet34: {steps} steps >= {DEEP_STEPS} pay for the deeper encoder"
        if chosen.encoder == "resnet34"
        else f"resnet18: {steps} steps < {DEEP_STEPS}, a deeper encoder would not converge in the budget"
    )
    if steps >= EMA_MIN_STEPS:
        ema = round(min(0.9999, max(0.99, 1.0 - 10.0 / steps)), 4)
        why["train.ema"] = (
            f"{steps} steps: averaging the last ~{1 / (1 - ema):.0f} steps' weights (a tenth of the run) "
            "smooths the noise of small batches"
        )
    else:
        ema = None
        why["train.ema"] = f"off: {steps} steps (< {EMA_MIN_STEPS}) are too few for an average of past weights to help"
    train_px = sum(h * w for h, w in fp.train_sizes) * data.scale**2
    passes = steps * chosen.pixels / max(train_px, 1.0)
    if passes >= CUTMIX_PASSES:
        mix = [{"CutMix": {"p": 0.5}}]
        why["augment.mix"] = (
            f"CutMix on half the samples: every training pixel is seen ~{passes:.0f} times (>= {CUTMIX_PASSES:.0f})"
        )
    else:
        mix = []
        why["augment.mix"] = (
            f"no CutMix: every training pixel is seen ~{passes:.1f} times (< {CUTMIX_PASSES:.0f}); "
            "the run underfits rather than overfits"
        )
    warmup_steps = min(0.2 * steps, max(0.05 * steps, 20.0))
    warmup = round(max(warmup_steps / spe, 0.001), 3)
    why["schedule.warmup_epochs"] = (
        f"{warmup_steps:.0f} steps of linear warmup (5% of the run, at least 20 steps or a fifth of it), then cosine"
    )
    return Plan(
        data=data,
        candidate=chosen,
        timing=t,
        epochs=epochs,
        val_interval=interval,
        steps_per_epoch=spe,
        epoch_s=epoch_s,
        val_s=val_s,
        total_s=total,
        budget_s=budget_s,
        fits=fits,
        flip=flip,
        ema=ema,
        mix=mix,
        warmup_epochs=warmup,
        why=why,
    )


def _s(seconds: float) -> str:
    """Seconds for a reason: one decimal under 10 s."""
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"


def _val_seconds(fp: Fingerprint, data: DataPlan, t: Timing, batch: int, flips: int) -> float:
    px = val_pixels(fp.val_sizes, batch, scale=data.scale, flips=flips, mode=data.inference_mode, tile=data.tile)
    reading = len(fp.val_sizes) * fp.read_s if t.device == "cpu" else 0.0
    return px * t.forward_px_s + reading
