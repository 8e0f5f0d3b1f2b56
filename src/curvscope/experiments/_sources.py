"""Halves of a training set as batch sources (no copies of the data).

The curvature operators accept any re-iterable of ``(inputs, targets)`` batches; a
:class:`~curvscope.data.BatchLoader` over an index subset feeds them a fixed half of the
training set for the split-half noise estimate of spec ``theory.md`` §1.4(a), in a fixed order,
computed batch by batch. Every pass yields the same batches (frozen views stay frozen because
:class:`~curvscope.data.AugmentedViews` keys each view by its item index).
"""

from __future__ import annotations

import torch

from curvscope.data import AugmentedViews, BatchLoader, TensorDataset
from curvscope.errors import InputError

__all__ = ["split_halves"]


def split_halves(
    dataset: TensorDataset | AugmentedViews, *, seed: int, batch_size: int
) -> tuple[BatchLoader, BatchLoader]:
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
        halves.append(BatchLoader(dataset, batch_size, indices=part))
    return halves[0], halves[1]
