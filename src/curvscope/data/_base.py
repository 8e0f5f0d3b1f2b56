"""Fixed, finite datasets held as tensors, and a deterministic batch loader.

Every curvscope dataset is a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs
that also answers whole batches at once (:meth:`TensorDataset.get_batch`), so that a loader
over 1.5M augmented views never builds them one item at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch.utils.data import Dataset

from curvscope.errors import InputError

__all__ = ["BatchLoader", "CurvscopeDataset", "Task", "TensorDataset"]

Task = Literal["classification", "regression"]


class CurvscopeDataset(Dataset):
    """Interface shared by :class:`TensorDataset` and :class:`~curvscope.data.AugmentedViews`.

    Attributes:
        name: short name (``"digits"``, ``"cifar10"``, ...).
        task: ``"classification"`` (int64 class targets) or ``"regression"`` (float targets).
        num_classes: number of classes, or ``None`` for regression.
        input_shape: shape of one input, e.g. ``(1, 8, 8)``.
        target_shape: shape of one target: ``()`` for class labels, ``(d,)`` for regression.
    """

    name: str
    task: Task
    num_classes: int | None
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(inputs, targets)`` for a 1-D int64 tensor of item indices."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        if not isinstance(index, int) or isinstance(index, bool):
            index = int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} items")
        x, y = self.get_batch(torch.tensor([index % n], dtype=torch.int64))
        return x[0], y[0]

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer: classes, or the regression target size."""
        if self.num_classes is not None:
            return self.num_classes
        return int(torch.Size(self.target_shape).numel())

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> BatchLoader:
        """A re-iterable loader of ``(inputs, targets)`` batches (see :class:`BatchLoader`)."""
        return BatchLoader(
            self, batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last
        )


