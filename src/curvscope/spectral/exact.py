"""The exact spectrum of a small operator: dense matrix from block products, then ``eigh``.

Paper 003 (Sagun et al.) works with exact Hessians of networks of a few thousand parameters; the
same path is the test oracle of the iterative methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from curvscope._version import __version__
from curvscope.operators.adapter import as_operator
from curvscope.operators.base import DEFAULT_DENSE_LIMIT
from curvscope.persistence import savable

__all__ = ["ExactSpectrum", "exact_spectrum"]


@savable
@dataclass(frozen=True)
class ExactSpectrum:
    """All eigenvalues (ascending, float64) and optionally eigenvectors (columns).

    Attributes:
        eigenvalues: ``(P,)`` ascending.
        eigenvectors: ``(P, P)`` orthonormal columns, or ``None`` unless requested.
        asymmetry: :math:`\\max|A - A^\\top| / \\max|A|` of the assembled matrix (rounding in
            the products; the symmetric part :math:`(A + A^\\top)/2` is diagonalised).
        size, dtype, device: P and the products' dtype/device.
        timings: seconds for ``assemble`` and ``eigh``.
        version: curvscope version.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    asymmetry: float
    size: int
    dtype: str
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    version: str = __version__


def exact_spectrum(
    op: Any,
    *,
    eigenvectors: bool = False,
    max_memory: int | str = DEFAULT_DENSE_LIMIT,
    block_size: int = 64,
    progress: bool = False,
) -> ExactSpectrum:
    """Assemble the P x P matrix with block products and diagonalise it in float64.

    .. math::  M = \\big[M e_1, \\dots, M e_P\\big] = Z \\operatorname{diag}(\\lambda) Z^\\top

    Args:
        op: a symmetric operator (curvscope operator, SciPy linear operator, dense matrix).
        eigenvectors: also return the eigenvectors.
        max_memory: the memory guard of ``to_dense`` (raises ``MemoryLimitError`` above it).
        block_size: identity columns per product.
        progress: progress bar while assembling.

    Example:
        >>> import torch
        >>> exact_spectrum(torch.diag(torch.tensor([2.0, -1.0]))).eigenvalues
        array([-1.,  2.])
    """
    op = as_operator(op)
    tick = time.perf_counter()
    dense = op.to_dense(max_memory=max_memory, block_size=block_size, progress=progress)
    matrix = dense.to(device="cpu", dtype=torch.float64).numpy()
    assembled = time.perf_counter()
    scale = max(float(np.abs(matrix).max()), np.finfo(np.float64).tiny)
    asymmetry = float(np.abs(matrix - matrix.T).max()) / scale
    matrix = (matrix + matrix.T) / 2
    if eigenvectors:
        values, vectors = np.linalg.eigh(matrix)
    else:
        values, vectors = np.linalg.eigvalsh(matrix), None
    return ExactSpectrum(
        eigenvalues=values,
        eigenvectors=vectors,
        asymmetry=asymmetry,
        size=op.shape[0],
        dtype=str(op.dtype),
        device=str(op.device),
        timings={"assemble": assembled - tick, "eigh": time.perf_counter() - assembled},
    )
