"""Top-k eigenpairs: thick-restarted block Lanczos, or SciPy's ARPACK / LOBPCG via ``to_scipy()``.

The block Lanczos here keeps the whole Krylov basis orthonormal (block classical Gram-Schmidt,
twice), takes Ritz pairs by Rayleigh-Ritz on :math:`Q^\\top M Q` (products are stored, so no
recurrence is trusted), and restarts thickly: the ``keep`` best Ritz vectors and their products
are retained, and the next block is their residual. Each step is one block product.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse.linalg as spla
import torch

from curvscope._validate import check_int
from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.operators.adapter import as_operator
from curvscope.operators.base import SymmetricOperator
from curvscope.persistence import savable
from curvscope.spectral.probes import draw_probes, make_generator

__all__ = ["EigenResult", "top_eigenpairs"]

Which = Literal["largest", "smallest", "magnitude"]
Method = Literal["auto", "block_lanczos", "eigsh", "lobpcg"]
_WHICH = ("largest", "smallest", "magnitude")
_METHODS = ("auto", "block_lanczos", "eigsh", "lobpcg")


@savable
@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs at one end of the spectrum.

    Attributes:
        values: ``(k,)`` eigenvalues, most wanted first (descending for ``largest``, ascending
            for ``smallest``, by decreasing magnitude for ``magnitude``).
        vectors: ``(P, k)`` orthonormal eigenvectors (float64 numpy).
        residuals: ``(k,)`` :math:`\\|M z_i - \\lambda_i z_i\\|` from a fresh product.
        converged: ``(k,)`` whether residual ``<= tol * scale``.
        scale: the norm estimate residuals are measured against: the largest |Ritz value| of
            the block Lanczos basis, or ``max|values|`` for the SciPy methods.
        which, method, tol, seed, size: the inputs (``method`` is the one actually used).
        num_matvecs: matrix-vector products spent: columns multiplied, the final residual
            check's ``k`` included, however many block products carried them.
        timings: seconds.
        version: curvscope version.
    """

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    scale: float
    which: str
    method: str
    tol: float
    seed: int
    size: int
    num_matvecs: int
    timings: dict[str, float] = field(default_factory=dict)
    version: str = __version__


def _order(values: np.ndarray, which: str) -> np.ndarray:
    if which == "largest":
        return np.argsort(-values, kind="stable")
    if which == "smallest":
        return np.argsort(values, kind="stable")
    return np.argsort(-np.abs(values), kind="stable")


class _Counter:
    """Counts product columns through an operator."""

    def __init__(self, op: SymmetricOperator) -> None:
        self.op = op
        self.columns = 0

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        self.columns += block.shape[1]
        return self.op @ block


