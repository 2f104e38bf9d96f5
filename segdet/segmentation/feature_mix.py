"""Feature-level mixing for segmentation (``augment.feature_mix``): Manifold Mixup and PatchUp.

Config::

    augment:
      feature_mix:
        - ManifoldMixup: {p: 0.5, alpha: 2.0, stages: [0, 1, 2]}
        - PatchUp: {p: 0.5, block: 7, gamma: 0.75, mode: hard, alpha: 2.0, stages: [1, 2, 3]}

Per training batch the steps are tried in order and the first whose coin (``p``) comes up mixes
the batch (at most one feature mix a batch): a stage ``k`` is drawn from its ``stages``, and
every sample ``i`` is mixed with sample ``index[i]`` of a random permutation of the batch.

- **Manifold Mixup** (Verma et al., 2019): ``h = lam * h_i + (1 - lam) * h_index[i]``,
  ``lam ~ Beta(alpha, alpha)``; the target of every pixel is ``lam / 1 - lam`` of the two targets.
- **PatchUp** (Faramarzi et al., 2020): a DropBlock-style block mask on the feature map of stage
  ``k`` (block centres drawn with probability ``gamma_adj = gamma * h w / (block^2 (h - block + 1)
  (w - block + 1))``, each grown to a ``block x block`` square, one mask for the batch as in the
  paper). ``hard``: the features inside the blocks are those of the partner, and so is the target
  of the pixels they cover (a hard mask stays hard); ``soft``: inside the blocks the features and
  the targets are blended by ``lam ~ Beta(alpha, alpha)``, outside they are the sample's own.
  The paper draws one mask per channel; segdet shares it across the channels, so that each cell
  is either altered or not and maps to the pixels it covers exactly (with one mask per channel a
  pixel would be partly altered, and the shallower skip features could not follow the mask).

Stage ``k`` is the ``k``-th feature of the smp encoder (0 = its input, the normalised image;
``1..depth`` at strides 2, 4, 8, ...). An encoder-decoder reads every stage, so the state of the
network after stage ``k`` is all the features ``0..k``: the mix is applied to each of them (a
shallower feature with the mask repeated to its resolution) and the deeper stages are computed
from the mixed one. A cell of stage ``k`` covers ``stride x stride`` pixels of the padded input;
the targets are mixed per pixel with the weight of the cell covering it
(:mod:`._feature_targets`), so the pixel targets are exact.

The hooks are forward hooks on the encoder of the model (no change to the model class); they are
registered only for the forward pass inside the training loss and removed after it, so
validation, ``segdet eval``, ``segdet predict``, export and the EMA copy see the plain model. The
stage modules are found once per encoder by a probe forward pass that finds, for each feature
the encoder returns, the module that produced that very tensor (called once a pass); an encoder
whose features are not module outputs (e.g. reshaped transformer tokens) has no hookable stage
there, and asking for it is an error naming the stages that are. Under autocast the features are
mixed in their own dtype; under DDP each process mixes its own batch (the wrapped module's
encoder is hooked).

Randomness: a numpy generator seeded from ``torch.initial_seed()`` (which the trainer sets to the
epoch's seed at the start of every epoch) and the process rank, re-seeded when that seed
changes, so a resumed run (restarting at an epoch boundary) draws the same mixes.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segdet._suggest import did_you_mean
from segdet.config.steps import parse_step

from ._feature_targets import copy_targets, mix_targets, pixel_weights

__all__ = [
    "FEATURE_MIXERS",
    "FeatureMixing",
    "ManifoldMixup",
    "PatchUp",
    "build_feature_mixing",
    "encoder_of",
    "encoder_stages",
    "patchup_mask",
]

KEY = "augment.feature_mix"


def _unit(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {name} = {value!r} must be a number in [0, 1]")
    return float(value)


def _positive(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{where}: {name} = {value!r} must be a positive number")
    return float(value)


def _stages(value: Any, where: str) -> tuple[int, ...]:
    ints = isinstance(value, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    if not ints or not value or min(value) < 0:
        raise ValueError(f"{where}: stages = {value!r} must be a non-empty list of encoder stages >= 0, e.g. [0, 1, 2]")
    return tuple(sorted(set(value)))


@dataclass(frozen=True)
class ManifoldMixup:
    """Options of Manifold Mixup: ``p`` (per batch), ``alpha`` (Beta), ``stages`` to draw from.

    Example:
        >>> ManifoldMixup(p=1.0, alpha=2.0, stages=(0, 1, 2)).stages
        (0, 1, 2)
    """

    p: float = 0.5
    alpha: float = 2.0
    stages: tuple[int, ...] = (0, 1, 2)
    where: str = field(default=KEY, repr=False, compare=False)

    def __post_init__(self) -> None:
        w = f"{self.where} ManifoldMixup"
        object.__setattr__(self, "p", _unit(self.p, "p", w))
        object.__setattr__(self, "alpha", _positive(self.alpha, "alpha", w))
        object.__setattr__(self, "stages", _stages(self.stages, w))


@dataclass(frozen=True)
class PatchUp:
    """Options of PatchUp: ``p``, ``block`` (odd side, cells), ``gamma``, ``mode`` (hard | soft), ``alpha``, ``stages``.

    Example:
        >>> PatchUp(block=5, gamma=0.5).mode
        'hard'
    """

    p: float = 0.5
    block: int = 7
    gamma: float = 0.75
    mode: str = "hard"
    alpha: float = 2.0
    stages: tuple[int, ...] = (1, 2, 3)
    where: str = field(default=KEY, repr=False, compare=False)

    def __post_init__(self) -> None:
        w = f"{self.where} PatchUp"
        object.__setattr__(self, "p", _unit(self.p, "p", w))
        object.__setattr__(self, "gamma", _unit(self.gamma, "gamma", w))
        object.__setattr__(self, "alpha", _positive(self.alpha, "alpha", w))
        object.__setattr__(self, "stages", _stages(self.stages, w))
        if isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1 or self.block % 2 == 0:
            raise ValueError(
                f"{w}: block = {self.block!r} must be an odd number of cells >= 1 (a block centred on its cell), e.g. 7"
            )
        if self.mode not in ("hard", "soft"):
            hint = did_you_mean(str(self.mode), ("hard", "soft"))
            raise ValueError(f"{w}: mode = {self.mode!r} is not one of hard, soft{hint}")


#: names usable in ``augment.feature_mix``
FEATURE_MIXERS: dict[str, type] = {"ManifoldMixup": ManifoldMixup, "PatchUp": PatchUp}


def patchup_mask(size: tuple[int, int], block: int, gamma: float, rng: np.random.Generator) -> np.ndarray:
    """(h, w) bool: the cells PatchUp alters, block centres drawn with ``gamma_adj`` and grown to ``block x block``.

    ``gamma_adj = gamma * h * w / (block^2 * (h - block + 1) * (w - block + 1))`` (DropBlock's
    correction, as PatchUp uses it; the factors ``h - block + 1`` are at least 1), capped at 1.
    """
    h, w = size
    adj = min(1.0, gamma * h * w / (block**2 * max(h - block + 1, 1) * max(w - block + 1, 1)))
    centres = torch.from_numpy(rng.random((h, w)) < adj).float()[None, None]
    grown = F.max_pool2d(centres, block, stride=1, padding=block // 2)
    return grown[0, 0].bool().numpy()


def build_feature_mixing(steps: Any, mode: str = "multiclass", encoder_name: str = "") -> FeatureMixing | None:
    """The :class:`FeatureMixing` of an ``augment.feature_mix`` list, or ``None`` when it is empty.

    Raises:
        ValueError: a malformed or unknown step or option (with the closest names), or a mix the
            ``data.mode`` cannot take (multilabel: only hard PatchUp, which copies the 0/1 channels).
    """
    if not steps:
        return None
    if isinstance(steps, (str, Mapping)) or not isinstance(steps, (list, tuple)):
        raise ValueError(f"{KEY} must be a list of {{Name: {{options}}}} steps, got {steps!r}")
    mixers = []
    for i, step in enumerate(steps):
        where = f"{KEY}[{i}]"
        name, args = parse_step(step, where, "{ManifoldMixup: {p: 0.5, alpha: 2.0, stages: [0, 1, 2]}}")
        if name not in FEATURE_MIXERS:
            raise ValueError(
                f"{where}: unknown feature mixer {name!r}{did_you_mean(name, FEATURE_MIXERS)}; "
                f"available: {', '.join(FEATURE_MIXERS)}"
            )
        cls = FEATURE_MIXERS[name]
        params = [p for p in inspect.signature(cls).parameters if p != "where"]
        unknown = [a for a in args if a not in params]
        if unknown:
            raise ValueError(
                f"{where}: {name} has no option {unknown[0]!r}{did_you_mean(str(unknown[0]), params)}; "
                f"its options are {', '.join(params)}"
            )
        if isinstance(args.get("stages"), list):
            args["stages"] = tuple(args["stages"])
        mixer = cls(**args, where=where)
        if mode == "multilabel" and not (isinstance(mixer, PatchUp) and mixer.mode == "hard"):
            raise ValueError(
                f"{where}: {name}{' (soft)' if isinstance(mixer, PatchUp) else ''} blends the targets into class "
                "probabilities, which data.mode multilabel (one 0/1 channel per class) cannot take; use "
                "PatchUp with mode: hard, or remove the step"
            )
        mixers.append(mixer)
    return FeatureMixing(mixers, encoder_name)


def encoder_of(model: nn.Module) -> nn.Module:
    """The smp encoder inside a (possibly DDP-wrapped) :class:`~segdet.segmentation.model.SegmentationModel`.

    Raises:
        ValueError: the model has no ``net.encoder``.
    """
    inner = getattr(model, "module", model)
    encoder = getattr(getattr(inner, "net", inner), "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"{KEY} hooks the encoder of an smp model, and the model ({type(inner).__name__}) has none; "
            f"remove {KEY} or use an smp architecture"
        )
    return encoder


def encoder_stages(encoder: nn.Module, probe_size: int = 64) -> dict[int, nn.Module]:
    """The module whose output is each feature ``k >= 1`` of ``encoder``, found by probe passes.

    The probe runs a (1, C, probe_size, probe_size) zero image in eval mode under ``no_grad`` with a
    forward hook on every submodule. A module *produces* a tensor when it returns it and did not
    merely pass it through (it is a new tensor, or its input changed in place, as an in-place
    ReLU does). Feature ``k`` is hookable when the last module to produce it (the outermost: its
    hook fires last) was called once in the pass, and a second pass with that module's output
    shifted shows the encoder returning the shifted tensor as feature ``k`` and computing the next
    feature from it. Stage 0, the encoder's input, is always hookable (by a pre-hook on the
    encoder) and is not listed.
    """
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    probe = torch.zeros(1, int(getattr(encoder, "_in_channels", 3)), probe_size, probe_size, device=device, dtype=dtype)
    produced: list[tuple[str, nn.Module, Any]] = []
    calls: dict[str, int] = {}
    versions: dict[str, list[int]] = {}

    def pre(name):
        def record(module, args):
            versions.setdefault(name, []).append(args[0]._version if args and isinstance(args[0], torch.Tensor) else -1)

        return record

    def post(name):
        def record(module, args, output):
            calls[name] = calls.get(name, 0) + 1
            before = versions[name].pop()
            passed = bool(args) and output is args[0] and output._version == before
            if isinstance(output, torch.Tensor) and not passed:
                produced.append((name, module, output))

        return record

    modules = [(name, m) for name, m in encoder.named_modules() if name]
    was_training = encoder.training
    try:
        encoder.eval()
        handles = [m.register_forward_pre_hook(pre(name)) for name, m in modules]
        handles += [m.register_forward_hook(post(name)) for name, m in modules]
        try:
            with torch.no_grad():
                features = list(encoder(probe))
        finally:
            for h in handles:
                h.remove()
        stages: dict[int, nn.Module] = {}
        for k in range(1, len(features)):
            owners = [(name, m) for name, m, out in produced if out is features[k]]
            if owners and calls[owners[-1][0]] == 1 and _shift_reaches(encoder, probe, owners[-1][1], k, features):
                stages[k] = owners[-1][1]
        return stages
    finally:
        encoder.train(was_training)


def _shift_reaches(encoder: nn.Module, probe: torch.Tensor, module: nn.Module, k: int, features: list) -> bool:
    """Whether shifting ``module``'s output makes it feature ``k`` of the encoder and changes feature ``k + 1``."""
    shifted: list[torch.Tensor] = []

    def shift(mod, args, output):
        shifted.append(output + 1.0)
        return shifted[-1]

    handle = module.register_forward_hook(shift)
    try:
        with torch.no_grad():
            again = list(encoder(probe))
    finally:
        handle.remove()
    if len(shifted) != 1 or again[k] is not shifted[0]:
        return False
    return k + 1 >= len(again) or not torch.equal(again[k + 1], features[k + 1])


