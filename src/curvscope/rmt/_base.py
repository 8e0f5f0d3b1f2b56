"""The common interface of spectral laws, moment/free-cumulant conversion and quadrature helpers.

Conventions (theory.md §0): laws are probability measures; the Stieltjes transform is
``G(z) = ∫ rho(t) / (z - t) dt`` (``G ~ 1/z`` at infinity, ``Im G < 0`` for ``Im z > 0``); an atom
of mass ``a`` at ``x0`` adds ``a / (z - x0)``; the density is ``-Im G(x + i0) / pi``.
"""

from __future__ import annotations

import abc
import itertools
from functools import cached_property
from typing import Any

import numpy as np

from curvscope._validate import check_int, is_int
from curvscope.errors import InputError

__all__ = [
    "SpectralLaw",
    "as_generator",
    "free_cumulants_from_moments",
    "moments_from_free_cumulants",
]

# Gauss-Legendre rule on [-1, 1], reused by every integral of a density over a support interval.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_PANELS = 16


def as_generator(generator: Any) -> np.random.Generator:
    """Accept a ``numpy.random.Generator`` or an int seed; anything else is an error."""
    if isinstance(generator, np.random.Generator):
        return generator
    if is_int(generator):
        return np.random.default_rng(int(generator))
    raise InputError(
        f"generator must be a numpy.random.Generator or an int seed; got {type(generator).__name__}. "
        "Pass e.g. generator=numpy.random.default_rng(0)"
    )


def moments_from_free_cumulants(kappa: np.ndarray, order: int) -> np.ndarray:
    """Moments ``m_0..m_order`` from free cumulants ``kappa[1..order]`` (theory.md §0).

    .. math:: M(z) = 1 + \\sum_{s \\ge 1} \\kappa_s z^s M(z)^s, \\quad M(z) = \\sum_k m_k z^k.

    Args:
        kappa: array with ``kappa[s]`` the s-th free cumulant (``kappa[0]`` is ignored).
        order: highest moment wanted.
    """
    kappa = np.asarray(kappa, dtype=float)
    m = np.zeros(order + 1)
    m[0] = 1.0
    for n in range(1, order + 1):
        total = 0.0
        power = np.array([1.0])  # truncated series of M(z)^s, built up in s
        for s in range(1, n + 1):
            power = np.convolve(power, m[:n])[:n]
            if s < kappa.size and n - s < power.size:
                total += kappa[s] * power[n - s]
        m[n] = total
    return m


def free_cumulants_from_moments(moments: np.ndarray, order: int) -> np.ndarray:
    """Invert :func:`moments_from_free_cumulants`: ``kappa_0..kappa_order`` (``kappa_0 = 0``).

    ``m_n = kappa_n + (terms in kappa_1..kappa_{n-1})``, so each cumulant follows from the moments
    and the cumulants below it.
    """
    moments = np.asarray(moments, dtype=float)
    kappa = np.zeros(order + 1)
    for n in range(1, order + 1):
        lower = moments_from_free_cumulants(kappa[:n], n)[n]
        kappa[n] = moments[n] - lower
    return kappa


