"""Fit of the small-index law ``alpha = alpha0 |eps - eps_c|^(3/2)`` (001 eq. 20, §6.4).

Near ``eps_c`` the lower spectral edge crosses zero linearly and the density vanishes like a
square root, so the index grows with exponent 3/2 (theory.md §2.5). The paper fits this law to
measured (energy, index) pairs of critical points found by gradient-norm descent (theory.md §2.8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from curvscope.errors import InputError
from curvscope.persistence import savable

__all__ = ["IndexScalingFit", "fit_index_scaling"]


@savable
@dataclass(frozen=True, eq=False)
class IndexScalingFit:
    """Least-squares fit of ``alpha = alpha0 (eps - eps_c)_+^p``.

    Attributes:
        alpha0, critical_energy, exponent: fitted values (``exponent`` fixed at 1.5 unless fitted).
        alpha0_stderr, critical_energy_stderr, exponent_stderr: standard errors from the
            covariance (0 for a fixed exponent); absolute when ``alpha_stderr`` was given, else
            scaled by the residual variance.
        covariance: covariance of the fitted parameters (alpha0, eps_c[, exponent]).
        chi2: sum of squared (weighted) residuals; num_points: number of pairs used.
    """

    alpha0: float
    critical_energy: float
    exponent: float
    alpha0_stderr: float
    critical_energy_stderr: float
    exponent_stderr: float
    covariance: np.ndarray
    chi2: float
    num_points: int

    def predict(self, eps: Any) -> np.ndarray:
        """The fitted ``alpha(eps)``."""
        e = np.asarray(eps, dtype=float)
        return self.alpha0 * np.clip(e - self.critical_energy, 0, None) ** self.exponent


def fit_index_scaling(
    eps: Any,
    alpha: Any,
    *,
    alpha_stderr: Any = None,
    fit_exponent: bool = False,
) -> IndexScalingFit:
    """Fit ``alpha0 |eps - eps_c|^{3/2}`` to measured (energy, index) pairs (001 eq. 20).

    .. math:: \\alpha(\\epsilon) \\approx \\alpha_0\\,|\\epsilon - \\epsilon_c|^{3/2},
       \\quad \\epsilon > \\epsilon_c.

    Args:
        eps: energies of the critical points.
        alpha: their indices (fraction of negative eigenvalues); only pairs with ``alpha > 0``
            carry information on the power law and are used.
        alpha_stderr: standard errors of ``alpha`` (e.g. ``sqrt(alpha(1-alpha)/P)`` binned), used
            as weights; the reported uncertainties are then absolute.
        fit_exponent: also fit the exponent (checks the 3/2 law) instead of fixing it.

    Returns:
        :class:`IndexScalingFit` with values, standard errors and covariance.
    """
    e = np.asarray(eps, dtype=float).reshape(-1)
    a = np.asarray(alpha, dtype=float).reshape(-1)
    if e.shape != a.shape:
        raise InputError(f"eps and alpha must have the same length; got {e.size} and {a.size}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))):
        raise InputError("eps and alpha must be finite numbers")
    err = None
    if alpha_stderr is not None:
        err = np.broadcast_to(np.asarray(alpha_stderr, dtype=float), a.shape).copy()
        if np.any(~(err > 0)):
            raise InputError("alpha_stderr must be positive for every pair")
    keep = a > 0
    n_par = 3 if fit_exponent else 2
    if keep.sum() <= n_par:
        raise InputError(
            f"need more than {n_par} pairs with alpha > 0 to fit {n_par} parameters; got {int(keep.sum())}"
        )
    e, a = e[keep], a[keep]
    err = err[keep] if err is not None else None

    def model(x: np.ndarray, alpha0: float, eps_c: float, p: float = 1.5) -> np.ndarray:
        return alpha0 * np.clip(x - eps_c, 0, None) ** p

    span = float(e.max() - e.min()) or 1.0
    # start eps_c just below the smallest energy with alpha > 0, alpha0 from the largest point
    c0 = float(e.min()) - 0.1 * span
    a0 = float(a[np.argmax(e)] / (e.max() - c0) ** 1.5)
    p0 = [a0, c0] + ([1.5] if fit_exponent else [])
    lower = [0.0, -np.inf] + ([0.1] if fit_exponent else [])
    upper = [np.inf, float(e.min())] + ([10.0] if fit_exponent else [])
    func = model if fit_exponent else (lambda x, alpha0, eps_c: model(x, alpha0, eps_c))
    popt, pcov = optimize.curve_fit(
        func,
        e,
        a,
        p0=p0,
        sigma=err,
        absolute_sigma=err is not None,
        bounds=(lower, upper),
        maxfev=20000,
    )
    resid = (a - func(e, *popt)) / (err if err is not None else 1.0)
    se = np.sqrt(np.clip(np.diag(pcov), 0, None))
    return IndexScalingFit(
        alpha0=float(popt[0]),
        critical_energy=float(popt[1]),
        exponent=float(popt[2]) if fit_exponent else 1.5,
        alpha0_stderr=float(se[0]),
        critical_energy_stderr=float(se[1]),
        exponent_stderr=float(se[2]) if fit_exponent else 0.0,
        covariance=np.asarray(pcov),
        chi2=float(np.sum(resid**2)),
        num_points=int(e.size),
    )
