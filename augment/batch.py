"""Batch-level CutMix and MixUp for segmentation, on the batch's device, without host sync.

The batch is ``images`` (B, C, H, W) and a target that is either a hard mask (B, H, W) of class
indices (integer; ``ignore_index`` allowed) or soft per-class probabilities (B, K, H, W)
float, where an all-zero vector means unlabelled (what ``losses/`` accepts). CutMix also copies
integer (B, K, H, W) targets, one 0/1 channel per class (multilabel), as they are. Sample ``i`` is
mixed with sample ``index[i]``, a random permutation (``pairing="permutation"``, which may pair a
sample with itself) or ``i - 1`` (``pairing="roll"``). Every random number comes from the
``torch.Generator`` passed in, drawn on the batch's device, and nothing reads a tensor value
back to the host (no ``.item()``, no ``nonzero``, no branch on data), so the calls queue
asynchronously on CUDA and a seeded generator reproduces them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ._torch_beta import sample_beta

__all__ = ["BatchMix", "batch_cutmix", "batch_mixup", "BatchCutMix", "BatchMixUp"]

_PAIRINGS = ("permutation", "roll")


class BatchMix(NamedTuple):
    """Result of a batch mixer.

    Attributes:
        images: (B, C, H, W) mixed images.
        target: the mixed target (see each mixer).
        lam: (B,) float32, the weight of sample ``i`` itself: for CutMix the exact fraction of
            its pixels kept, for MixUp its blend weight (1 where the mixer was not applied).
        index: (B,) long, the partner of each sample.
    """

    images: torch.Tensor
    target: torch.Tensor
    lam: torch.Tensor
    index: torch.Tensor


def _check(images, target, generator, name: str, label_channels: bool = False) -> tuple[int, int, int]:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: images must be a (B, C, H, W) tensor, got {shape}")
    b, _, h, w = images.shape
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name}: target must be a tensor (B, H, W) or (B, K, H, W), got {type(target).__name__}")
    hard = target.dim() == 3 and not target.is_floating_point()
    soft = target.dim() == 4 and (target.is_floating_point() or label_channels)
    if not (hard or soft) or target.shape[0] != b or tuple(target.shape[-2:]) != (h, w):
        channels = " (or integer per-class 0/1 channels)" if label_channels else ""
        hint = "" if label_channels or target.dim() != 4 else "; integer (B, K, H, W) channels mix with CutMix only"
        raise ValueError(
            f"{name}: target {tuple(target.shape)} {target.dtype} does not fit images {tuple(images.shape)}; "
            f"give class indices (B, H, W) = ({b}, {h}, {w}) as an integer tensor or soft "
            f"targets (B, K, H, W) as a float tensor{channels}{hint}"
        )
    if target.device != images.device:
        raise ValueError(f"{name}: images are on {images.device} but target is on {target.device}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name}: pass generator=torch.Generator(device=images.device).manual_seed(...), "
            f"got {type(generator).__name__}"
        )
    if generator.device.type != images.device.type or (
        images.device.type != "cpu" and generator.device.index not in (None, images.device.index)
    ):
        raise ValueError(
            f"{name}: the generator is on {generator.device} but the batch is on "
            f"{images.device}; create it with torch.Generator(device={str(images.device)!r})"
        )
    return b, h, w


def _check_options(name: str, p: float, alpha: float, pairing: str) -> None:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}: p must lie in [0, 1], got {p}")
    if not float(alpha) > 0:
        raise ValueError(f"{name}: alpha must be > 0, got {alpha}")
    if pairing not in _PAIRINGS:
        raise ValueError(f"{name}: pairing must be one of {_PAIRINGS}, got {pairing!r}")


def _pairs(b: int, pairing: str, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    if pairing == "roll":
        return (torch.arange(b, device=device) - 1) % b
    return torch.randperm(b, generator=generator, device=device)


def _draw(
    b: int,
    per_sample: bool,
    p: float,
    alpha: float,
    generator,
    device,
    uniforms: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random draws of a batch mixer: ``(lam, applied, u)``.

    ``lam`` is (B,) Beta(alpha, alpha) of ``dtype``, ``applied`` (B,) Bernoulli(p) and ``u``
    (B, uniforms) float64 U[0, 1); each is shared by the batch when not ``per_sample``. One
    kernel draws the Beta values and one all the uniforms.
    """
    n = b if per_sample else 1
    lam = sample_beta((n,), alpha, generator, device, dtype)
    u = torch.rand((n, uniforms + 1), generator=generator, device=device, dtype=torch.float64)
    return lam.expand(b), (u[:, 0] < p).expand(b), u[:, 1:].expand(b, uniforms)


