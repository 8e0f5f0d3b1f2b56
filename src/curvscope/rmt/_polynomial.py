"""Laws whose Stieltjes transform is a root of a polynomial with coefficients linear in z.

``R(G) + 1/G = z`` with a rational R transform gives ``poly_z(G) = 0`` (001 eqs. 18, 28, 30).
Roots are found for a whole grid at once as eigenvalues of batched companion matrices
(theory.md §2.4). Root selection:

* on the real axis (density): if the polynomial has a complex-conjugate pair of roots, the
  density is ``|Im G| / pi`` of that pair, else 0 (theory.md §2.4, "pair rule");
* off the axis (Stieltjes transform, ``Im z > 0``): the physical root is the one continuous from
  ``G ~ 1/z`` at ``|z| -> inf``; it is tracked down a vertical path from far above ``z``.
"""

from __future__ import annotations

import abc
from functools import cached_property
from typing import Any

import numpy as np

from curvscope.errors import InputError
from curvscope.rmt._base import SpectralLaw

__all__ = ["PolynomialLaw", "roots_batch"]


def roots_batch(coeffs: np.ndarray) -> np.ndarray:
    """Roots of many polynomials at once; ``coeffs`` has shape ``(n, d+1)``, highest degree first.

    Leading columns that vanish for every row (a degree drop, e.g. eps = 0) are removed.
    """
    c = np.asarray(coeffs, dtype=complex)
    while c.shape[1] > 2 and np.all(c[:, 0] == 0):
        c = c[:, 1:]
    monic = c[:, 1:] / c[:, :1]
    n, d = monic.shape
    companion = np.zeros((n, d, d), dtype=complex)
    companion[:, 0, :] = -monic
    idx = np.arange(d - 1)
    companion[:, idx + 1, idx] = 1.0
    return np.linalg.eigvals(companion)


class PolynomialLaw(SpectralLaw):
    """Mixin for laws defined by a polynomial equation in G (see the module docstring)."""

    @abc.abstractmethod
    def _coefficients(self, z: np.ndarray) -> np.ndarray:
        """``(n, d+1)`` coefficients of the polynomial in G at each z, highest degree first."""

    @abc.abstractmethod
    def _scan_bounds(self) -> tuple[float, float]:
        """An interval certainly holding the continuous part of the law."""

    def _real_roots_input(self, x: np.ndarray) -> np.ndarray:
        # The G^d coefficient may vanish at x = 0 (eqs. 28, 30); step off it by a hair.
        lo, hi = self._scan_bounds()
        return np.where(x == 0.0, 1e-13 * (hi - lo), x)

    def _pair_imag(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        flat = self._real_roots_input(x.reshape(-1))
        out = np.empty(flat.size)
        for start in range(0, flat.size, 8192):
            r = roots_batch(self._coefficients(flat[start : start + 8192] + 0j))
            out[start : start + 8192] = np.max(np.abs(r.imag), axis=1)
        return out.reshape(x.shape)

    def pdf(self, x: Any) -> np.ndarray:
        """``|Im G| / pi`` of the complex-conjugate pair of roots at real x (0 if none)."""
        return self._pair_imag(np.asarray(x, dtype=float)) / np.pi

    def _has_pair(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self._scan_bounds()
        # roots near a double root carry ~sqrt(machine eps) noise; require a clear pair
        return self._pair_imag(x) > 1e-9 / (hi - lo)

    @cached_property
    def _edges(self) -> tuple[tuple[float, float], ...]:
        lo, hi = self._scan_bounds()
        # A uniform scan offset by an irrational fraction of the step (never lands on x = 0),
        # merged with a geometric scan of both sides of 0: a uniform step alone is
        # (hi - lo) / 20000 and misses narrow pieces of support far smaller than the scan range,
        # such as the bump that H1 makes of H0's atom at 0 when phi >> 1 (at phi = 1e5 the bump
        # is ~1 wide and the range ~1e5). The geometric scan resolves any piece of support whose
        # width is more than ~1% of its distance from 0, down to 1e-9 of the range.
        span = hi - lo
        uniform = np.linspace(lo, hi, 20001) + 0.318309886 * span / 20000
        ladder = np.geomspace(1e-9 * span, span, 4001) * (1 + 0.318309886e-3)
        xs = np.unique(np.concatenate([uniform, -ladder[ladder < -lo], ladder[ladder < hi]]))
        on = self._has_pair(xs)
        flips = np.nonzero(on[1:] != on[:-1])[0]
        a, b = xs[flips], xs[flips + 1]
        state = on[flips]
        for _ in range(64):  # vectorised bisection of every sign change
            mid = 0.5 * (a + b)
            same = self._has_pair(mid) == state
            a = np.where(same, mid, a)
            b = np.where(same, b, mid)
        edges = 0.5 * (a + b)
        if on[0] or on[-1]:
            raise RuntimeError("the scan interval does not contain the support (internal error)")
        return tuple((float(edges[i]), float(edges[i + 1])) for i in range(0, edges.size - 1, 2))

    @property
    def intervals(self) -> tuple[tuple[float, float], ...]:
        """Support intervals of the density: sign changes of "has a conjugate pair", bisected."""
        return self._edges

    def stieltjes(self, z: Any) -> np.ndarray:
        """Physical root for ``Im z > 0``, tracked from ``G ~ 1/z`` far above z."""
        z = np.asarray(z, dtype=complex)
        flat = z.reshape(-1)
        if np.any(flat.imag <= 0):
            raise InputError(
                f"{type(self).__name__}.stieltjes needs Im z > 0 at every point; got Im z <= 0"
            )
        lo, hi = self._scan_bounds()
        top = 1e4 * max(hi - lo, float(np.max(np.abs(flat.real))), 1.0)
        steps = int(np.ceil(np.log(top / flat.imag.min()) / np.log(1.2))) + 1
        ratio = (flat.imag / top) ** (1.0 / steps)
        y = np.full(flat.size, top)
        zz = flat.real + 1j * y
        roots = roots_batch(self._coefficients(zz))
        g = roots[np.arange(flat.size), np.argmin(np.abs(roots - 1 / zz[:, None]), axis=1)]
        for _ in range(steps):
            y = y * ratio
            zz = flat.real + 1j * y
            roots = roots_batch(self._coefficients(zz))
            g = roots[np.arange(flat.size), np.argmin(np.abs(roots - g[:, None]), axis=1)]
        return g.reshape(z.shape)