class TensorDataset(CurvscopeDataset):
    """Inputs and targets held in memory, with an optional per-channel normalisation.

    Inputs may be stored compactly (``uint8`` for CIFAR); :meth:`raw` returns them as float32
    on the pixel scale that augmentation works on (zero-filled padding means a black pixel),
    and :meth:`finish` applies the per-channel normalisation afterwards, as torchvision's
    ``RandomCrop -> ToTensor -> Normalize`` pipeline does (paper 000 §6).

    Args:
        inputs: tensor of shape ``(N, *input_shape)``.
        targets: int64 class labels of shape ``(N,)`` or float targets ``(N, d)``.
        name: short dataset name.
        num_classes: number of classes (``None`` for regression targets).
        scale: multiplies the raw inputs (``1/255`` for uint8 images, ``1/16`` for digits).
        mean, std: per-channel normalisation applied after augmentation, or ``None``.
        augmentation: the default random-transform family for this data
            (a :class:`~curvscope.data.ShiftFlip`), or ``None`` where none makes sense.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        name: str,
        num_classes: int | None,
        scale: float = 1.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augmentation: object | None = None,
    ) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise InputError(
                f"dataset {name!r} got {inputs.shape[0]} inputs and {targets.shape[0]} targets; "
                "inputs and targets must have the same first dimension"
            )
        if num_classes is not None and targets.dtype != torch.int64:
            raise InputError(
                f"dataset {name!r} is a classification dataset but its targets are "
                f"{targets.dtype}; pass int64 class labels"
            )
        self.inputs = inputs
        self.targets = targets
        self.name = name
        self.num_classes = num_classes
        self.task: Task = "classification" if num_classes is not None else "regression"
        self.input_shape = tuple(inputs.shape[1:])
        self.target_shape = tuple(targets.shape[1:])
        self.scale = float(scale)
        channels = self.input_shape[0] if self.input_shape else 1
        self._mean = self._channel_stat(mean, channels, "mean")
        self._std = self._channel_stat(std, channels, "std")
        self.augmentation = augmentation

    def _channel_stat(
        self, values: Sequence[float] | None, channels: int, what: str
    ) -> torch.Tensor | None:
        if values is None:
            return None
        stat = torch.tensor(list(values), dtype=torch.float32)
        if stat.numel() != channels or len(self.input_shape) != 3:
            raise InputError(
                f"dataset {self.name!r}: a per-channel {what} needs image inputs (C, H, W) and "
                f"C values; got {stat.numel()} values for inputs of shape {self.input_shape}"
            )
        return stat.view(1, channels, 1, 1)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def raw(self, indices: torch.Tensor) -> torch.Tensor:
        """Float32 inputs on the pixel scale, before normalisation (what augmentation sees)."""
        x = self.inputs[indices].to(torch.float32)
        if self.scale != 1.0:
            x = x * self.scale
        return x

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the per-channel normalisation (identity when the dataset has none)."""
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        return x

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finish(self.raw(indices)), self.targets[indices]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, N={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


class BatchLoader:
    """Deterministic, re-iterable batches of a :class:`CurvscopeDataset`.

    Without shuffling every pass yields identical batches, in order, with a ragged last batch
    unless ``drop_last`` — what a curvature operator needs (its matrix must be fixed). With
    ``shuffle=True`` a permutation is drawn from ``generator`` at the start of each pass.
    With ``indices`` the loader yields only those items, in that order (a fixed subset, e.g. a
    half of the training set for the split-half noise estimate; no copy of the data is made).

    Args:
        dataset: the dataset.
        batch_size: items per batch (>= 1).
        shuffle: draw a new order each pass (requires ``generator``).
        generator: a seeded :class:`torch.Generator`; the global RNG is never used.
        drop_last: drop a ragged last batch.
        indices: 1-D integer tensor of item indices to yield, or ``None`` for every item.

    Example:
        >>> from curvscope.data import make_blobs
        >>> data = make_blobs(10)
        >>> loader = BatchLoader(data, 2, indices=torch.tensor([4, 0, 7]))
        >>> [len(x) for x, _ in loader], loader.num_samples
        ([2, 1], 3)
    """

    def __init__(
        self,
        dataset: CurvscopeDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        indices: torch.Tensor | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(
                f"batch_size must be a positive integer, got {batch_size!r}; pass e.g. 128"
            )
        if shuffle and generator is None:
            raise InputError(
                "shuffle=True needs a seeded torch.Generator (curvscope never uses the global "
                "RNG); pass generator=torch.Generator().manual_seed(seed)"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.indices = None if indices is None else _check_indices(indices, len(dataset))

    @property
    def num_samples(self) -> int:
        """Number of items one pass yields (before ``drop_last``)."""
        return len(self.dataset) if self.indices is None else int(self.indices.numel())

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.num_samples
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        if self.indices is not None:
            order = self.indices if order is None else self.indices[order]
        for b in range(len(self)):
            start, stop = b * self.batch_size, min((b + 1) * self.batch_size, n)
            # In order, each batch makes its own indices: memory O(batch), not O(N).
            index = order[start:stop] if order is not None else torch.arange(start, stop)
            yield self.dataset.get_batch(index)


def _check_indices(indices: object, n: int) -> torch.Tensor:
    """A 1-D int64 tensor of item indices in ``[0, n)``, or an error that says what to pass."""
    fix = "pass a 1-D integer tensor of item indices, e.g. torch.tensor([0, 5, 9])"
    if not isinstance(indices, torch.Tensor):
        raise InputError(f"indices must be a torch.Tensor, got {type(indices).__name__}; {fix}")
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise InputError(f"indices must be integers, got dtype {indices.dtype}; {fix}")
    if indices.dim() != 1 or indices.numel() == 0:
        raise InputError(
            f"indices must be a non-empty 1-D tensor, got shape {tuple(indices.shape)}; {fix}"
        )
    indices = indices.to(torch.int64)
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= n:
        raise InputError(
            f"indices must lie in [0, {n}) for a dataset of {n} items, got values from {low} "
            f"to {high}; {fix}"
        )
    return indices
