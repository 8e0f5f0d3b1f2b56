"""Accept any symmetric operator: curvscope operators, SciPy linear operators, dense matrices.

The spectral algorithms take their operator through :func:`as_operator`, so that ``rmt`` and the
tests can feed them matrices whose spectrum is known.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.linalg as spla
import torch

from curvscope.errors import InputError
from curvscope.operators.base import SymmetricOperator
from curvscope.operators.dense import DenseOperator

__all__ = ["ScipyOperator", "as_operator"]


class ScipyOperator(SymmetricOperator):
    """A ``scipy.sparse.linalg.LinearOperator`` (or sparse matrix) assumed symmetric.

    Products run in NumPy on the CPU in the operator's floating dtype (float64 unless the
    operator says float32).
    """

    def __init__(self, linop: spla.LinearOperator) -> None:
        self.linop = linop
        np_dtype = np.dtype(linop.dtype) if linop.dtype is not None else np.dtype(np.float64)
        self._dtype = torch.float32 if np_dtype == np.float32 else torch.float64

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.linop.shape[0]), int(self.linop.shape[1]))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        out = np.asarray(self.linop.matmat(block.numpy()))
        return torch.as_tensor(out.reshape(block.shape)).to(self._dtype)

    def to_scipy(self) -> spla.LinearOperator:
        return self.linop


def as_operator(op: Any, *, name: str = "op") -> SymmetricOperator:
    """Wrap ``op`` into a :class:`~curvscope.operators.base.SymmetricOperator`.

    Accepts a ``SymmetricOperator`` (returned as is), a ``scipy.sparse.linalg.LinearOperator``
    or SciPy sparse matrix (:class:`ScipyOperator`), or a square numpy array / torch tensor
    (:class:`~curvscope.operators.dense.DenseOperator`, which checks symmetry).
    """
    if isinstance(op, SymmetricOperator):
        result: SymmetricOperator = op
    elif isinstance(op, (np.ndarray, torch.Tensor)):
        result = DenseOperator(op)
    elif isinstance(op, spla.LinearOperator) or scipy.sparse.issparse(op):
        result = ScipyOperator(spla.aslinearoperator(op))
    else:
        raise InputError(
            f"{name} must be a symmetric operator: a curvscope SymmetricOperator (e.g. "
            "HessianOperator, DenseOperator), a scipy.sparse.linalg.LinearOperator, or a square "
            f"numpy array / torch tensor; got {type(op).__name__}. Wrap other objects in "
            "scipy.sparse.linalg.LinearOperator(shape, matvec=..., matmat=...)"
        )
    rows, cols = result.shape
    if rows != cols or rows < 1:
        raise InputError(
            f"{name} must be a square, non-empty P x P operator; got shape {result.shape}"
        )
    return result
