"""Re-iterable batch sources over subsets of a curvscope dataset (no copies of the data).

The curvature operators accept any re-iterable of ``(inputs, targets)`` batches; these sources
feed them a fixed subset of items (a half of the training set for the split-half noise estimate
of spec ``theory.md`` §1.4(a)), in a fixed order, computed batch by batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from curvscope.data import AugmentedViews, CurvscopeDataset, TensorDataset
from curvscope.errors import InputError

__all__ = ["SubsetBatches", "split_halves"]


class SubsetBatches:
    """The items ``indices`` of ``dataset`` in that order, as batches of ``batch_size``.

    Re-iterable and deterministic: every pass yields the same batches (frozen views stay frozen
    because :class:`~curvscope.data.AugmentedViews` keys each view by its item index).
    """

    def __init__(self, dataset: CurvscopeDataset, indices: torch.Tensor, batch_size: int) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.indices = indices.to(torch.int64)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    @property
    def num_samples(self) -> int:
        """Number of items the source yields per pass."""
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.dataset.get_batch(self.indices[start : start + self.batch_size])


def split_halves(
    dataset: TensorDataset | AugmentedViews, *, seed: int, batch_size: int
) -> tuple[SubsetBatches, SubsetBatches]:
    """Two disjoint halves of equal size, split by *sample* (spec §1.4(a)).

    For an :class:`~curvscope.data.AugmentedViews` set all K views of a sample go to the same
    half, so the two halves are independent draws of the underlying samples and the estimate
    measures the noise of N distinct samples (whose effective size is below N·K, §1.4).
    With an odd number of samples the last one of the permutation is left out.

    Args:
        dataset: a training set or its frozen augmented views.
        seed: seed of the permutation (a local generator; the global RNG is untouched).
        batch_size: batch size of the two sources.
    """
    base = dataset.base if isinstance(dataset, AugmentedViews) else dataset
    n = len(base)
    if n < 2:
        raise InputError(f"the split-half noise estimate needs at least 2 samples, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    half = n // 2
    halves = []
    for part in (order[:half], order[half : 2 * half]):
        part = part.sort().values
        if isinstance(dataset, AugmentedViews):
            part = torch.cat([part + j * n for j in range(dataset.views)])
        halves.append(SubsetBatches(dataset, part, batch_size))
    return halves[0], halves[1]
