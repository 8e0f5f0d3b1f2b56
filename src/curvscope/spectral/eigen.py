"""Top-k eigenpairs: thick-restart Lanczos stopping on eigenvalue-error bounds, or SciPy.

``method="lanczos"`` (the default) and ``"block_lanczos"`` run
:func:`~curvscope.spectral.thick_restart.thick_restart_lanczos` (block size 1, or k): products
are taken in the operator's own dtype and device, with no conversion. ``"eigsh"`` (ARPACK) and
``"lobpcg"`` drive the operator through ``to_scipy()``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse.linalg as spla
import torch

from curvscope._validate import check_int
from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.operators.adapter import as_operator
from curvscope.persistence import savable
from curvscope.spectral.probes import draw_probes, make_generator
from curvscope.spectral.thick_restart import (
    accuracy_floor,
    order_wanted,
    thick_restart_lanczos,
)

__all__ = ["EigenResult", "top_eigenpairs"]

Which = Literal["largest", "smallest", "magnitude"]
Method = Literal["auto", "lanczos", "block_lanczos", "eigsh", "lobpcg"]
_WHICH = ("largest", "smallest", "magnitude")
_METHODS = ("auto", "lanczos", "block_lanczos", "eigsh", "lobpcg")


@savable
@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs at one end of the spectrum.

    Attributes:
        values: ``(k,)`` eigenvalues, most wanted first (descending for ``largest``, ascending
            for ``smallest``, by decreasing magnitude for ``magnitude``).
        vectors: ``(P, k)`` orthonormal eigenvectors (float64 numpy).
        residuals: ``(k,)`` :math:`\\|M z_i - \\lambda_i z_i\\|`: from the Lanczos relation
            for the Lanczos methods (no extra product), from a fresh product for SciPy's.
        errors: ``(k,)`` bounds on :math:`|\\lambda_i - \\text{values}_i|`: for the Lanczos
            methods the one-sided Kato-Temple bound :math:`\\min(r_i, r_i^2/(\\theta_i - a_i))`
            (a_i: the bound of the next eigenvalue), refined by the converged Ritz pairs below
            for block size one (see :func:`~curvscope.spectral.thick_restart.error_bounds`);
            the residual (Weyl) for SciPy's; never below the rounding floor of the operator's
            dtype times ``scale``.
        converged: ``(k,)`` whether ``errors <= max(tol * |values|, floor * scale)`` (floor:
            :func:`~curvscope.spectral.thick_restart.accuracy_floor` of the dtype).
        scale: the estimate of :math:`\\|M\\|` (largest |Ritz value| seen).
        which, method, tol, seed, size: the inputs (``method`` is the one actually used).
        num_matvecs: matrix-vector products spent (columns multiplied, however many block
            products carried them; SciPy's methods include the k of the residual check).
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
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    timings: dict[str, float] = field(default_factory=dict)
    version: str = __version__


def _scipy_eigenpairs(
    op: Any, k: int, which: str, tol: float, used: str, generator: torch.Generator, budget: int
) -> tuple[np.ndarray, np.ndarray, int]:
    size = op.shape[0]
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
        # ARPACK's maxiter counts restarts of its ncv = max(2k + 1, 20) basis.
        ncv = min(size, max(2 * k + 1, 20))
        try:
            values, vectors = spla.eigsh(
                counted,
                k=k,
                which=code,
                tol=tol,
                v0=start[:, 0],
                maxiter=max(1, budget // max(ncv - k, 1)),
            )
        except spla.ArpackNoConvergence as err:
            values, vectors = err.eigenvalues, err.eigenvectors
            if len(values) < k:
                pad = k - len(values)
                values = np.concatenate([values, np.full(pad, np.nan)])
                vectors = np.concatenate([vectors, start[:, :pad]], axis=1)
    else:
        values, vectors = spla.lobpcg(
            counted, start, largest=which == "largest", tol=tol, maxiter=max(1, budget // k)
        )
    values = np.asarray(values)
    order = order_wanted(
        np.nan_to_num(values, nan=-np.inf if which == "largest" else np.inf), which
    )
    vectors = np.asarray(vectors)[:, order]
    q, r = np.linalg.qr(vectors)
    return values[order], q * np.sign(r.diagonal()), calls["columns"]


def top_eigenpairs(
    op: Any,
    k: int,
    *,
    which: Which = "largest",
    tol: float | None = None,
    vector_tol: float | None = None,
    seed: int = 0,
    method: Method = "auto",
    block_size: int | None = None,
    max_dim: int | None = None,
    max_matvecs: int | None = None,
) -> EigenResult:
    """The k eigenpairs at one end of the spectrum, each eigenvalue to relative accuracy ``tol``.

    For the Lanczos methods the run stops as soon as every wanted Ritz value :math:`\\theta_i`
    has an error bound (residual :math:`r_i` from the Lanczos relation, the gap
    :math:`\\theta_i - a_i` to the bound :math:`a_i` of the next eigenvalue estimated from the
    Ritz values below; refined by the converged ones among them,
    :mod:`curvscope.spectral.thick_restart`)

    .. math::

        \\min\\big(r_i,\\ r_i^2/(\\theta_i - a_i)\\big) \\le \\text{tol}\\,|\\theta_i|,

    or when ``max_matvecs`` columns are spent (``converged`` then says which are not, and a
    warning is issued). The bound assumes that every eigenvalue above the Ritz values it uses
    has appeared among them; a single-vector Krylov method cannot see an eigenvalue that has
    not (a multiple one, or one of a close pair at a loose ``tol``). The eigenvectors are
    accurate to about :math:`r_i/\\text{gap}_i`, i.e. to
    the square root of the eigenvalue accuracy; pass ``vector_tol`` when the vectors matter.

    Args:
        op: a symmetric operator (curvscope operator, SciPy linear operator, dense matrix).
        k: number of eigenpairs (< P).
        which: ``"largest"`` (algebraic), ``"smallest"`` (algebraic) or ``"magnitude"``.
        tol: relative accuracy of the eigenvalues; default 1e-10 in float64, 1e-6 in float32.
            A tol below what products in the operator's dtype can deliver
            (:func:`~curvscope.spectral.thick_restart.accuracy_floor`: 4 eps, 4.8e-7 in
            float32) raises :class:`InputError` at once.
        vector_tol: when given, every returned pair also has a residual
            :math:`\\|Mv_i - \\theta_i v_i\\| \\le \\text{vector\\_tol}\\,\\|M\\|`, so each
            eigenvector is accurate to about ``vector_tol``·‖M‖/gap (for subspaces that
            matter, e.g. noise injected into the top-k eigenspace). For ``eigsh``/``lobpcg``,
            whose ``tol`` is a residual already, the smaller of the two is used.
        seed: seed of the CPU generator for the start block / vector.
        method: ``"lanczos"`` (thick-restart Lanczos, one vector per product), ``"block_lanczos"``
            (the same with a block of ``k`` vectors: resolves eigenvalues of multiplicity up to
            the block size), ``"eigsh"`` (ARPACK; its ``tol`` is a relative residual) or
            ``"lobpcg"`` (SciPy; not for ``magnitude``). ``"auto"`` is ``"lanczos"``: fewest
            products at equal accuracy on planted spectra and on the digits-MLP Hessian
            (``python -m benchmarks`` counts them).
        block_size: Lanczos block size (default 1 for ``lanczos``, k for ``block_lanczos``).
            Single-vector Krylov methods see one copy of a repeated eigenvalue; use a block at
            least as large as the multiplicity you expect.
        max_dim: Lanczos basis columns before a thick restart (default ``max(40, 2k + 20)``,
            rounded to the block).
        max_matvecs: the product budget (default ``max(300, 60 k)``); every method stops there.

    Raises:
        InputError: bad arguments, or a tol below the dtype's accuracy floor.

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
            "which='largest'/'smallest' or method='lanczos' for which='magnitude'"
        )
    floor = accuracy_floor(op.dtype)
    if tol is None:
        tol = 1e-10 if op.dtype == torch.float64 else max(1e-6, floor)
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InputError(f"tol must be a relative tolerance in (0, 1), got {tol!r}")
    if tol < floor:
        raise InputError(
            f"tol={tol:.1e} is below what products in {op.dtype} can deliver for P = {size}: "
            f"rounding limits the relative accuracy of even the largest eigenvalue to about "
            f"{floor:.1e}; pass tol >= {floor:.1e}, or build the operator in float64 "
            "(e.g. model.double() and float64 data)"
        )
    if vector_tol is not None and not (
        isinstance(vector_tol, (int, float)) and floor <= vector_tol < 1
    ):
        raise InputError(
            f"vector_tol must be a relative residual in [{floor:.1e}, 1) (products in "
            f"{op.dtype} cannot do better), got {vector_tol!r}"
        )
    budget = max(300, 60 * k) if max_matvecs is None else max_matvecs
    budget = check_int("max_matvecs", budget, minimum=k + 1, expected=f"an integer > k = {k}")
    generator = make_generator(seed)
    used = "lanczos" if method == "auto" else method

    if used in ("lanczos", "block_lanczos"):
        block = block_size or (1 if used == "lanczos" else k)
        dim = max_dim or max(40, 2 * k + 20)
        dim = dim - dim % block if dim >= block else block
        # A basis as large as the space needs no room to restart: its Ritz values are exact.
        whole = dim >= size - size % block
        dim = min(dim, size - size % block)
        if block < 1 or dim < k + (block if whole else 2 * block):
            raise InputError(
                f"Lanczos needs block_size >= 1 and max_dim >= k + 2 * block_size; got "
                f"block_size={block}, max_dim={dim} (k = {k}, P = {size}); raise max_dim or "
                "lower block_size"
            )
        found = thick_restart_lanczos(
            op,
            k,
            which=which,
            tol=tol,
            floor=floor,
            vector_tol=vector_tol,
            generator=generator,
            block_size=block,
            max_dim=dim,
            max_matvecs=max(budget, k + block),
        )
        values, matvecs, residuals = found.values, found.num_matvecs, found.residuals
        vectors_np = found.vectors.double().cpu().numpy()
        scale = max(found.norm_estimate, float(np.abs(values).max()), np.finfo(float).tiny)
        errors = np.maximum(found.errors, floor * scale)
    else:
        scipy_tol = tol if vector_tol is None else min(tol, vector_tol)
        values, vectors_np, matvecs = _scipy_eigenpairs(
            op, k, which, scipy_tol, used, generator, budget
        )
        check = torch.as_tensor(vectors_np, dtype=op.dtype, device=op.device)
        values_t = torch.as_tensor(np.nan_to_num(values), dtype=op.dtype, device=op.device)
        residuals = (op @ check - check * values_t).double().norm(dim=0).cpu().numpy()
        matvecs += k
        scale = max(
            float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0,
            np.finfo(float).tiny,
        )
        # The verification product is in the operator's dtype: allow its rounding level.
        errors = np.maximum(
            residuals, 10 * math.sqrt(size) * float(torch.finfo(op.dtype).eps) * scale
        )
        errors = np.where(np.isfinite(values), errors, np.inf)
    # Converged: as accurate as asked, or (eigenvalues far below |M|) as the dtype allows.
    converged = errors <= np.maximum(tol * np.abs(values), floor * scale) * (1 + 1e-9)
    if used in ("lanczos", "block_lanczos") and not bool(converged.all()):
        warnings.warn(
            f"top_eigenpairs stopped at max_matvecs = {budget} with eigenvalue error bounds "
            f"{np.array2string(errors / np.abs(values), precision=1)} (relative) against tol = "
            f"{tol:.1e}; raise max_matvecs or tol (EigenResult.converged says which)",
            RuntimeWarning,
            stacklevel=2,
        )
    return EigenResult(
        values=np.asarray(values, dtype=np.float64),
        vectors=vectors_np,
        residuals=np.asarray(residuals, dtype=np.float64),
        converged=np.asarray(converged),
        scale=float(scale),
        which=which,
        method=used,
        tol=float(tol),
        seed=seed,
        size=size,
        num_matvecs=int(matvecs),
        errors=np.asarray(errors, dtype=np.float64),
        timings={"total": time.perf_counter() - tick},
    )
