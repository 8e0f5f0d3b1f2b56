"""The engine: cached batches are fingerprinted on every product, later batches of the wrong
shape are named, dtypes may be given by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from curvscope import DenseOperator, HessianOperator, verify_engine
from curvscope.errors import InputError, NonDeterministicError


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))


def _data(n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def _reference_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reverse-over-reverse float64 Hessian of the mean loss (the trusted oracle)."""
    model = model.double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        tensors, start = {}, 0
        for name, shape in zip(names, shapes):
            tensors[name] = flat[start : start + shape.numel()].reshape(shape)
            start += shape.numel()
        out = torch.func.functional_call(model, tensors, (x.double(),))
        return nn.functional.cross_entropy(out, y)

    return torch.autograd.functional.hessian(loss, flat0)


@pytest.mark.parametrize("cache", ["auto", True, False])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_in_place_change_of_the_data_raises_with_or_without_cache(cache, batch_size) -> None:
    x, y = _data()
    op = HessianOperator(
        _model(), nn.CrossEntropyLoss(), (x, y), cache=cache, batch_size=batch_size
    )
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(2))
    first = op @ v
    torch.testing.assert_close(op @ v, first)  # unchanged data: the same matrix
    if cache is not False:
        assert op.cache_info.cached_batches == op.cache_info.total_batches
    x.mul_(2)
    with pytest.raises(NonDeterministicError, match=r"data changed between two passes \(batch 0"):
        op @ v


def test_cached_products_match_the_reference_hessian() -> None:
    x, y = _data()
    op = HessianOperator(_model().double(), nn.CrossEntropyLoss(), (x.double(), y), batch_size=6)
    dense = _reference_hessian(_model(), x, y)
    block = torch.randn(op.shape[0], 3, generator=torch.Generator().manual_seed(3)).double()
    for _ in range(3):  # the first product fills the cache, later ones read it
        torch.testing.assert_close(op @ block, dense @ block, rtol=1e-10, atol=1e-12)
    assert op.cache_info.cached_batches == 4


def test_a_later_batch_with_another_feature_dimension_is_named() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(5, 5, generator=gen), torch.randint(0, 3, (5,))) for _ in range(3)]
    batches.append((torch.randn(5, 6, generator=gen), torch.randint(0, 3, (5,))))
    op = HessianOperator(_model(), nn.CrossEntropyLoss(), batches)
    with pytest.raises(
        InputError,
        match=r"batch 3 of the data \(inputs \(5, 6\), targets \(5,\)\) failed in the model or the "
        r"loss, although batch 0 passed: RuntimeError: .*fix the dataset",
    ):
        op @ torch.zeros(op.shape[0])


def test_a_later_batch_with_other_target_shape_or_lengths_is_named() -> None:
    x, y = _data()
    onehot = nn.functional.one_hot(y, 3).float()
    model = _model()
    # MSE would silently broadcast targets (5, 1) against outputs (5, 3).
    batches = [(x[:10], onehot[:10]), (x[10:15], onehot[10:15, :1])]
    op = HessianOperator(model, nn.MSELoss(), batches)
    with pytest.raises(InputError, match=r"targets shaped like the outputs; got outputs \(5, 3\) "):
        op @ torch.zeros(op.shape[0])
    batches = [(x[:10], y[:10]), (x[10:], y[10:]), (x[:4], y[:3])]
    op = HessianOperator(model, nn.CrossEntropyLoss(), batches)
    with pytest.raises(InputError, match="batch 2 of the data has 4 inputs and 3 targets"):
        op @ torch.zeros(op.shape[0])


def test_dtype_by_name() -> None:
    x, y = _data()
    by_name = HessianOperator(_model(), nn.CrossEntropyLoss(), (x, y), dtype="float64")
    by_dtype = HessianOperator(_model(), nn.CrossEntropyLoss(), (x, y), dtype=torch.float64)
    assert by_name.dtype == torch.float64
    v = torch.randn(by_name.shape[0], dtype=torch.float64)
    torch.testing.assert_close(by_name @ v, by_dtype @ v, rtol=0, atol=0)
    assert HessianOperator(
        _model(), nn.CrossEntropyLoss(), (x, y), dtype="torch.float32"
    ).dtype == (torch.float32)
    assert DenseOperator(np.eye(3), dtype="float32").dtype == torch.float32
    for bad in ("float65", "int64", 3):
        with pytest.raises(InputError, match=r"dtype must be a floating torch dtype such as "):
            HessianOperator(_model(), nn.CrossEntropyLoss(), (x, y), dtype=bad)
    with pytest.raises(InputError, match=r"got 'float65'"):
        DenseOperator(np.eye(3), dtype="float65")


def test_verify_engine_accepts_a_dtype_name() -> None:
    x, y = _data()
    check = verify_engine(_model(), nn.CrossEntropyLoss(), (x, y), dtype="float64")
    assert check.all_ok, str(check)
    with pytest.raises(InputError, match="dtype must be a floating torch dtype"):
        verify_engine(_model(), nn.CrossEntropyLoss(), (x, y), dtype="double precision")


class _MeanOverSequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(x).mean(dim=1))


def test_batches_of_different_sequence_lengths_are_accepted() -> None:
    # Variable-length data (a sequence model's dynamic padding) is legitimate: batches may
    # differ in shape as long as the model and loss take them. The product over both batches
    # equals the sample-weighted sum of the two single-batch operators.
    gen = torch.Generator().manual_seed(1)
    b1 = (torch.randn(4, 7, 5, generator=gen).double(), torch.randint(0, 3, (4,), generator=gen))
    b2 = (torch.randn(6, 2, 5, generator=gen).double(), torch.randint(0, 3, (6,), generator=gen))
    model = _MeanOverSequence().double()
    loss = nn.CrossEntropyLoss()
    v = torch.randn(18, generator=gen).double()
    both = HessianOperator(model, loss, [b1, b2]) @ v
    parts = [HessianOperator(model, loss, [b]) @ v for b in (b1, b2)]
    torch.testing.assert_close(both, (4 * parts[0] + 6 * parts[1]) / 10, rtol=1e-12, atol=1e-14)
