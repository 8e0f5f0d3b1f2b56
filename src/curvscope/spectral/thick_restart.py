"""Thick-restart (block) Lanczos for the top-k eigenpairs, stopping on eigenvalue-error bounds.

Wu & Simon (2000), "Thick-restart Lanczos method for large symmetric eigenvalue problems";
Stathopoulos, Saad & Wu (1998) for the restart size; Parlett, *The Symmetric Eigenvalue
Problem*, ch. 10-11 (interlacing, the Kato-Temple inequality, the gap theorem); spec
``theory.md`` §1.5 for the Lanczos relation.

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

and, by Cauchy interlacing, the i-th largest Ritz value never exceeds the i-th largest eigenvalue:
:math:`\\lambda_i \\ge \\theta_i`. The error is one-sided, and :func:`error_bounds` bounds it
from above with Temple's inequality (Parlett, Thm. 10.6.1 in its one-sided form): if every
eigenvalue other than :math:`\\lambda_i` is either :math:`\\ge \\lambda_i` or :math:`\\le a`,

.. math::

    (\\lambda_i - \\theta_i)(\\theta_i - a) = r_i^2
        + \\sum_{a < \\lambda_l < \\lambda_i} c_l^2 (\\lambda_i - \\lambda_l)(\\lambda_l - a)
    \\quad\\Rightarrow\\quad \\lambda_i - \\theta_i \\le \\frac{r_i^2}{\\theta_i - a}
    \\text{ when the sum is empty}

(:math:`c_l = u_l^\\top y_i`). With a = an upper bound of :math:`\\lambda_{i+1}` this is the
gap theorem's :math:`r_i^2/\\delta_i` with only the gap *below* :math:`\\theta_i`. For block size
one the bound goes further: every residual is a multiple of the same vector, so for a Ritz pair
l below i, :math:`c_l = u_l^\\top (M y_i - \\theta_i y_i)/(\\lambda_l - \\theta_i)` and
:math:`u_l^\\top(M y_l - \\theta_l y_l) = (\\lambda_l - \\theta_l)\\, u_l^\\top y_l` give

.. math::

    |c_l| \\le \\frac{r_i}{r_l}\\,\\frac{e_l}{\\theta_i - \\theta_l - e_l},
    \\qquad e_l \\ge \\lambda_l - \\theta_l \\ge 0,

tiny once :math:`\\theta_l` has converged (:math:`e_l \\approx r_l^2/\\text{gap}_l`). Taking
the Ritz value just below :math:`\\theta_i` into the sum moves a down to the bound of
:math:`\\lambda_{i+2}`: the gap is no longer the distance to the nearest neighbour (on the
digits MLP 0.011 for the 5th eigenvalue) but to the next one beyond it (0.09). This is done for
the last wanted value only (the one the gap limits), with the neighbour's error :math:`e_l`
from its gaps on both sides (so a neighbour close to :math:`\\theta_i`, whose eigenvector is
uncertain, adds a large term instead of a small one).

What is assumed (not provable from a Krylov space): the eigenvalues above the Ritz values used
are the ones those Ritz values approximate, i.e. :math:`\\lambda_p \\le \\theta_p + r_p` for
the ranks p whose bound enters (down to the second beyond the wanted ones; the same kind of
assumption as any gap estimate, one rank deeper). An eigenvalue that has not yet appeared among
the Ritz values (one of a close pair whose partner converged first, or a multiple one: a block
of size b resolves multiplicities up to b) breaks it; the run then stops with a Ritz value
standing for the next eigenvalue, and neither this bound, the gap theorem's, nor the residual
itself can tell. On the digits MLP (k = 5) this happens at tol >= 1e-2, before about 25
products, while the 5th eigenvalue has not yet separated from the 6th (2 % apart).
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


def _upper_bounds(theta: np.ndarray, res: np.ndarray, parallel: bool, count: int) -> np.ndarray:
    """Bounds on :math:`\\lambda_i - \\theta_i` for Ritz values sorted descending (top view).

    ``count`` Ritz values at the top are wanted; with ``parallel`` the last of them is refined
    by the two Ritz values below the wanted set (its neighbours beyond them would need the
    assumption :math:`\\lambda_p \\le \\theta_p + r_p` deeper than rank ``count + 2``), so no
    wanted value vouches for another and the assumption reaches one rank deeper than the
    unrefined bound's.
    """
    size = theta.size
    upper = theta + res
    # a[p] = max_{q > p}(theta_q + r_q): the bound of lambda_{p+1} (the gap estimate below p).
    below = np.full(size, -np.inf)
    below[:-1] = np.maximum.accumulate(upper[::-1])[::-1][1:]
    gap = theta - below  # inf for the last one: nothing below it is known, no bound
    finite = (gap > 0) & np.isfinite(gap)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        temple = np.where(finite, res**2 / np.where(finite, gap, 1.0), np.inf)
    bounds = np.minimum(res, temple)
    i = count - 1  # the last wanted one
    if not parallel or i < 0 or i > size - 3:
        return bounds
    deepest = min(count + 1, size - 1)  # index of the deepest rank whose assumption is used
    # A neighbour's error e_l from its gaps on both sides (the gap theorem, >= its one-sided
    # bound): a neighbour close to the Ritz value above it has an uncertain eigenvector, and
    # then adds a large term instead of vouching for the gap beyond it.
    nearest = np.abs(theta[:, None] - theta[None, :]) - res[None, :]
    np.fill_diagonal(nearest, np.inf)
    delta = nearest.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gap_theorem = np.where(delta > 0, res**2 / np.where(delta > 0, delta, 1.0), np.inf)
    neighbour = np.maximum(bounds, np.minimum(res, gap_theorem))
    nbr = np.arange(i + 1, deepest)  # neighbours i+1..i+m; a = below[i+m] (rank i+m+1)
    e_nbr = neighbour[nbr]
    dist = theta[i] - theta[nbr] - e_nbr  # <= theta_i - lambda_l
    usable = np.cumprod(dist > 0).astype(bool)
    if nbr.size and usable[0]:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # |c_l| <= (r_i / r_l) e_l / dist_l; c_l^2 (lambda_i - lambda_l)(lambda_l - a)
            # <= r_i^2 kappa_l (x + theta_i - theta_l)(theta_l + e_l - a), x <= bounds[i].
            kappa = np.where(
                usable & (res[nbr] > 0),
                (e_nbr / (res[nbr] * np.where(usable, dist, 1.0))) ** 2,
                0.0,
            )
        weight = kappa * (bounds[i] + theta[i] - theta[nbr])
        a = below[nbr]
        reach = np.maximum(0.0, (theta[nbr] + e_nbr)[None, :] - a[:, None])
        terms = np.tril(weight[None, :] * reach).sum(axis=1)  # row m-1: neighbours 1..m
        g = theta[i] - a
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            refined = np.where(
                usable & (g > 0), res[i] ** 2 * (1.0 + terms) / np.where(g > 0, g, 1.0), np.inf
            )
        bounds[i] = min(bounds[i], float(refined.min()))
    return bounds


def error_bounds(
    theta: np.ndarray,
    residuals: np.ndarray,
    *,
    which: str = "largest",
    k: int | None = None,
    parallel: bool = False,
) -> np.ndarray:
    """Bounds on :math:`|\\lambda_i - \\theta_i|` for every Ritz pair (module docstring).

    Counted from the wanted end (the i-th largest Ritz value against the i-th largest
    eigenvalue; from the bottom for ``which="smallest"``, and for ``"magnitude"`` from the top for
    :math:`\\theta \\ge 0`, from the bottom otherwise):

    .. math::

        \\lambda_i - \\theta_i \\le \\min\\Big(r_i,\\ \\frac{r_i^2}{\\theta_i - a_i}\\Big),
        \\qquad a_i = \\max_{l > i}(\\theta_l + r_l),

    (the residual where :math:`a_i \\ge \\theta_i`: an unresolved neighbour). With
    ``parallel=True`` (block size one: all residuals are multiples of one vector) and ``k``
    given, the last wanted pair (at each end) is refined by taking the Ritz value just below
    the wanted set into Temple's sum, so that its gap reaches the next one beyond; this uses
    :math:`\\lambda_p \\le \\theta_p + r_p` down to rank k + 2 (the unrefined bound: k + 1),
    and no wanted value vouches for another.

    Example:
        >>> float(error_bounds(np.array([2.0, 1.0]), np.array([1e-3, 0.1]))[0])  # 1e-6 / 0.9
        1.1111111111111112e-06
    """
    theta = np.asarray(theta, dtype=np.float64)
    res = np.asarray(residuals, dtype=np.float64)
    if theta.size < 2:
        return res.copy()
    wanted = order_wanted(theta, which)[: theta.size if k is None else k]
    bounds = np.full(theta.size, np.inf)
    for sign in (1.0, -1.0):
        if (which == "largest" and sign < 0) or (which == "smallest" and sign > 0):
            continue
        order = np.argsort(-sign * theta, kind="stable")
        if which == "magnitude":
            side = theta[wanted] >= 0 if sign > 0 else theta[wanted] < 0
            count = int(side.sum())
        else:
            count = wanted.size
        view = np.empty_like(res)
        view[order] = _upper_bounds(sign * theta[order], res[order], parallel, count)
        if which == "magnitude":
            mine = theta >= 0 if sign > 0 else theta < 0
            bounds = np.where(mine, view, bounds)
        else:
            bounds = view
    return bounds


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
    block: torch.Tensor, basis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gram-Schmidt of the rows of ``block`` (b, P) against the rows of ``basis`` (twice), then QR.

    Returns ``(coefficients, q, r, scale)`` with ``block = coefficients^T basis + r^T q`` (q:
    orthonormal rows), all on the block's device, without a host synchronisation (the caller
    copies what it needs to the host once per step). ``scale`` is ``||block||``. Rows are the
    layout of the basis (:func:`thick_restart_lanczos`): ``basis @ v`` and ``c^T basis`` read
    contiguous memory. For one row the QR is the norm (no LAPACK call, which on CUDA costs
    host round trips of its own). Directions lost to an invariant subspace are replaced by
    the caller (:func:`_replace_lost`), which sees ``r`` on the host.
    """
    scale = torch.linalg.vector_norm(block)
    coeff = basis @ block.T  # (j, b)
    block = block - coeff.T @ basis
    again = basis @ block.T
    block = block - again.T @ basis
    coeff = coeff + again
    if block.shape[0] == 1:
        norm = torch.linalg.vector_norm(block)
        q = block / torch.where(norm > 0, norm, torch.ones_like(norm))
        r = norm.reshape(1, 1)
    else:
        q_cols, r = torch.linalg.qr(block.T)
        q = q_cols.T
    return coeff, q, r, scale


