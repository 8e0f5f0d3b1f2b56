"""Thick-restart (block) Lanczos for the top-k eigenpairs, stopping on eigenvalue-error bounds.

Wu & Simon (2000), "Thick-restart Lanczos method for large symmetric eigenvalue problems";
Stathopoulos, Saad & Wu (1998) for the restart size; Parlett, *The Symmetric Eigenvalue
Problem*, Thm. 11.7.1 (the gap bound); spec ``theory.md`` §1.5 for the Lanczos relation.

The basis :math:`Q_j` (orthonormal, reorthogonalised twice against all of it) satisfies

.. math::

    M Q_j = Q_j H_j + F_j E_j^\\top, \\qquad H_j = Q_j^\\top M Q_j,

with :math:`F_j = Q_{\\text{next}} R_j` the orthogonalised last block (block size b) and
:math:`E_j` the last b columns of the identity. :math:`H_j` is filled from the Gram-Schmidt
coefficients of each product, so it is exactly the projection (no three-term recurrence is
trusted; after a thick restart it is an arrow matrix, which this handles the same way). A Ritz
pair :math:`(\\theta_i, y_i = Q_j s_i)` of :math:`H_j` then has the residual, without a product,

.. math::

    r_i = \\|M y_i - \\theta_i y_i\\| = \\|R_j\\, E_j^\\top s_i\\|,

and an eigenvalue within :math:`\\min(r_i, r_i^2/\\delta_i)` of :math:`\\theta_i` (Weyl, and the
gap theorem), where :math:`\\delta_i` is the distance from :math:`\\theta_i` to the rest of the
spectrum. :math:`\\delta_i` is unknown; it is estimated by
:math:`\\min_{l \\ne i} (|\\theta_i - \\theta_l| - r_l)` over all Ritz values of the basis (each
neighbour moved towards :math:`\\theta_i` by its own residual, so an unconverged neighbour makes
the estimate small and the bound falls back to :math:`r_i`). The quadratic bound is what makes
a top eigenvalue accurate to 1e-6 in about half the products a residual bound needs; it is an
estimate, not a proof, when an eigenvalue near :math:`\\theta_i` has not yet appeared among the
Ritz values (any Krylov method shares this: a block of size b resolves multiplicities up to b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curvscope.errors import NonFiniteError
from curvscope.operators.base import SymmetricOperator
from curvscope.spectral.probes import draw_probes

__all__ = ["accuracy_floor", "error_bounds", "thick_restart_lanczos"]


@dataclass(frozen=True)
class KrylovEigen:
    """What :func:`thick_restart_lanczos` returns (internal; ``top_eigenpairs`` wraps it)."""

    values: np.ndarray  # (k,) wanted order
    vectors: torch.Tensor  # (P, k) operator dtype/device
    residuals: np.ndarray  # (k,) ||R E^T s_i||
    errors: np.ndarray  # (k,) eigenvalue error bounds (absolute)
    norm_estimate: float  # max |Ritz value| seen
    num_matvecs: int
    restarts: int


def order_wanted(values: np.ndarray, which: str) -> np.ndarray:
    """Indices of ``values``, most wanted first."""
    if which == "largest":
        return np.argsort(-values, kind="stable")
    if which == "smallest":
        return np.argsort(values, kind="stable")
    return np.argsort(-np.abs(values), kind="stable")


def error_bounds(theta: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Eigenvalue error bounds :math:`\\min(r_i, r_i^2/\\delta_i)` for every Ritz pair.

    :math:`\\delta_i = \\min_{l \\ne i}(|\\theta_i - \\theta_l| - r_l)`; where that is not
    positive (an unresolved neighbour) the bound is the residual itself.
    """
    theta = np.asarray(theta, dtype=np.float64)
    res = np.asarray(residuals, dtype=np.float64)
    if theta.size < 2:
        return res.copy()
    dist = np.abs(theta[:, None] - theta[None, :]) - res[None, :]
    np.fill_diagonal(dist, np.inf)
    gap = dist.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        quadratic = np.where(gap > 0, res**2 / np.where(gap > 0, gap, 1.0), np.inf)
    return np.minimum(res, quadratic)


def accuracy_floor(dtype: torch.dtype) -> float:
    """Relative accuracy (of :math:`\\|M\\|`) that products in ``dtype`` can deliver: 4 eps.

    A product carries a rounding error of order :math:`\\varepsilon \\|M\\|`, and an
    eigenvalue :math:`\\lambda` cannot be known better than this times
    :math:`\\|M\\| / |\\lambda|`. On the digits MLP (P = 8970, float32 products) the top
    eigenvalues settled at 1-2e-8 relative to the float64 truth (0.1-0.2 eps), so 4 eps
    (4.8e-7 in float32, 8.9e-16 in float64) leaves a margin for larger models: tol = 1e-6 is
    reachable in float32, 1e-7 is refused.
    """
    return 4.0 * float(torch.finfo(dtype).eps)