def batch_cutmix(
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    generator: torch.Generator,
    alpha: float = 1.0,
    p: float = 1.0,
    per_sample: bool = True,
    pairing: str = "permutation",
) -> BatchMix:
    """Pastes a rectangle of ``images[index[i]]`` and its target onto sample ``i``.

    ``lam ~ Beta(alpha, alpha)``; the rectangle has ``round(H * sqrt(1 - lam))`` rows and
    ``round(W * sqrt(1 - lam))`` columns and its top-left corner is uniform over the positions
    that keep it inside the image (no clipping, so no bias towards small cuts at the borders).
    Pixels are copied exactly: a hard mask stays a hard mask (``ignore_index`` pixels included),
    soft targets and integer per-class channels (multilabel) are copied per pixel. The returned
    ``lam`` is the exact fraction of pixels that still show sample ``i``.

    Args:
        images: (B, C, H, W) any dtype.
        target: (B, H, W) integer, (B, K, H, W) float, or (B, K, H, W) integer 0/1 channels, on the
            images' device.
        generator: ``torch.Generator`` on the images' device.
        alpha: Beta parameter, > 0.
        p: probability that a sample is mixed (drawn per sample when ``per_sample``).
        per_sample: one ``lam``, rectangle and coin per sample; else one for the whole batch.
        pairing: ``"permutation"`` or ``"roll"``.

    Returns:
        :class:`BatchMix` with ``images`` and ``target`` of the input dtypes.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.rand(4, 3, 8, 12), torch.randint(0, 3, (4, 8, 12))
        >>> out = batch_cutmix(x, y, generator=g)
        >>> out.images.shape, out.target.dtype, out.lam.shape
        (torch.Size([4, 3, 8, 12]), torch.int64, torch.Size([4]))
    """
    _check_options("batch_cutmix", p, alpha, pairing)
    b, h, w = _check(images, target, generator, "batch_cutmix", label_channels=True)
    device = images.device
    index = _pairs(b, pairing, generator, device)
    lam, applied, u = _draw(b, per_sample, p, alpha, generator, device, uniforms=2, dtype=torch.float64)
    # Rows and columns side by side in (B, 2) float64 tensors: few kernels, all exact integers.
    dims = torch.arange(2, device=device, dtype=torch.float64) * (w - h) + h  # (h, w)
    side = torch.sqrt((1.0 - lam).clamp_min(0.0)) * applied
    cut = torch.round(side[:, None] * dims)  # (B, 2) rows, columns of the rectangle
    room = dims - cut
    start = torch.minimum(torch.floor(u * (room + 1)), room)
    offset = torch.arange(max(h, w), device=device, dtype=torch.float64) - start[..., None]  # (B, 2, L)
    inside = (offset >= 0) & (offset < cut[..., None])
    region = inside[:, 0, :h, None] & inside[:, 1, None, :w]  # (B, H, W)
    mixed = torch.where(region[:, None], images[index], images)
    if target.dim() == 3:
        mixed_target = torch.where(region, target[index], target)
    else:
        mixed_target = torch.where(region[:, None], target[index], target)
    kept = 1.0 - cut.prod(1) / float(h * w)
    return BatchMix(mixed, mixed_target, kept.to(torch.float32), index)


