"""Closed-form spectral laws: Wigner's semicircle and Marchenko-Pastur (theory.md §2.2-2.3).

Both are frozen dataclasses implementing :class:`~curvscope.rmt._base.SpectralLaw`: ``pdf``,
``cdf``, ``support``, ``atoms``, ``moments(k)``, ``stieltjes(z)`` and ``sample_matrix(n, generator=)``
drawing a finite matrix of the same ensemble and normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from curvscope._validate import check_int, check_positive
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.rmt._base import SpectralLaw, as_generator

__all__ = ["MarchenkoPastur", "Semicircle", "marchenko_pastur", "semicircle"]


@savable
@dataclass(frozen=True)
class Semicircle(SpectralLaw):
    """Wigner's semicircle law of radius ``2 sigma`` (001 eq. 6, theory.md §2.2).

    .. math:: \\rho_{SC}(\\lambda) = \\frac{\\sqrt{4\\sigma^2 - \\lambda^2}}{2\\pi\\sigma^2},
              \\quad |\\lambda| \\le 2\\sigma, \\qquad R(w) = \\sigma^2 w.

    It is the limit of an ``n x n`` GOE matrix with entries of variance ``sigma^2 / n``
    (erratum, theory.md §2.2: the paper omits the ``1/n``).

    Attributes:
        sigma: the scale; the second moment is ``sigma**2``.
    """

    sigma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", check_positive("sigma", self.sigma))

    @property
    def atoms(self) -> tuple[tuple[float, float], ...]:
        return ()

    @property
    def intervals(self) -> tuple[tuple[float, float], ...]:
        return ((-2 * self.sigma, 2 * self.sigma),)

    def pdf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.sqrt(np.clip(4 * self.sigma**2 - x**2, 0, None)) / (2 * np.pi * self.sigma**2)

    def cdf(self, x: Any) -> np.ndarray:
        """Closed form ``1/2 + (t sqrt(1 - t^2) + arcsin t)/pi``, ``t = x / (2 sigma)``."""
        t = np.clip(np.asarray(x, dtype=float) / (2 * self.sigma), -1, 1)
        return 0.5 + (t * np.sqrt(1 - t * t) + np.arcsin(t)) / np.pi

    def stieltjes(self, z: Any) -> np.ndarray:
        """``G(z) = (z - sqrt(z - 2 sigma) sqrt(z + 2 sigma)) / (2 sigma^2)`` (principal roots)."""
        z = np.asarray(z, dtype=complex)
        s = self.sigma
        return (z - np.sqrt(z - 2 * s) * np.sqrt(z + 2 * s)) / (2 * s**2)

    def stieltjes_derivative(self, z: Any) -> np.ndarray:
        # differentiate sigma^2 G^2 - z G + 1 = 0
        g = self.stieltjes(z)
        return g / (2 * self.sigma**2 * g - np.asarray(z, dtype=complex))

    def free_cumulants(self, k: int) -> np.ndarray:
        k = check_int("the moment order k", k, minimum=0)
        kappa = np.zeros(k + 1)
        if k >= 2:
            kappa[2] = self.sigma**2
        return kappa

    def moments(self, k: int) -> np.ndarray:
        """Catalan numbers: ``m_{2j} = C_j sigma^{2j}``, odd moments vanish."""
        k = check_int("the moment order k", k, minimum=0)
        m = np.zeros(k + 1)
        for j in range(0, k // 2 + 1):
            m[2 * j] = math.comb(2 * j, j) / (j + 1) * self.sigma ** (2 * j)
        return m

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """GOE: symmetric, off-diagonal entries ``N(0, sigma^2/n)``, diagonal ``N(0, 2 sigma^2/n)``."""
        n = check_int("the matrix size n", n, minimum=2, expected="an int >= 2")
        rng = as_generator(generator)
        a = rng.standard_normal((n, n)) * (self.sigma / math.sqrt(n))
        return (a + a.T) / math.sqrt(2)


@savable
@dataclass(frozen=True)
class MarchenkoPastur(SpectralLaw):
    """The Marchenko-Pastur law with ratio ``phi`` and scale ``s`` (001 eqs. 7-8, theory.md §2.3).

    .. math:: \\rho(\\lambda) = \\frac{\\sqrt{(\\lambda - \\ell_-)(\\ell_+ - \\lambda)}}
              {2\\pi s \\phi \\lambda}, \\quad \\ell_\\pm = s(1 \\pm \\sqrt{\\phi})^2,
              \\qquad R(w) = \\frac{s}{1 - s\\phi w},

    plus an atom of mass ``1 - 1/phi`` at 0 when ``phi > 1``. It is the limit of ``X X^T`` with
    ``X`` of shape ``n x p``, ``phi = n/p``, entries of variance ``s/p``.

    Erratum (notation, theory.md §2.3): the paper calls the scale ``sigma`` and writes entries
    ``N(0, sigma^2/p)``, but uses it as a variance-type scale: ``s`` is the mean eigenvalue.

    Attributes:
        phi: aspect ratio ``n/p`` (> 0).
        scale: ``s``, the mean eigenvalue (the paper's ``sigma``).
    """

    phi: float
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "phi", check_positive("phi", self.phi))
        object.__setattr__(self, "scale", check_positive("scale", self.scale))

    @property
    def edges(self) -> tuple[float, float]:
        """``(l_-, l_+) = s (1 -/+ sqrt(phi))^2``."""
        r = math.sqrt(self.phi)
        return self.scale * (1 - r) ** 2, self.scale * (1 + r) ** 2

    @property
    def atoms(self) -> tuple[tuple[float, float], ...]:
        return ((0.0, 1.0 - 1.0 / self.phi),) if self.phi > 1 else ()

    @property
    def intervals(self) -> tuple[tuple[float, float], ...]:
        return (self.edges,)

    def pdf(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        lo, hi = self.edges
        out = np.zeros_like(x)
        inside = (x > lo) & (x < hi)
        xi = x[inside]
        out[inside] = np.sqrt((xi - lo) * (hi - xi)) / (2 * np.pi * self.scale * self.phi * xi)
        return out

    def stieltjes(self, z: Any) -> np.ndarray:
        """``G(z) = [z - s(1 - phi) - sqrt(z - l_+) sqrt(z - l_-)] / (2 s phi z)`` (atom included)."""
        z = np.asarray(z, dtype=complex)
        lo, hi = self.edges
        s, phi = self.scale, self.phi
        return (z - s * (1 - phi) - np.sqrt(z - hi) * np.sqrt(z - lo)) / (2 * s * phi * z)

    def stieltjes_derivative(self, z: Any) -> np.ndarray:
        # differentiate s phi z G^2 - (z - s(1 - phi)) G + 1 = 0
        z = np.asarray(z, dtype=complex)
        g = self.stieltjes(z)
        s, phi = self.scale, self.phi
        return (g - s * phi * g**2) / (2 * s * phi * z * g - (z - s * (1 - phi)))

    def free_cumulants(self, k: int) -> np.ndarray:
        """``kappa_j = s^j phi^(j-1)`` (expansion of ``R(w) = s/(1 - s phi w)``)."""
        k = check_int("the moment order k", k, minimum=0)
        kappa = np.zeros(k + 1)
        j = np.arange(1, k + 1)
        kappa[1:] = self.scale**j * self.phi ** (j - 1.0)
        return kappa

    def moments(self, k: int) -> np.ndarray:
        """Narayana polynomials: ``m_j = s^j sum_r phi^r/(r+1) C(j, r) C(j-1, r)``."""
        k = check_int("the moment order k", k, minimum=0)
        m = np.ones(k + 1)
        for j in range(1, k + 1):
            m[j] = self.scale**j * sum(
                self.phi**r / (r + 1) * math.comb(j, r) * math.comb(j - 1, r) for r in range(j)
            )
        return m

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """``X X^T`` with ``X`` of shape ``n x p``, ``p = round(n/phi)``, entries ``N(0, s/p)``."""
        n = check_int("the matrix size n", n, minimum=2, expected="an int >= 2")
        rng = as_generator(generator)
        p = max(1, round(n / self.phi))
        x = rng.standard_normal((n, p)) * math.sqrt(self.scale / p)
        return x @ x.T


def semicircle(sigma: float) -> Semicircle:
    """The semicircle law of radius ``2 sigma`` (see :class:`Semicircle`).

    Example:
        >>> from curvscope.rmt import semicircle
        >>> law = semicircle(1.0)
        >>> round(float(law.cdf(0.0)), 6), law.support
        (0.5, (-2.0, 2.0))
    """
    return Semicircle(sigma)


def marchenko_pastur(phi: float, scale: float | None = None, *, sigma: float | None = None):
    """The Marchenko-Pastur law of ratio ``phi`` and mean eigenvalue ``scale`` (default 1).

    ``sigma=`` is accepted as the paper's name of the same scale (theory.md §2.3: it is a
    variance-type scale, the mean eigenvalue, not a standard deviation); give one of the two.

    Example:
        >>> from curvscope.rmt import marchenko_pastur
        >>> law = marchenko_pastur(2.0)
        >>> law.atoms
        ((0.0, 0.5),)
    """
    return MarchenkoPastur(phi, _scale_arg(scale, sigma))


def _scale_arg(scale: float | None, sigma: float | None) -> float:
    if scale is not None and sigma is not None:
        raise InputError(
            f"got both scale={scale!r} and sigma={sigma!r}; they name the same MP scale "
            "(the mean eigenvalue); give only one"
        )
    value = scale if scale is not None else sigma
    return 1.0 if value is None else value