class SpectralLaw(abc.ABC):
    """A probability law of eigenvalues: density, atoms, Stieltjes transform, moments, sampling.

    Subclasses are frozen dataclasses. They implement :meth:`stieltjes`, :meth:`pdf`,
    :attr:`atoms`, :attr:`intervals` and either :meth:`free_cumulants` or :meth:`moments`.
    """

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def stieltjes(self, z: Any) -> np.ndarray:
        """``G(z) = ∫ dmu(t) / (z - t)`` for complex ``z`` with ``Im z > 0`` (vectorised)."""

    @abc.abstractmethod
    def pdf(self, x: Any) -> np.ndarray:
        """Density of the continuous part at real ``x`` (atoms are in :attr:`atoms`)."""

    @property
    @abc.abstractmethod
    def atoms(self) -> tuple[tuple[float, float], ...]:
        """Point masses as ``((location, mass), ...)``; empty if there are none."""

    @property
    @abc.abstractmethod
    def intervals(self) -> tuple[tuple[float, float], ...]:
        """Disjoint intervals carrying the continuous part, in increasing order."""

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """A random symmetric ``n x n`` matrix whose spectrum tends to this law as n grows."""
        raise NotImplementedError(f"{type(self).__name__} has no matrix ensemble")

    def ensemble_size(self, n: int) -> int:
        """The smallest size ``>= n`` that :meth:`sample_matrix` accepts (``n`` itself here)."""
        return n

    # ------------------------------------------------------------------ derived
    @property
    def support(self) -> tuple[float, float]:
        """The smallest interval ``(lo, hi)`` holding the whole law (atoms included)."""
        ends = [a for a, _ in self.intervals] + [b for _, b in self.intervals]
        ends += [loc for loc, _ in self.atoms]
        return float(min(ends)), float(max(ends))

    @property
    def continuous_mass(self) -> float:
        """``1 - sum(atom masses)``."""
        return 1.0 - sum(m for _, m in self.atoms)

    def stieltjes_derivative(self, z: Any) -> np.ndarray:
        """``G'(z)`` by a central difference (G is analytic off the real axis)."""
        z = np.asarray(z, dtype=complex)
        h = 1e-5 * np.maximum(np.abs(z.imag), 1e-12) + 0j
        return (self.stieltjes(z + h) - self.stieltjes(z - h)) / (2 * h)

    def free_cumulants(self, k: int) -> np.ndarray:
        """Free cumulants ``kappa_0..kappa_k`` (``kappa_0 = 0``; theory.md §0)."""
        k = check_int("the moment order k", k, minimum=0)
        return free_cumulants_from_moments(self.moments(k), k)

    def moments(self, k: int) -> np.ndarray:
        """Moments ``m_0..m_k`` of the law (``m_0 = 1``), ``m_j = ∫ t^j dmu(t)``."""
        k = check_int("the moment order k", k, minimum=0)
        return moments_from_free_cumulants(self.free_cumulants(k), k)

    def mass_between(self, lo: float, hi: float) -> float:
        """``mu((lo, hi))`` of the continuous part by composite Gauss-Legendre on each interval.

        The substitution ``t = a + (b - a)(1 - cos u)/2`` removes the square-root edges of the
        density; the u-range is split into 16 panels of 64 nodes, with a break at 0, where the
        components' atoms can leave a non-smooth point inside the support (001 §2.6).
        """
        total = 0.0
        for a, b in self.intervals:
            lo_c, hi_c = max(lo, a), min(hi, b)
            if hi_c <= lo_c:
                continue
            cuts = [lo_c] + ([0.0] if lo_c < 0.0 < hi_c else []) + [hi_c]
            u_cuts = np.arccos(np.clip(1 - 2 * (np.array(cuts) - a) / (b - a), -1, 1))
            for u0, u1 in itertools.pairwise(u_cuts):
                edges = np.linspace(u0, u1, _PANELS + 1)
                mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
                u = (mid[:, None] + half[:, None] * _GL_X).ravel()
                t = a + (b - a) * (1 - np.cos(u)) / 2
                jac = (b - a) * np.sin(u) / 2
                w = (half[:, None] * _GL_W).ravel()
                total += float(np.sum(w * self.pdf(t) * jac))
        return total

    @cached_property
    def _cdf_table(self) -> list[tuple[np.ndarray, np.ndarray]]:
        tables = []
        u = np.linspace(0.0, np.pi, 4097)
        for a, b in self.intervals:
            t = a + (b - a) * (1 - np.cos(u)) / 2
            f = self.pdf(t) * (b - a) * np.sin(u) / 2
            # Simpson on the smooth integrand in u (pairs of panels), then cumulative trapezoid
            # for the intermediate points; the end value is renormalised to the Simpson total.
            cum = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(u))])
            simpson = (u[1] - u[0]) / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
            if cum[-1] > 0:
                cum *= simpson / cum[-1]
            tables.append((t, cum))
        return tables

    def cdf(self, x: Any) -> np.ndarray:
        """``mu((-inf, x])`` including atoms (tabulated on each support interval)."""
        x = np.asarray(x, dtype=float)
        out = np.zeros_like(x)
        for loc, mass in self.atoms:
            out = out + mass * (x >= loc)
        for t, cum in self._cdf_table:
            out = out + np.interp(x, t, cum, left=0.0, right=cum[-1])
        return out
