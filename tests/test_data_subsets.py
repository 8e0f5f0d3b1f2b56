"""Index subsets: BatchLoader over chosen items, and the per-class subset option."""

from __future__ import annotations

import pytest
import torch

from curvscope.data import BatchLoader, make_blobs
from curvscope.errors import InputError


def test_loader_over_indices_yields_those_items_in_order_and_ragged() -> None:
    data = make_blobs(11, seed=3)
    idx = torch.tensor([9, 0, 4, 4, 10])
    loader = BatchLoader(data, 2, indices=idx)
    batches = list(loader)
    assert len(loader) == 3 and loader.num_samples == 5
    assert [len(x) for x, _ in batches] == [2, 2, 1]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(x, data.inputs[idx]) and torch.equal(y, data.targets[idx])
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, loader, strict=True))
    assert len(BatchLoader(data, 2, indices=idx, drop_last=True)) == 2


def test_shuffled_loader_over_indices_permutes_only_the_subset() -> None:
    data = make_blobs(20)
    idx = torch.tensor([1, 3, 5, 7, 11])
    loader = BatchLoader(data, 2, indices=idx, shuffle=True, generator=torch.Generator())
    loader.generator.manual_seed(0)
    x = torch.cat([b for b, _ in loader])
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, data.inputs[idx[perm]])


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        ([0, 1], "must be a torch.Tensor, got list"),
        (torch.tensor([0.0, 1.0]), "must be integers, got dtype torch.float32"),
        (torch.zeros(0, dtype=torch.int64), "non-empty 1-D tensor, got shape \\(0,\\)"),
        (torch.tensor([[0, 1]]), "non-empty 1-D tensor, got shape \\(1, 2\\)"),
        (torch.tensor([0, 20]), "must lie in \\[0, 20\\) .* from 0 to 20"),
        (torch.tensor([-1, 2]), "from -1 to 2"),
    ],
)
def test_bad_indices_are_refused_with_what_to_pass(indices: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        BatchLoader(make_blobs(20), 4, indices=indices)