def _lost(r: np.ndarray, scale: float, dtype: torch.dtype) -> np.ndarray:
    """Rows of the QR whose direction was lost to an invariant subspace (tiny diagonal of r)."""
    return np.abs(np.diagonal(r)) <= 1e3 * float(torch.finfo(dtype).eps) * (scale or 1.0)


def _replace_lost(
    q: torch.Tensor,
    r: np.ndarray,
    lost: np.ndarray,
    basis: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, np.ndarray]:
    """Replace the lost rows of ``q`` by fresh random ones orthogonal to everything.

    Their rows of ``r`` become zero: ``block = c^T basis + r^T q`` still holds.
    """
    fresh = draw_probes(
        q.shape[1], int(lost.sum()), generator=generator, probe="gaussian", dtype=q.dtype
    ).to(q.device)
    mask = torch.as_tensor(lost, device=q.device)
    full = torch.cat([basis, q[~mask]], dim=0)
    fresh = fresh.T
    for _ in range(2):
        fresh = fresh - (fresh @ full.T) @ full
    fresh = torch.linalg.qr(fresh.T)[0].T
    q = q.clone()
    q[mask] = fresh
    r = r.copy()
    r[lost, :] = 0.0
    return q, r


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
    # Rows are basis vectors: the projections read contiguous memory (at P = 1.15M the
    # column layout made them 2-3x slower, benchmarks/results/solver_overhead_cpu.md).
    basis = torch.empty((max_dim, size), dtype=dtype, device=device)
    projected = np.zeros((max_dim, max_dim))
    start = draw_probes(size, b, generator=generator, probe="gaussian", dtype=dtype)
    _, current, r0, scale0 = _orthonormalise(start.T.to(device), basis[:0])
    r0_host = r0.double().cpu().numpy()
    lost = _lost(r0_host, float(scale0), dtype)
    if lost.any():
        current, _ = _replace_lost(current, r0_host, lost, basis[:0], generator)
    j = 0  # rows of the basis in use
    matvecs, restarts, norm_estimate = 0, 0, 0.0
    while True:
        basis[j : j + b] = current
        product = (op @ current.T.contiguous()).T  # (b, P)
        matvecs += b
        coeff, nxt, r, scale = _orthonormalise(product, basis[: j + b])
        # One host synchronisation per step: the finite flag, the scale and the coefficients.
        finite = torch.isfinite(product).all()
        parts = (finite, scale, coeff, r)
        packed = torch.cat([part.double().reshape(-1) for part in parts]).cpu()
        host = packed.numpy()
        if host[0] != 1:
            raise NonFiniteError(
                f"top_eigenpairs: the product op @ V after {matvecs} columns contains NaN or inf; "
                "check that the operator is finite at these weights (e.g. the loss is finite)"
            )
        c = host[2 : 2 + (j + b) * b].reshape(j + b, b)
        r_np = host[2 + (j + b) * b :].reshape(b, b)
        lost = _lost(r_np, float(host[1]), dtype)
        if lost.any():
            nxt, r_np = _replace_lost(nxt, r_np, lost, basis[: j + b], generator)
        projected[: j + b, j : j + b] = c
        projected[j : j + b, : j + b] = c.T
        j += b
        h = projected[:j, :j]
        theta, rot = np.linalg.eigh((h + h.T) / 2)
        norm_estimate = max(norm_estimate, float(np.abs(theta).max()))
        residuals = np.linalg.norm(r_np @ rot[j - b : j, :], axis=0)
        bounds = error_bounds(theta, residuals, which=which, k=k, parallel=b == 1)
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
                vectors=(chosen.T @ basis[:j]).T,
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
            basis[:keep] = rot_t.T @ basis[:j]
            projected[:] = 0.0
            projected[:keep, :keep] = np.diag(theta[chosen])
            j = keep
            restarts += 1
        current = nxt
