"""An explicit symmetric matrix behind the operator interface (tests, theory, small models)."""

from __future__ import annotations

import numpy as np
import torch

from curvscope.errors import InputError
from curvscope.operators.base import SymmetricOperator, as_dtype, digest

__all__ = ["DenseOperator"]


class DenseOperator(SymmetricOperator):
    """Wrap an explicit symmetric matrix ``A`` so that spectral algorithms can use it.

    Args:
        matrix: a square symmetric ``torch.Tensor`` or ``numpy.ndarray``.
        dtype: cast to this dtype, a ``torch.dtype`` or its name such as ``"float64"``
            (default: the matrix's own floating dtype).
        device: move to this device (default: where the matrix is).
        symmetry_tol: relative tolerance of the symmetry check
            ``max|A - A^T| <= symmetry_tol * max|A|``; ``None`` skips the check.

    Example:
        >>> import torch
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0])))
        >>> op @ torch.ones(2)
        tensor([1., 2.])
    """

    def __init__(
        self,
        matrix: torch.Tensor | np.ndarray,
        *,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        symmetry_tol: float | None = 1e-6,
    ) -> None:
        dtype = as_dtype(dtype)
        tensor = torch.as_tensor(matrix)
        if tensor.ndim != 2 or tensor.shape[0] != tensor.shape[1]:
            raise InputError(
                f"DenseOperator expects a square matrix (P, P), got shape {tuple(tensor.shape)}; "
                "pass the full symmetric matrix, e.g. the Gram matrix A @ A.T of a rectangular A"
            )
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.get_default_dtype())
        tensor = tensor.to(dtype=dtype or tensor.dtype, device=device or tensor.device)
        if not torch.isfinite(tensor).all():
            raise InputError(
                f"DenseOperator expects a finite matrix; it contains "
                f"{int((~torch.isfinite(tensor)).sum())} NaN or inf entries, and a non-finite "
                "matrix has no spectrum; pass the matrix after fixing how it was computed"
            )
        if symmetry_tol is not None and tensor.numel():
            scale = tensor.abs().max().clamp_min(torch.finfo(tensor.dtype).tiny)
            asym = (tensor - tensor.T).abs().max()
            if asym > symmetry_tol * scale:
                raise InputError(
                    f"DenseOperator expects a symmetric matrix: max|A - A^T| / max|A| = "
                    f"{float(asym / scale):.3g} > {symmetry_tol}; symmetrise it with (A + A.T) / 2 "
                    "or pass symmetry_tol=None"
                )
        self.matrix = tensor

    @property
    def shape(self) -> tuple[int, int]:
        return (self.matrix.shape[0], self.matrix.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        return self.matrix @ block

    def fingerprint(self) -> dict[str, str]:
        """``"operator"`` (kind, shape, dtype) and ``"matrix"`` (its exact bytes; one read)."""
        return {
            "operator": digest(["DenseOperator", self.shape, str(self.dtype)]),
            "matrix": digest([self.matrix]),
        }

    def to_dense(self, **_: object) -> torch.Tensor:
        """The wrapped matrix itself (a copy)."""
        return self.matrix.clone()