def _orthonormalise(
    block: torch.Tensor, basis: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gram-Schmidt of ``block`` against ``basis`` (twice) and QR of what is left.

    Returns ``(coefficients, q, r)`` with ``block = basis @ coefficients + q @ r``. Directions
    lost to an invariant subspace (tiny diagonal of r) are replaced by fresh random ones
    orthogonal to everything, with a zero row in r: the relation still holds.
    """
    scale = float(block.norm()) or 1.0
    coeff = basis.T @ block
    block = block - basis @ coeff
    again = basis.T @ block
    block = block - basis @ again
    coeff = coeff + again
    q, r = torch.linalg.qr(block)
    lost = r.diagonal().abs() <= 1e3 * torch.finfo(block.dtype).eps * scale
    if bool(lost.any()):
        fresh = draw_probes(
            block.shape[0],
            int(lost.sum()),
            generator=generator,
            probe="gaussian",
            dtype=block.dtype,
        ).to(block.device)
        keep_cols = q[:, ~lost]
        full = torch.cat([basis, keep_cols], dim=1)
        for _ in range(2):
            fresh = fresh - full @ (full.T @ fresh)
        fresh = torch.linalg.qr(fresh)[0]
        q = q.clone()
        q[:, lost] = fresh
        r = r.clone()
        r[lost, :] = 0
    return coeff, q, r


def thick_restart_lanczos(
    op: SymmetricOperator,
    k: int,
    *,
    which: str,
    tol: float,
    floor: float = 0.0,
    vector_tol: float | None = None,
    generator: torch.Generator,
    block_size: int,
    max_dim: int,
    max_matvecs: int,
) -> KrylovEigen:
    """The k wanted eigenpairs, stopping when every wanted eigenvalue's bound is within tol.

    Stops when :func:`error_bounds` of the k wanted Ritz pairs are all
    :math:`\\le \\max(\\text{tol}\\,|\\theta_i|, \\text{floor}\\,\\|M\\|)`, or after ``max_matvecs`` product columns (the
    result then has bounds above tol, which the caller reports). With ``vector_tol`` each wanted
    pair must also have a residual :math:`r_i \\le \\text{vector\\_tol}\\,\\|M\\|` (eigenvectors
    accurate to about :math:`r_i/\\delta_i`). Each step is one block
    product of ``block_size`` columns; when the basis would exceed ``max_dim`` columns the
    ``keep`` best Ritz vectors (half of the free room beyond k) are kept and the run continues
    from the current residual block.
    """
    size = op.shape[0]
    dtype, device = op.dtype, op.device
    b = block_size
    keep_max = max(k, min(max_dim - 2 * b, k + (max_dim - k) // 2))
    basis = torch.empty((size, max_dim), dtype=dtype, device=device)
    projected = np.zeros((max_dim, max_dim))
    start = draw_probes(size, b, generator=generator, probe="gaussian", dtype=dtype).to(device)
    _, current, _ = _orthonormalise(start, basis[:, :0], generator)
    j = 0  # columns of the basis in use
    matvecs, restarts, norm_estimate = 0, 0, 0.0
    while True:
        basis[:, j : j + b] = current
        product = op @ current
        matvecs += b
        if not bool(torch.isfinite(product).all()):
            raise NonFiniteError(
                f"top_eigenpairs: the product op @ V after {matvecs} columns contains NaN or inf; "
                "check that the operator is finite at these weights (e.g. the loss is finite)"
            )
        coeff, nxt, r = _orthonormalise(product, basis[:, : j + b], generator)
        c = coeff.double().cpu().numpy()
        projected[: j + b, j : j + b] = c
        projected[j : j + b, : j + b] = c.T
        j += b
        r_np = r.double().cpu().numpy()
        h = projected[:j, :j]
        theta, rot = np.linalg.eigh((h + h.T) / 2)
        norm_estimate = max(norm_estimate, float(np.abs(theta).max()))
        residuals = np.linalg.norm(r_np @ rot[j - b : j, :], axis=0)
        bounds = error_bounds(theta, residuals)
        order = order_wanted(theta, which)
        wanted = order[:k]
        enough = j >= k
        target = np.maximum(tol * np.abs(theta[wanted]), floor * norm_estimate)
        done = enough and bool(np.all(bounds[wanted] <= target))
        if done and vector_tol is not None:
            done = bool(np.all(residuals[wanted] <= vector_tol * norm_estimate))
        if done or matvecs + b > max_matvecs:
            chosen = torch.as_tensor(rot[:, wanted], dtype=dtype, device=device)
            return KrylovEigen(
                values=theta[wanted],
                vectors=basis[:, :j] @ chosen,
                residuals=residuals[wanted],
                errors=bounds[wanted] if enough else np.full(k, np.inf),
                norm_estimate=norm_estimate,
                num_matvecs=matvecs,
                restarts=restarts,
            )
        if j + b > max_dim:
            # Thick restart: keep the best Ritz vectors; M Y = Y diag(theta) + F (E^T S)
            # stays a Lanczos relation, and `nxt` (orthogonal to the whole old basis) goes on.
            keep = min(keep_max, j)
            chosen = order[:keep]
            rot_t = torch.as_tensor(rot[:, chosen], dtype=dtype, device=device)
            basis[:, :keep] = basis[:, :j] @ rot_t
            projected[:] = 0.0
            projected[:keep, :keep] = np.diag(theta[chosen])
            j = keep
            restarts += 1
        current = nxt
