"""The operator interface, through DenseOperator (the simplest operator)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from curvscope import DenseOperator, InputError, MemoryLimitError


def _sym(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return (a + a.T) / 2


def test_vector_block_numpy_and_scipy_products_agree() -> None:
    a = _sym(30)
    op = DenseOperator(a)
    v = torch.randn(30, 4, dtype=torch.float64)
    torch.testing.assert_close(op @ v, a @ v)
    torch.testing.assert_close(op @ v[:, 0], a @ v[:, 0])
    np.testing.assert_allclose(op @ v.numpy(), (a @ v).numpy())
    lin = op.to_scipy()
    np.testing.assert_allclose(lin.matvec(v[:, 0].numpy()), (a @ v[:, 0]).numpy())
    vals = spla.eigsh(lin, k=2, which="LA", return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(vals), np.linalg.eigvalsh(a.numpy())[-2:], rtol=1e-8)


def test_to_dense_roundtrip_and_memory_guard() -> None:
    a = _sym(10)
    op = DenseOperator(a)
    torch.testing.assert_close(op.to_dense(), a)
    # The base-class builder (block products with the identity) gives the same matrix.
    base_dense = type(op).__mro__[1].to_dense(op, block_size=3)
    torch.testing.assert_close(base_dense, a)
    with pytest.raises(MemoryLimitError, match=r"needs 800 B.*max_memory"):
        type(op).__mro__[1].to_dense(op, max_memory=100)


def test_bad_vectors_get_clear_errors() -> None:
    op = DenseOperator(_sym(5))
    with pytest.raises(InputError, match=r"size P = 5.*got shape \(4,\)"):
        op @ torch.zeros(4, dtype=torch.float64)
    with pytest.raises(InputError, match=r"computes in torch.float64, got a torch.float32"):
        op @ torch.zeros(5)
    with pytest.raises(InputError, match=r"expects a torch\.Tensor or numpy array"):
        op @ [1.0] * 5
    with pytest.raises(InputError, match="symmetric"):
        DenseOperator(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(InputError, match="square"):
        DenseOperator(torch.zeros(2, 3))