def _soft_from_hard(
    a: torch.Tensor, b: torch.Tensor, lam: torch.Tensor, num_classes: int, ignore_index: int | None, dtype: torch.dtype
) -> torch.Tensor:
    """(B, K, H, W) probabilities of two hard masks blended by ``lam`` (B,)."""

    def valid(m):  # an ignore_index outside [0, num_classes) needs no test of its own
        ok = (m >= 0) & (m < num_classes)
        return ok & (m != ignore_index) if ignore_index is not None and 0 <= ignore_index < num_classes else ok

    va, vb = valid(a), valid(b)
    lam = lam.to(dtype)[:, None, None]
    one = torch.ones((), dtype=dtype, device=a.device)
    # a sample with no weight in the blend (lam = 0 or 1: not mixed) lends no label to the other's holes
    wa = torch.where(vb, lam, one) * (va & (lam > 0))
    wb = torch.where(va, 1 - lam, one) * (vb & (lam < 1))
    out = torch.zeros((a.shape[0], num_classes) + tuple(a.shape[1:]), dtype=dtype, device=a.device)
    out.scatter_(1, torch.where(va, a, 0).long()[:, None], wa[:, None])
    out.scatter_add_(1, torch.where(vb, b, 0).long()[:, None], wb[:, None])
    return out


def batch_mixup(
    images: torch.Tensor,
    target: torch.Tensor,
    *,
    generator: torch.Generator,
    num_classes: int | None = None,
    ignore_index: int | None = 255,
    alpha: float = 1.0,
    p: float = 1.0,
    per_sample: bool = True,
    primary_dominant: bool = False,
    pairing: str = "permutation",
) -> BatchMix:
    """Blends sample ``i`` with ``index[i]``: ``lam * x_i + (1 - lam) * x_index[i]``.

    Images are blended in floating point (integer images become float32). The target becomes
    soft (B, K, H, W) probabilities, the same rule as the sample-level :func:`augment.mixup`:
    a pixel labelled in both samples gets ``lam * onehot_a + (1 - lam) * onehot_b``; a pixel
    unlabelled in one sample takes the other's label with weight 1 when the other is blended in
    (``0 < lam < 1``); otherwise (unlabelled in both, or in the one sample of an unmixed pair)
    the all-zero vector. For hard masks "unlabelled" is ``ignore_index`` or any value outside
    ``[0, num_classes)`` (checking would need a host sync); for soft targets it is an all-zero
    vector. A single-channel soft target (binary) is blended linearly.

    Args:
        images: (B, C, H, W).
        target: (B, H, W) integer (needs ``num_classes``) or (B, K, H, W) float.
        generator: ``torch.Generator`` on the images' device.
        num_classes: number of classes of a hard mask (ignored for soft targets).
        ignore_index: unlabelled value of hard masks.
        alpha: Beta parameter, > 0.
        p: probability that a sample is mixed (``lam = 1`` otherwise).
        per_sample: one ``lam`` and coin per sample; else one for the whole batch.
        primary_dominant: use ``max(lam, 1 - lam)``.
        pairing: ``"permutation"`` or ``"roll"``.

    Returns:
        :class:`BatchMix`; ``target`` is float32 (float64 stays float64).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.rand(4, 3, 8, 12), torch.randint(0, 3, (4, 8, 12))
        >>> out = batch_mixup(x, y, generator=g, num_classes=3)
        >>> tuple(out.target.shape), bool(torch.allclose(out.target.sum(1), torch.ones(4, 8, 12)))
        ((4, 3, 8, 12), True)
    """
    _check_options("batch_mixup", p, alpha, pairing)
    b, h, w = _check(images, target, generator, "batch_mixup")
    hard = target.dim() == 3
    if hard and (num_classes is None or int(num_classes) < 1):
        raise ValueError(
            f"batch_mixup: a hard (B, H, W) mask becomes per-class probabilities and "
            f"needs num_classes >= 1, got {num_classes}"
        )
    device = images.device
    index = _pairs(b, pairing, generator, device)
    lam, applied, _ = _draw(b, per_sample, p, alpha, generator, device)
    if primary_dominant:
        lam = torch.maximum(lam, 1 - lam)
    lam = torch.where(applied, lam, torch.ones_like(lam))
    x = images if images.is_floating_point() else images.float()
    mixed = torch.lerp(x[index], x, lam.to(x.dtype)[:, None, None, None])
    if hard:
        mixed_target = _soft_from_hard(target, target[index], lam, int(num_classes), ignore_index, torch.float32)
    else:
        t = target if target.dtype == torch.float64 else target.float()
        lt = lam.to(t.dtype)[:, None, None, None]
        t2 = t[index]
        both = lt * t + (1 - lt) * t2
        if t.shape[1] == 1:
            mixed_target = both
        else:
            va = t.sum(1, keepdim=True) > 0
            vb = t2.sum(1, keepdim=True) > 0
            la, lb = lt > 0, lt < 1  # a sample with no weight (not mixed) lends no label to the other's holes
            mixed_target = torch.where(va & vb, both, torch.where(va & la, t, torch.where(vb & lb, t2, 0 * t)))
    return BatchMix(mixed, mixed_target, lam.contiguous(), index)


