"""The symmetric linear operator interface shared by every curvature matrix.

An operator M of size P x P is reached only through products ``M @ V``. The interface follows
``scipy.sparse.linalg.LinearOperator``: ``shape``, ``dtype``, ``device``, ``op @ v`` for a vector
(P,) or a block (P, k), :meth:`SymmetricOperator.to_scipy` so that ARPACK/LOBPCG can drive it,
and :meth:`SymmetricOperator.to_dense` for small P, guarded by a memory limit.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch

from curvscope._memory import format_bytes, parse_bytes
from curvscope.errors import InputError, MemoryLimitError

__all__ = ["DEFAULT_DENSE_LIMIT", "SymmetricOperator", "as_dtype", "digest"]

#: Default memory limit of :meth:`SymmetricOperator.to_dense` (raise it with ``max_memory=``).
DEFAULT_DENSE_LIMIT = 2 * 2**30


def as_dtype(dtype: Any, *, name: str = "dtype") -> torch.dtype | None:
    """``None``, a floating ``torch.dtype``, its name (``"float64"``, ``"torch.float32"``) or a
    numpy floating dtype, as a ``torch.dtype``; anything else raises :class:`InputError`."""
    if dtype is None or isinstance(dtype, torch.dtype):
        result = dtype
    elif isinstance(dtype, str):
        result = getattr(torch, dtype.strip().removeprefix("torch."), None)
    else:
        try:
            result = torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype
        except (TypeError, ValueError):
            result = None
    if result is not None and (not isinstance(result, torch.dtype) or not result.is_floating_point):
        result = None
    if result is None and dtype is not None:
        raise InputError(
            f"{name} must be a floating torch dtype such as torch.float64, or its name "
            f"('float32', 'float64'); got {dtype!r}"
        )
    return result


def digest(items: Iterable[Any]) -> str:
    """A short hex digest (16 hex digits of SHA-256) of strings and tensors, order-aware.

    Tensors contribute their dtype, shape and exact bytes (copied to the CPU), so equal digests
    mean bitwise-equal tensors, whatever device they live on.
    """
    hasher = hashlib.sha256()
    for item in items:
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous().reshape(-1)
            hasher.update(f"tensor {t.dtype} {tuple(item.shape)};".encode())
            hasher.update(memoryview(t.view(torch.uint8).numpy()))
        else:
            hasher.update(f"{type(item).__name__} {item!r};".encode())
    return hasher.hexdigest()[:16]


class SymmetricOperator(abc.ABC):
    """A symmetric P x P matrix known through its products with blocks of vectors.

    Subclasses implement :meth:`_matmat`, which receives a validated ``(P, k)`` tensor of the
    operator's dtype on its device and returns ``M @ V`` of the same shape.
    """

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """``(P, P)``."""

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype:
        """The dtype products are computed and returned in."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        """The device vectors must live on."""

    @abc.abstractmethod
    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        """Return ``M @ block`` for a validated ``(P, k)`` block."""

    def fingerprint(self) -> dict[str, str] | None:
        """Short hex digests of what defines the matrix, one per ingredient, or ``None``.

        Checkpointed computations (``lanczos(..., checkpoint=...)``) store it and refuse to
        resume on an operator whose fingerprint differs, naming the differing key. Keys used by
        curvscope: ``"operator"`` (kind and options), ``"weights"``, ``"data"``, ``"matrix"``.
        ``None`` (the default for operators that cannot describe themselves) makes those
        callers compare the product with a fixed seeded probe instead.
        """
        return None

    # ------------------------------------------------------------------ products
    def __matmul__(self, other: Any) -> Any:
        """``M @ v`` for a vector ``(P,)`` or a block ``(P, k)``; numpy in, numpy out."""
        if isinstance(other, np.ndarray):
            as_tensor = torch.as_tensor(other).to(dtype=self.dtype, device=self.device)
            return (self @ as_tensor).cpu().numpy()
        if not isinstance(other, torch.Tensor):
            raise InputError(
                f"{type(self).__name__} @ x expects a torch.Tensor or numpy array of shape "
                f"({self.shape[0]},) or ({self.shape[0]}, k); got {type(other).__name__}"
            )
        block = self._validate(other)
        result = self._matmat(block if other.ndim == 2 else block[:, None])
        return result if other.ndim == 2 else result[:, 0]

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """``M @ v`` for one vector of shape ``(P,)``."""
        if vector.ndim != 1:
            raise InputError(
                f"matvec expects a vector of shape ({self.shape[0]},); got {tuple(vector.shape)}"
            )
        return self @ vector

    def matmat(self, block: torch.Tensor) -> torch.Tensor:
        """``M @ V`` for a block of shape ``(P, k)``: one data pass for all k columns."""
        if block.ndim != 2:
            raise InputError(
                f"matmat expects a block of shape ({self.shape[0]}, k); got {tuple(block.shape)}"
            )
        return self @ block

    def _validate(self, x: torch.Tensor) -> torch.Tensor:
        size = self.shape[0]
        if x.ndim not in (1, 2) or x.shape[0] != size:
            raise InputError(
                f"{type(self).__name__} has size P = {size}: expected a vector ({size},) or a block "
                f"({size}, k), got shape {tuple(x.shape)}. Flatten per-parameter tensors in the "
                "operator's parameter order (see `param_names`) before multiplying."
            )
        if x.dtype != self.dtype:
            raise InputError(
                f"{type(self).__name__} computes in {self.dtype}, got a {x.dtype} vector; "
                f"cast it with v.to({self.dtype}) or build the operator with dtype={x.dtype}"
            )
        if x.device != self.device:
            raise InputError(
                f"{type(self).__name__} lives on {self.device}, got a vector on {x.device}; "
                f"move it with v.to('{self.device}')"
            )
        return x

    # ------------------------------------------------------------------ conversions
    def to_scipy(self) -> spla.LinearOperator:
        """This operator as a ``scipy.sparse.linalg.LinearOperator`` (numpy float in and out).

        Useful for ``scipy.sparse.linalg.eigsh`` and ``lobpcg``. Vectors cross to the operator's
        device and dtype and back on every product.
        """
        np_dtype = torch.empty((), dtype=self.dtype).numpy().dtype

        def matmat(x: np.ndarray) -> np.ndarray:
            block = torch.as_tensor(np.ascontiguousarray(x)).to(
                dtype=self.dtype, device=self.device
            )
            return self._matmat(block.reshape(self.shape[0], -1)).cpu().numpy()

        return spla.LinearOperator(
            self.shape,
            matvec=lambda x: matmat(x).reshape(-1),
            rmatvec=lambda x: matmat(x).reshape(-1),
            matmat=matmat,
            dtype=np_dtype,
        )

    def to_dense(
        self,
        *,
        max_memory: int | str = DEFAULT_DENSE_LIMIT,
        block_size: int = 64,
        progress: bool = False,
    ) -> torch.Tensor:
        """The explicit P x P matrix, built from block products with the identity.

        Costs ceil(P / block_size) data passes. Refuses (with the memory it would need) when the
        matrix would exceed ``max_memory`` bytes; pass a larger ``max_memory`` to allow it.
        """
        size = self.shape[0]
        limit = parse_bytes(max_memory)
        needed = size * size * torch.empty((), dtype=self.dtype).element_size()
        if needed > limit:
            raise MemoryLimitError(
                f"to_dense() of a {size} x {size} {self.dtype} matrix needs {format_bytes(needed)}, "
                f"above the limit of {format_bytes(limit)}; pass max_memory='{format_bytes(needed * 1.1).replace(' ', '')}' "
                "to allow it, or use curvscope.spectral (slq, top_eigenpairs) which never forms the matrix"
            )
        if block_size < 1:
            raise InputError(f"block_size must be a positive integer, got {block_size}")
        dense = torch.empty((size, size), dtype=self.dtype, device=self.device)
        starts = range(0, size, block_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="to_dense", unit="block")
        for start in starts:
            stop = min(start + block_size, size)
            eye = torch.zeros((size, stop - start), dtype=self.dtype, device=self.device)
            eye[torch.arange(start, stop), torch.arange(stop - start)] = 1
            dense[:, start:stop] = self._matmat(eye)
        return dense

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P={self.shape[0]}, dtype={self.dtype}, device={self.device})"
