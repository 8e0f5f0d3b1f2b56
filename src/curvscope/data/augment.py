"""Random image transforms and frozen augmentation views (paper 000 §6; design.md).

The family is :class:`ShiftFlip`: translate an image by ``(dy, dx)`` pixels with
``|dy|, |dx| <= pad``, filling with zeros, then optionally mirror it horizontally. With
``pad=4, flip=True`` this is exactly "4-pixel zero padding + random 32x32 crop + random
horizontal flip" (CIFAR, paper 000 §6); with ``pad=1, flip=False`` it is the ±1-pixel
translation used for the 8x8 digits (which are not mirror-symmetric).

:class:`AugmentedViews` freezes one transform per (sample, view): its parameters are a
counter-based hash of ``(seed, i, j)``, so the augmented dataset is a fixed set of N·K images,
identical on every pass and in any batch order, computed batch by batch and never stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curvscope.data._base import CurvscopeDataset, TensorDataset
from curvscope.errors import InputError

__all__ = ["AugmentedViews", "ShiftFlip", "apply_shift_flip"]

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class ShiftFlip:
    """Zero-filled translation by at most ``pad`` pixels, then an optional horizontal flip.

    Attributes:
        pad: largest shift in pixels along each axis (the zero padding of a random crop).
        flip: whether a random horizontal flip is part of the family.
    """

    pad: int
    flip: bool

    def __post_init__(self) -> None:
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise InputError(f"ShiftFlip.pad must be a non-negative integer, got {self.pad!r}")

    def sample(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``n`` random ``(dy, dx, flip)`` parameters from a seeded generator (training)."""
        dy = torch.randint(-self.pad, self.pad + 1, (n,), generator=generator)
        dx = torch.randint(-self.pad, self.pad + 1, (n,), generator=generator)
        if self.flip:
            fl = torch.randint(0, 2, (n,), generator=generator).bool()
        else:
            fl = torch.zeros(n, dtype=torch.bool)
        return dy, dx, fl

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply an independent random transform to each image of the batch ``x``."""
        dy, dx, fl = self.sample(x.shape[0], generator)
        return apply_shift_flip(x, dy, dx, fl)


def apply_shift_flip(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Translate each image of a batch, zero-filling, then mirror it where ``flip`` is set.

    .. math:: y_b[c, r, s] = x_b[c, r - dy_b, s' - dx_b],\\quad
              s' = W - 1 - s \\text{ if flip}_b \\text{ else } s,

    with zero wherever the source pixel lies outside the image. Equivalent to padding by
    ``p`` and cropping at offset ``(p - dy, p - dx)``. Vectorised over the batch.

    Args:
        x: images of shape ``(B, C, H, W)``.
        dy, dx: int tensors of shape ``(B,)``: the shift down and to the right.
        flip: bool tensor of shape ``(B,)``.

    Returns:
        A new tensor of the shape and dtype of ``x``.
    """
    if x.dim() != 4:
        raise InputError(
            f"image transforms need a batch of shape (B, C, H, W), got shape {tuple(x.shape)}; "
            "datasets without images (blobs, random) have no augmentation"
        )
    b, c, h, w = x.shape
    dev = x.device
    dy, dx, flip = dy.to(dev), dx.to(dev), flip.to(dev)
    pad = int(max(dy.abs().max().item(), dx.abs().max().item())) if b else 0
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=dev)[None, :] - dy[:, None] + pad  # (B, H)
    cols = torch.arange(w, device=dev)[None, :]
    cols = torch.where(flip[:, None], w - 1 - cols, cols) - dx[:, None] + pad  # (B, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer."""
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def view_hash(seed: int, sample: np.ndarray, view: np.ndarray) -> np.ndarray:
    """64-bit hash of ``(seed, sample, view)``: the counter-based key of one frozen view."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
        key = _splitmix64(key + sample.astype(np.uint64))
        return _splitmix64(key + view.astype(np.uint64))


class AugmentedViews(CurvscopeDataset):
    """K frozen random views of every sample: a fixed dataset of N·K items (paper 000 §6).

    Item ``k`` is view ``j = k // N`` of sample ``i = k % N`` (view-major), so items
    ``[j*N, (j+1)*N)`` are view ``j`` of every sample and :meth:`view` is a contiguous slice.
    The transform of ``(i, j)`` is determined only by ``(seed, i, j)`` through a counter-based
    hash: identical on every pass, in any batch order, on any device; a different ``seed``
    gives different views. Views are computed per batch, never stored.

    By default all K views are random (view 0 is not the identity), so the N·K items are N·K
    draws from the augmentation distribution. With ``include_identity=True`` view 0 is the
    untransformed sample and views 1..K-1 are random.

    Args:
        dataset: a :class:`TensorDataset` of images ``(C, H, W)``.
        views: K >= 1, the number of views per sample.
        seed: the integer that fixes every view.
        transform: the family (default: the dataset's own, e.g. ``ShiftFlip(4, True)`` for
            CIFAR, ``ShiftFlip(1, False)`` for digits).
        include_identity: make view 0 the untransformed sample.

    Example:
        >>> from curvscope.data import load_dataset
        >>> train = load_dataset("digits", split="train")
        >>> aug = AugmentedViews(train, views=9, seed=0)
        >>> len(aug) == 9 * len(train)
        True
    """

    def __init__(
        self,
        dataset: TensorDataset,
        *,
        views: int,
        seed: int,
        transform: ShiftFlip | None = None,
        include_identity: bool = False,
    ) -> None:
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise InputError(
                f"views must be a positive integer (the number K of frozen views per sample), "
                f"got {views!r}; pass e.g. views=9"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputError(f"seed must be an integer, got {seed!r}")
        if not isinstance(dataset, TensorDataset):
            raise InputError(
                f"AugmentedViews needs a curvscope TensorDataset (from load_dataset), got "
                f"{type(dataset).__name__}"
            )
        transform = transform if transform is not None else dataset.augmentation
        if transform is None:
            raise InputError(
                f"dataset {dataset.name!r} has no image augmentation (inputs of shape "
                f"{dataset.input_shape}); augmented views need image data such as digits or "
                "cifar10, or pass transform=ShiftFlip(pad, flip) for images"
            )
        if len(dataset.input_shape) != 3:
            raise InputError(
                f"augmented views need image inputs (C, H, W), got shape {dataset.input_shape}"
            )
        self.base = dataset
        self.views = views
        self.seed = seed
        self.transform = transform
        self.include_identity = include_identity
        self.name = f"{dataset.name}-views{views}"
        self.task = dataset.task
        self.num_classes = dataset.num_classes
        self.input_shape = dataset.input_shape
        self.target_shape = dataset.target_shape

    def __len__(self) -> int:
        return len(self.base) * self.views

    def parameters_of(
        self, samples: torch.Tensor, views: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The frozen ``(dy, dx, flip)`` of each ``(sample, view)`` pair (int64 tensors)."""
        h = view_hash(self.seed, samples.cpu().numpy(), views.cpu().numpy())
        span = np.uint64(2 * self.transform.pad + 1)
        dy = (h % span).astype(np.int64) - self.transform.pad
        dx = ((h >> np.uint64(21)) % span).astype(np.int64) - self.transform.pad
        if self.transform.flip:
            fl = ((h >> np.uint64(42)) & np.uint64(1)).astype(bool)
        else:
            fl = np.zeros(h.shape, dtype=bool)
        dy, dx, fl = torch.from_numpy(dy), torch.from_numpy(dx), torch.from_numpy(fl)
        if self.include_identity:
            ident = views == 0
            dy, dx = dy.masked_fill(ident, 0), dx.masked_fill(ident, 0)
            fl = fl & ~ident
        return dy, dx, fl

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = indices.to(torch.int64)
        n = len(self.base)
        samples, views = indices % n, indices // n
        dy, dx, fl = self.parameters_of(samples, views)
        x = apply_shift_flip(self.base.raw(samples), dy, dx, fl)
        return self.base.finish(x), self.base.targets[samples]

    def view(self, j: int) -> CurvscopeDataset:
        """View ``j`` of every sample: a dataset of N items (items ``j*N .. (j+1)*N - 1``)."""
        if not 0 <= j < self.views:
            raise InputError(f"view index must be in [0, {self.views}), got {j}")
        return _ViewSlice(self, j)

    def __repr__(self) -> str:
        return (
            f"AugmentedViews({self.base.name!r}, N={len(self.base)}, views={self.views}, "
            f"seed={self.seed}, transform={self.transform})"
        )


class _ViewSlice(CurvscopeDataset):
    """One view of every sample of an :class:`AugmentedViews` (N items)."""

    def __init__(self, parent: AugmentedViews, j: int) -> None:
        self.parent, self.j = parent, j
        self.name = f"{parent.name}[view {j}]"
        self.task, self.num_classes = parent.task, parent.num_classes
        self.input_shape, self.target_shape = parent.input_shape, parent.target_shape

    def __len__(self) -> int:
        return len(self.parent.base)

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.parent.get_batch(indices.to(torch.int64) + self.j * len(self))