class BatchCutMix:
    """Options of :func:`batch_cutmix`; call it as ``mixer(images, target, generator=g)``.

    Example:
        >>> mixer = BatchCutMix(p=0.5, alpha=1.0)
        >>> g = torch.Generator().manual_seed(0)
        >>> out = mixer(torch.rand(2, 3, 4, 6), torch.zeros(2, 4, 6, dtype=torch.long), generator=g)
        >>> out.images.shape
        torch.Size([2, 3, 4, 6])
    """

    def __init__(self, p: float = 0.5, alpha: float = 1.0, per_sample: bool = True, pairing: str = "permutation"):
        _check_options("BatchCutMix", p, alpha, pairing)
        self.p, self.alpha, self.per_sample, self.pairing = float(p), float(alpha), bool(per_sample), pairing

    def __call__(self, images: torch.Tensor, target: torch.Tensor, *, generator: torch.Generator) -> BatchMix:
        """Runs :func:`batch_cutmix` with these options.

        Args:
            images: (B, C, H, W) any dtype.
            target: (B, H, W) integer or (B, K, H, W) float, on the images' device.
            generator: ``torch.Generator`` on the images' device.

        Returns:
            :class:`BatchMix` with ``images`` and ``target`` of the input dtypes.
        """
        return batch_cutmix(
            images,
            target,
            generator=generator,
            alpha=self.alpha,
            p=self.p,
            per_sample=self.per_sample,
            pairing=self.pairing,
        )

    def __repr__(self) -> str:
        return f"BatchCutMix(p={self.p}, alpha={self.alpha}, per_sample={self.per_sample}, pairing={self.pairing!r})"


class BatchMixUp:
    """Options of :func:`batch_mixup`; call it as ``mixer(images, target, generator=g)``.

    Example:
        >>> mixer = BatchMixUp(p=1.0, num_classes=3)
        >>> g = torch.Generator().manual_seed(0)
        >>> out = mixer(torch.rand(2, 3, 4, 6), torch.zeros(2, 4, 6, dtype=torch.long), generator=g)
        >>> out.target.shape
        torch.Size([2, 3, 4, 6])
    """

    def __init__(
        self,
        p: float = 0.5,
        alpha: float = 1.0,
        num_classes: int | None = None,
        ignore_index: int | None = 255,
        per_sample: bool = True,
        primary_dominant: bool = False,
        pairing: str = "permutation",
    ):
        _check_options("BatchMixUp", p, alpha, pairing)
        self.p, self.alpha, self.per_sample, self.pairing = float(p), float(alpha), bool(per_sample), pairing
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.primary_dominant = bool(primary_dominant)

    def __call__(self, images: torch.Tensor, target: torch.Tensor, *, generator: torch.Generator) -> BatchMix:
        """Runs :func:`batch_mixup` with these options.

        Args:
            images: (B, C, H, W).
            target: (B, H, W) integer (needs ``num_classes``) or (B, K, H, W) float.
            generator: ``torch.Generator`` on the images' device.

        Returns:
            :class:`BatchMix`; ``target`` is float32 soft probabilities (float64 stays float64).
        """
        return batch_mixup(
            images,
            target,
            generator=generator,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            alpha=self.alpha,
            p=self.p,
            per_sample=self.per_sample,
            primary_dominant=self.primary_dominant,
            pairing=self.pairing,
        )

    def __repr__(self) -> str:
        return (
            f"BatchMixUp(p={self.p}, alpha={self.alpha}, num_classes={self.num_classes}, "
            f"ignore_index={self.ignore_index}, per_sample={self.per_sample}, "
            f"primary_dominant={self.primary_dominant}, pairing={self.pairing!r})"
        )
