"""Smaller, grayscale, whitened and per-class-subset variants of a dataset.

Paper 001 (Pennington & Bahri, Figs. 2-5) uses "4x4 downsampled, grayscale, whitened" CIFAR-10;
paper 002 §3.10 uses 7x7 grayscale CIFAR-10; paper 003 §2 uses 1000 MNIST images. These are the
``size``, ``grayscale``, ``whiten`` and ``per_class`` options of
:func:`~curvscope.data.load_dataset`, applied in the order subset -> grayscale -> mean-pool ->
whiten, with the whitening statistics taken from the training split as loaded with the same
options, so that train and test are transformed by the same map.

"Whitened" is not defined in paper 001; its §5.2.3 says whitening makes the data approximately
"i.i.d. random normal", i.e. zero mean and identity covariance across features. That is ZCA
whitening (``whiten="zca"``), the reading curvscope takes for the paper's setups;
``whiten="standardize"`` (per-feature zero mean, unit variance) is the weaker alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from curvscope.data._base import TensorDataset
from curvscope.errors import InputError

__all__ = [
    "GRAY_WEIGHTS",
    "Whitening",
    "fit_whitening",
    "mean_pool",
    "per_class_indices",
    "subset",
    "to_grayscale",
    "transform_images",
    "whiten_dataset",
]

#: ITU-R BT.601 luma weights of (R, G, B), as in torchvision's ``rgb_to_grayscale`` and PIL.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)
#: Added to the variances (standardize) or covariance eigenvalues (zca) before the inverse
#: square root, so that a constant feature (a digits border pixel) maps to 0, not to inf.
WHITEN_EPS = 1e-5
WhitenMethod = Literal["zca", "standardize"]
_CHUNK = 4096


def _check_images(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4:
        raise InputError(
            f"{what} needs image inputs of shape (N, C, H, W), got shape {tuple(x.shape)}; "
            "use it with digits, mnist, cifar10 or cifar100"
        )


def mean_pool(images: torch.Tensor, size: int) -> torch.Tensor:
    """Downsample ``(N, C, H, W)`` images to ``(N, C, size, size)`` by averaging pixel blocks.

    Output pixel ``(i, j)`` is the mean over rows ``floor(i H / s) .. ceil((i + 1) H / s) - 1``
    and the same columns (adaptive average pooling): disjoint ``H/s x W/s`` blocks when ``s``
    divides the sides (28 -> 7, 32 -> 4), overlapping by at most one pixel otherwise
    (32 -> 7 for paper 002's 7x7 CIFAR-10).

    .. math:: \\bar x_{ij} = \\frac{1}{|R_i||C_j|} \\sum_{r \\in R_i, c \\in C_j} x_{rc}
    """
    _check_images(images, "size")
    height, width = images.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= min(height, width):
        raise InputError(
            f"size must be an integer in [1, {min(height, width)}] (the side of the downsampled "
            f"image; the images are {height}x{width}), got {size!r}; e.g. size=4"
        )
    return F.adaptive_avg_pool2d(images, size)


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> ``(N, 1, H, W)`` luma with :data:`GRAY_WEIGHTS`; 1 channel is kept."""
    _check_images(images, "grayscale")
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise InputError(
            f"grayscale needs 1 or 3 channels, got {images.shape[1]} (inputs of shape "
            f"{tuple(images.shape[1:])})"
        )
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class Whitening:
    """An affine map ``x -> (x - mean) @ matrix`` on flattened inputs, fitted on a training set.

    Attributes:
        method: ``"zca"`` or ``"standardize"``.
        mean: per-feature training mean, shape ``(D,)`` (float64).
        matrix: ``(D, D)`` symmetric map (diagonal for ``"standardize"``), float64.
    """

    method: str
    mean: torch.Tensor
    matrix: torch.Tensor

    def apply(self, inputs: torch.Tensor) -> torch.Tensor:
        """Whiten ``(N, *shape)`` inputs (computed in float64), returned as float32."""
        flat = inputs.reshape(inputs.shape[0], -1).to(torch.float64)
        return ((flat - self.mean) @ self.matrix).to(torch.float32).reshape(inputs.shape)


def fit_whitening(
    inputs: torch.Tensor, method: WhitenMethod, *, eps: float = WHITEN_EPS
) -> Whitening:
    """Fit a whitening map on training inputs ``(N, *shape)`` (features = flattened inputs).

    With the training mean :math:`\\mu` and covariance :math:`C = \\frac1N \\sum_n (x_n - \\mu)
    (x_n - \\mu)^T = U \\Lambda U^T`:

    .. math:: \\mathrm{zca}:\\ W = U (\\Lambda + \\epsilon)^{-1/2} U^T, \\qquad
              \\mathrm{standardize}:\\ W = \\mathrm{diag}(C_{dd} + \\epsilon)^{-1/2}

    so ZCA whitened training inputs have (up to ``eps``) identity covariance and stay as close
    as possible to the originals (Bell & Sejnowski 1997), and standardized ones have unit
    variance per feature.
    """
    if method not in ("zca", "standardize"):
        raise InputError(
            f"whiten must be 'zca', 'standardize' or None, got {method!r}; paper 001's "
            "'whitened' images are whiten='zca'"
        )
    if inputs.shape[0] < 2:
        raise InputError(
            f"whitening needs at least 2 training items to estimate a covariance, got "
            f"{inputs.shape[0]}"
        )
    flat = inputs.reshape(inputs.shape[0], -1).to(torch.float64)
    mean = flat.mean(dim=0)
    centred = flat - mean
    if method == "standardize":
        matrix = torch.diag((centred.pow(2).mean(dim=0) + eps).rsqrt())
    else:
        values, vectors = torch.linalg.eigh(centred.T @ centred / flat.shape[0])
        matrix = (vectors * (values.clamp_min(0) + eps).rsqrt()) @ vectors.T
    return Whitening(method, mean, matrix)


def per_class_indices(
    targets: torch.Tensor, per_class: int, *, num_classes: int, seed: int | None = None
) -> torch.Tensor:
    """Indices of ``per_class`` items of every class, in increasing order.

    Without ``seed`` the first ``per_class`` items of each class (in dataset order); with a
    seed, a uniformly random ``per_class`` of each class (a local numpy generator).
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise InputError(f"per_class must be a positive integer, got {per_class!r}; e.g. 10")
    labels = targets.numpy()
    counts = np.bincount(labels, minlength=num_classes)
    short = [c for c in range(num_classes) if counts[c] < per_class]
    if short:
        raise InputError(
            f"per_class={per_class} needs {per_class} items of every class, but class(es) "
            f"{short[:10]} have only {[int(counts[c]) for c in short[:10]]}; pass per_class <= "
            f"{int(counts.min())} (the smallest class)"
        )
    rng = None if seed is None else np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        chosen.append(members[:per_class] if rng is None else rng.choice(members, per_class, False))
    return torch.from_numpy(np.sort(np.concatenate(chosen))).to(torch.int64)


def _like(base: TensorDataset, inputs: torch.Tensor, targets: torch.Tensor, **kw) -> TensorDataset:
    settings = {
        "name": base.name,
        "num_classes": base.num_classes,
        "scale": base.scale,
        "mean": None if base._mean is None else base._mean.flatten().tolist(),
        "std": None if base._std is None else base._std.flatten().tolist(),
        "augmentation": base.augmentation,
        **kw,
    }
    out = TensorDataset(inputs, targets, **settings)
    for attr in ("class_names", "subset_indices", "whitening"):
        if hasattr(base, attr):
            setattr(out, attr, getattr(base, attr))
    return out


def subset(base: TensorDataset, indices: torch.Tensor) -> TensorDataset:
    """The items ``indices`` of ``base`` as a dataset; ``subset_indices`` records them."""
    out = _like(base, base.inputs[indices], base.targets[indices])
    previous = getattr(base, "subset_indices", None)
    out.subset_indices = indices if previous is None else previous[indices]
    return out


def transform_images(
    base: TensorDataset, *, size: int | None = None, grayscale: bool = False
) -> TensorDataset:
    """``base`` with grayscale and/or mean-pooled images (pixel scale, float32).

    The dataset's per-channel normalisation is kept while the channels are (RGB pooled), and
    dropped by ``grayscale`` on RGB images (values then lie in [0, 1]). Augmentation is kept for
    grayscale images of full size and dropped for downsampled ones (a shift by the original
    padding would cross most of a 4x4 image).
    """
    if not isinstance(grayscale, bool):
        raise InputError(f"grayscale must be true or false, got {grayscale!r}")
    if size is None and not grayscale:
        return base
    if base.inputs.dim() != 4:
        what = "size" if size is not None else "grayscale"
        _check_images(base.inputs, f"{what} (dataset {base.name!r})")
    parts = []
    for start in range(0, len(base), _CHUNK):  # float32 copies of 50k CIFAR images are 600 MB
        x = base.raw(torch.arange(start, min(start + _CHUNK, len(base))))
        if grayscale:
            x = to_grayscale(x)
        parts.append(x if size is None else mean_pool(x, size))
    images = torch.cat(parts)
    kw: dict = {"scale": 1.0, "augmentation": base.augmentation if size is None else None}
    if grayscale and base.inputs.shape[1] != 1:
        kw.update(mean=None, std=None)
    return _like(base, images, base.targets, **kw)


def whiten_dataset(base: TensorDataset, whitening: Whitening) -> TensorDataset:
    """``base`` with whitened inputs: the map replaces the per-channel normalisation and the
    dataset has no default augmentation (shifting whitened features is meaningless)."""
    all_items = torch.arange(len(base))
    out = _like(
        base,
        whitening.apply(base.raw(all_items)),
        base.targets,
        scale=1.0,
        mean=None,
        std=None,
        augmentation=None,
    )
    out.whitening = whitening
    return out