class FeatureMixing:
    """Runs a training forward pass with one of its mixers hooked into the encoder, and mixes the targets.

    Args:
        mixers: :class:`ManifoldMixup` / :class:`PatchUp` options, tried in order per batch.

    Example:
        >>> fm = FeatureMixing([ManifoldMixup(p=1.0, stages=(2,))])
        >>> logits, target = fm.forward(model, images, mask, ignore_index=255)  # doctest: +SKIP
    """

    def __init__(self, mixers: Sequence[ManifoldMixup | PatchUp], encoder_name: str = "") -> None:
        self.mixers = list(mixers)
        self.encoder_name = encoder_name
        self._seed: int | None = None
        self._rng: np.random.Generator | None = None
        self._stages: tuple[nn.Module, dict[int, nn.Module]] | None = None

    def generator(self) -> np.random.Generator:
        """The generator of the current epoch (module docstring), re-seeded when the epoch's seed changes."""
        seed = torch.initial_seed()
        if self._rng is None or seed != self._seed:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            self._seed, self._rng = seed, np.random.default_rng([seed % 2**63, rank, 0x5EED])
        return self._rng

    def stages_of(self, encoder: nn.Module) -> dict[int, nn.Module]:
        """:func:`encoder_stages` of ``encoder``, probed once."""
        if self._stages is None or self._stages[0] is not encoder:
            self._stages = (encoder, encoder_stages(encoder))
        return self._stages[1]

    def check_stages(self, encoder: nn.Module) -> None:
        """Stop on a stage of a mixer that ``encoder`` does not expose as a hookable module output.

        Raises:
            ValueError: naming the step, the stage, the encoder and the stages that are hookable.
        """
        hookable = [0, *sorted(self.stages_of(encoder))]
        which = f"model.encoder {self.encoder_name}" if self.encoder_name else type(encoder).__name__
        for mixer in self.mixers:
            missing = [s for s in mixer.stages if s not in hookable]
            if missing:
                raise ValueError(
                    f"{mixer.where}: {type(mixer).__name__} stage {missing[0]} is not a hookable stage of {which}; "
                    f"its hookable stages are {hookable} (0 = the input; the others: the features that are a "
                    "module's output); set stages to some of them"
                )

    def draw(self, batch: int) -> tuple[ManifoldMixup | PatchUp, int, np.ndarray, float] | None:
        """The mix of one batch: (mixer, stage, permutation, lam), or ``None`` (no coin came up, or one sample)."""
        rng = self.generator()
        if batch < 2:
            return None
        for mixer in self.mixers:
            if rng.random() < mixer.p:
                stage = int(rng.choice(mixer.stages))
                return mixer, stage, rng.permutation(batch), float(rng.beta(mixer.alpha, mixer.alpha))
        return None

    def forward(
        self,
        model: nn.Module,
        images: torch.Tensor,
        target: torch.Tensor,
        ignore_index: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of ``model(images)`` with the batch's feature mix, and the targets mixed to match.

        Args:
            model: a (DDP-wrapped) SegmentationModel.
            images: (B, C, H, W) batch.
            target: the batch's ``mask`` (hard (B, H, W), soft (B, K, H, W) or multilabel channels).
            ignore_index: the unlabelled value of a hard mask; its class count is the logits'
                channels (2 for one binary channel).

        Returns:
            (logits, target); both as the plain model gives them when the batch is not mixed.
        """
        plan = self.draw(images.shape[0])
        if plan is None:
            return model(images), target
        mixer, stage, perm, lam = plan
        encoder = encoder_of(model)
        self.check_stages(encoder)
        hooks = _StageHooks(mixer, stage, torch.as_tensor(perm, device=images.device), lam, self.generator())
        with hooks.installed(encoder, self.stages_of(encoder)):
            logits = model(images)
        return logits, hooks.mixed_target(target, max(int(logits.shape[1]), 2), ignore_index)


class _StageHooks:
    """The hooks of one mixed forward pass: mix stage ``k`` (and the shallower features), remember the weights."""

    def __init__(
        self, mixer: ManifoldMixup | PatchUp, stage: int, index: torch.Tensor, lam: float, rng: np.random.Generator
    ) -> None:
        self.mixer, self.stage, self.index, self.lam, self.rng = mixer, stage, index, lam, rng
        self.input_size: tuple[int, int] | None = None
        self.cells: torch.Tensor | None = None  # (h, w) bool, PatchUp's altered cells at the stage
        self.stage_size: tuple[int, int] | None = None

    # --- mixing one feature map -----------------------------------------------------------------
    def _region(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """PatchUp's altered cells at a feature map of ``size`` (the stage's mask, repeated to finer maps)."""
        if self.cells is None:
            self.stage_size = size
            mask = patchup_mask(size, self.mixer.block, self.mixer.gamma, self.rng)
            self.cells = torch.from_numpy(mask).to(device)
        sh, sw = size[0] // self.stage_size[0], size[1] // self.stage_size[1]
        if (sh * self.stage_size[0], sw * self.stage_size[1]) != size:
            raise ValueError(
                f"{KEY}: a feature map of {size} is not a whole multiple of stage {self.stage}'s {self.stage_size}; "
                "PatchUp's mask cannot be repeated to it"
            )
        return self.cells.repeat_interleave(sh, 0).repeat_interleave(sw, 1)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, h, w) mixed with ``x[index]``: blended by lam (Manifold Mixup) or inside PatchUp's blocks."""
        partner = x[self.index]
        if isinstance(self.mixer, ManifoldMixup):
            return self.lam * x + (1.0 - self.lam) * partner
        region = self._region(tuple(x.shape[-2:]), x.device)
        inside = partner if self.mixer.mode == "hard" else self.lam * x + (1.0 - self.lam) * partner
        return torch.where(region, inside, x)

    # --- the hooks ------------------------------------------------------------------------------
    def _pre(self, module, args):
        x = args[0]
        self.input_size = tuple(x.shape[-2:])
        if self.stage == 0:
            return (self.mix(x), *args[1:])
        return None

    def _stage(self, module, args, output):
        return self.mix(output)

    def _features(self, module, args, features):
        """The shallower features ``0..k-1`` mixed too: the decoder reads them beside the deeper ones."""
        if self.stage == 0:
            return None
        out = list(features)
        b = self.index.shape[0]
        for j in range(self.stage):
            f = out[j]
            if isinstance(f, torch.Tensor) and f.dim() == 4 and f.shape[0] == b and f.numel():
                out[j] = self.mix(f)
        return out

    @contextlib.contextmanager
    def installed(self, encoder: nn.Module, stages: dict[int, nn.Module]) -> Iterator[None]:
        """Registers the hooks on ``encoder`` for the block and removes them on the way out (errors too)."""
        handles = [encoder.register_forward_pre_hook(self._pre)]
        try:
            if self.stage > 0:
                handles.append(stages[self.stage].register_forward_hook(self._stage))
            handles.append(encoder.register_forward_hook(self._features))
            yield
        finally:
            for h in handles:
                h.remove()

    # --- the targets ----------------------------------------------------------------------------
    def mixed_target(self, target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
        """The batch's targets mixed per pixel with the weights the features were mixed with."""
        if isinstance(self.mixer, ManifoldMixup):
            return mix_targets(target, self.index, self.lam, num_classes, ignore_index)
        if self.cells is None or self.input_size is None:
            raise RuntimeError(f"{KEY}: PatchUp's hook did not run at stage {self.stage}; the targets cannot be mixed")
        stride = (self.input_size[0] // self.stage_size[0], self.input_size[1] // self.stage_size[1])
        region = pixel_weights(self.cells, stride, tuple(target.shape[-2:]))
        if self.mixer.mode == "hard":
            return copy_targets(target, self.index, region)
        weights = torch.where(region, self.lam, 1.0).to(torch.float32)
        return mix_targets(target, self.index, weights, num_classes, ignore_index)