def _orthonormal_block(
    block: torch.Tensor, basis: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """Orthonormalise ``block`` against ``basis`` (twice) and itself; replace lost directions."""
    size = block.shape[0]
    for _attempt in range(3):
        start_norm = block.norm(dim=0).clamp_min(torch.finfo(block.dtype).tiny)
        for _ in range(2):
            if basis is not None and basis.shape[1]:
                block = block - basis @ (basis.T @ block)
        q, r = torch.linalg.qr(block)
        diag = r.diagonal().abs()
        lost = diag <= 1e3 * torch.finfo(block.dtype).eps * start_norm.max()
        if not bool(lost.any()):
            return q
        # An invariant subspace was reached: continue from fresh random directions.
        fresh = draw_probes(
            size, int(lost.sum()), generator=generator, probe="gaussian", dtype=block.dtype
        ).to(block.device)
        block = torch.cat([q[:, ~lost], fresh], dim=1)
    return torch.linalg.qr(block)[0]


def _block_lanczos(
    op: SymmetricOperator,
    k: int,
    which: str,
    tol: float,
    generator: torch.Generator,
    block_size: int,
    max_dim: int,
    max_restarts: int,
) -> tuple[np.ndarray, torch.Tensor, int, float]:
    counter = _Counter(op)
    size = op.shape[0]
    keep = min(max(2 * k, k + block_size), max_dim - block_size)
    start = draw_probes(size, block_size, generator=generator, probe="gaussian", dtype=op.dtype)
    basis = _orthonormal_block(start.to(op.device), None, generator)
    products = counter(basis)
    last_products = products
    values = np.zeros(k)
    vectors = basis[:, :k]
    norm_estimate = 0.0
    pending: torch.Tensor | None = None
    for _restart in range(max_restarts):
        while basis.shape[1] + block_size <= max_dim:
            if pending is None:
                new = _orthonormal_block(last_products, basis, generator)
            else:
                new, pending = pending, None
            new_products = counter(new)
            basis = torch.cat([basis, new], dim=1)
            products = torch.cat([products, new_products], dim=1)
            last_products = new_products
        projected = (basis.T @ products).double().cpu().numpy()
        theta, rotation = np.linalg.eigh((projected + projected.T) / 2)
        order = _order(theta, which)
        chosen = torch.as_tensor(rotation[:, order[:keep]], dtype=op.dtype, device=op.device)
        ritz_vectors, ritz_products = basis @ chosen, products @ chosen
        values = theta[order[:k]]
        vectors = ritz_vectors[:, :k]
        residual = ritz_products[:, :k] - vectors * torch.as_tensor(
            values, dtype=op.dtype, device=op.device
        )
        res = residual.double().norm(dim=0).cpu().numpy()
        norm_estimate = max(float(np.abs(theta).max()), float(np.finfo(float).tiny))
        if np.all(res <= tol * norm_estimate):
            break
        # Thick restart: the residuals of all Ritz vectors of this basis lie in the span of
        # the next Krylov block, so that block continues the run after keeping `keep` vectors.
        pending = _orthonormal_block(last_products, basis, generator)
        basis, products = ritz_vectors, ritz_products
    return values, vectors, counter.columns, norm_estimate


def top_eigenpairs(
    op: Any,
    k: int,
    *,
    which: Which = "largest",
    tol: float | None = None,
    seed: int = 0,
    method: Method = "auto",
    block_size: int | None = None,
    max_dim: int | None = None,
    max_restarts: int = 300,
) -> EigenResult:
    """The k eigenpairs at one end of the spectrum, with residuals.

    Converged means :math:`\\|M z_i - \\lambda_i z_i\\| \\le \\text{tol} \\cdot s` with s an
    estimate of :math:`\\|M\\|` (``EigenResult.scale``);
    the eigenvalue error is then at most the residual, and about residual²/gap.

    Args:
        op: a symmetric operator (curvscope operator, SciPy linear operator, dense matrix).
        k: number of eigenpairs (< P).
        which: ``"largest"`` (algebraic), ``"smallest"`` (algebraic) or ``"magnitude"``.
        tol: relative residual tolerance; default 1e-10 in float64, 1e-5 in float32.
        seed: seed of the CPU generator for the start block / vector.
        method: ``"block_lanczos"`` (this module), ``"eigsh"`` (ARPACK) or ``"lobpcg"`` (SciPy;
            not for ``magnitude``); ``"auto"`` picks ``eigsh``: on planted P = 2000 spectra it
            needed 3-4x fewer products than this block Lanczos at equal accuracy (see the
            spectral benchmark report).
        block_size: block Lanczos block size (default k).
        max_dim: block Lanczos basis size before a restart (default ``max(4k, k + 40)``).
        max_restarts: block Lanczos restarts before giving up (``converged`` then says which).

    Example:
        >>> import torch
        >>> res = top_eigenpairs(torch.diag(torch.arange(10.0, dtype=torch.float64)), 2)
        >>> [round(float(v), 8) for v in res.values]
        [9.0, 8.0]
    """
    tick = time.perf_counter()
    op = as_operator(op)
    size = op.shape[0]
    k = check_int(
        "k",
        k,
        minimum=1,
        maximum=size - 1,
        expected=f"an integer with 1 <= k < P = {size}",
        hint="for all eigenvalues use exact_spectrum",
    )
    if which not in _WHICH:
        raise InputError(f"which must be one of {_WHICH}, got {which!r}")
    if method not in _METHODS:
        raise InputError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "lobpcg" and which == "magnitude":
        raise InputError(
            "lobpcg finds algebraically largest or smallest eigenvalues only; use "
            "which='largest'/'smallest' or method='block_lanczos' for which='magnitude'"
        )
    if tol is None:
        tol = 1e-10 if op.dtype == torch.float64 else 1e-5
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InputError(f"tol must be a relative tolerance in (0, 1), got {tol!r}")
    generator = make_generator(seed)
    used = "eigsh" if method == "auto" else method

    if used == "block_lanczos":
        block = block_size or k
        dim = min(max_dim or max(4 * k, k + 40), size)
        if block < 1 or dim < k + block:
            raise InputError(
                f"block Lanczos needs block_size >= 1 and max_dim >= k + block_size; got "
                f"block_size={block}, max_dim={dim} (P = {size}); raise max_dim"
            )
        values, vectors, matvecs, norm_estimate = _block_lanczos(
            op, k, which, tol, generator, block, dim, max_restarts
        )
        vectors_np = vectors.double().cpu().numpy()
    else:
        linop = op.to_scipy()
        calls = {"columns": 0}

        def matmat(x: np.ndarray) -> np.ndarray:
            x2 = x.reshape(size, -1)
            calls["columns"] += x2.shape[1]
            return linop.matmat(x2)

        counted = spla.LinearOperator(
            (size, size),
            matvec=lambda x: matmat(x).reshape(-1),
            matmat=matmat,
            rmatvec=lambda x: matmat(x).reshape(-1),
            dtype=linop.dtype,
        )
        start = draw_probes(size, k, generator=generator, probe="gaussian").numpy()
        if used == "eigsh":
            code = {"largest": "LA", "smallest": "SA", "magnitude": "LM"}[which]
            try:
                values, vectors_np = spla.eigsh(
                    counted, k=k, which=code, tol=tol, v0=start[:, 0], maxiter=max(1000, 20 * size)
                )
            except spla.ArpackNoConvergence as err:
                values, vectors_np = err.eigenvalues, err.eigenvectors
        else:
            values, vectors_np = spla.lobpcg(
                counted,
                start,
                largest=which == "largest",
                tol=tol,
                maxiter=max(200, 4 * size),
            )
        matvecs = calls["columns"]
        order = _order(np.asarray(values), which)
        values, vectors_np = np.asarray(values)[order], np.asarray(vectors_np)[:, order]
        vectors_np = np.linalg.qr(vectors_np)[0] * np.sign(np.linalg.qr(vectors_np)[1].diagonal())

    check = torch.as_tensor(vectors_np, dtype=op.dtype, device=op.device)
    residual = op @ check - check * torch.as_tensor(values, dtype=op.dtype, device=op.device)
    residuals = residual.double().norm(dim=0).cpu().numpy()
    if used != "block_lanczos":
        norm_estimate = float(np.abs(values).max())
    scale = max(norm_estimate, float(np.abs(values).max()), np.finfo(float).tiny)
    # The verification product is in the operator's dtype: allow its rounding level.
    floor = 10 * math.sqrt(size) * float(torch.finfo(op.dtype).eps) * scale
    converged = residuals <= max(tol * scale, floor)
    return EigenResult(
        values=np.asarray(values, dtype=np.float64),
        vectors=vectors_np,
        residuals=residuals,
        converged=converged,
        scale=float(scale),
        which=which,
        method=used,
        tol=float(tol),
        seed=seed,
        size=size,
        num_matvecs=int(matvecs) + k,
        timings={"total": time.perf_counter() - tick},
    )
