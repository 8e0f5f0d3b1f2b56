"""Pennington & Bahri (paper 001): Hessian spectra at critical points of energy eps.

Two models of ``H = H0 + H1`` with ``H0``, ``H1`` free (theory.md §2.4-2.6):

* ``"wishart+wigner"`` (eqs. 15-18): ``H0 ~ MP(phi, s)``, ``H1 ~ SC(sqrt(2 eps))``;
* ``"improved"`` (eqs. 23-30): ``H0 ~ MP(phi, s)``, ``H1`` the product-Wishart law (eqs. 27-28).

The density solves a polynomial in G (cubic 18 generalised to scale s, quartic 30); the index
``alpha`` (eq. 19) is the mass below 0; ``eps_c`` (eqs. 21, 32) in the spec's stable closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from curvscope._validate import check_int, check_positive
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.rmt._base import SpectralLaw, as_generator
from curvscope.rmt._polynomial import PolynomialLaw
from curvscope.rmt.laws import MarchenkoPastur, Semicircle, _scale_arg

__all__ = [
    "MODELS",
    "CriticalEnergyCurve",
    "IndexCurve",
    "PenningtonBahri",
    "ProductWishart",
    "critical_energy",
    "critical_energy_curve",
    "index",
    "index_curve",
    "pennington_bahri",
    "product_wishart",
]

Model = Literal["wishart+wigner", "improved"]
MODELS: tuple[str, ...] = ("wishart+wigner", "improved")


def _check_model(model: Any) -> str:
    if model not in MODELS:
        raise InputError(f"model must be one of {MODELS}; got {model!r}")
    return model


def _energy(eps: Any) -> float:
    try:
        out = float(eps)
    except (TypeError, ValueError):
        raise InputError(f"eps (energy per output) must be a number >= 0; got {eps!r}") from None
    if not math.isfinite(out) or out < 0:
        raise InputError(f"eps (energy per output) must be a finite number >= 0; got {eps!r}")
    return out


@savable
@dataclass(frozen=True)
class ProductWishart(PolynomialLaw):
    """Spectrum of the residual Hessian ``H1`` of the improved model (001 eqs. 27-28, §2.6).

    ``H1``'s eigenvalues are ``±`` the singular values of ``A = ehat xhat^T / m``
    (``ehat ~ N(0, 2 eps)``, ``xhat ~ N(0, 1)``, both ``n x m/2``, ``phi = 2n/m``), so
    ``rho_H1(lambda) = |lambda| rho_M(lambda^2)`` with ``M = A A^T`` (27), and

    .. math:: R_{H_1}(w) = \\frac{\\epsilon\\phi w}{2 - \\epsilon\\phi^2 w^2}
       \\;\\Rightarrow\\; z\\epsilon\\phi^2 G^3 + \\epsilon\\phi(1-\\phi)G^2 - 2zG + 2 = 0,

    free cumulants ``kappa_2 = eps phi/2``, ``kappa_4 = eps^2 phi^3/4``, odd ones 0. For
    ``phi > 1`` ``A`` has rank ``n/phi < n``: an atom of mass ``1 - 1/phi`` at 0.
    """

    eps: float
    phi: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", check_positive("eps", self.eps))
        object.__setattr__(self, "phi", check_positive("phi", self.phi))

    def _coefficients(self, z: np.ndarray) -> np.ndarray:
        e, p = self.eps, self.phi
        one = np.ones_like(z)
        return np.stack([z * e * p**2, e * p * (1 - p) * one, -2 * z, 2 * one], -1)

    def _scan_bounds(self) -> tuple[float, float]:
        # ||A|| <= ||ehat|| ||xhat|| / m <= sqrt(2 eps) (1 + sqrt(phi))^2 / 2 (Bai-Yin edges)
        b = 1.2 * math.sqrt(2 * self.eps) * (1 + math.sqrt(self.phi)) ** 2 / 2 + 1e-12
        return -b, b

    @property
    def atoms(self) -> tuple[tuple[float, float], ...]:
        return ((0.0, 1.0 - 1.0 / self.phi),) if self.phi > 1 else ()

    def stieltjes_derivative(self, z: Any) -> np.ndarray:
        return _implicit_derivative(self, z)

    def free_cumulants(self, k: int) -> np.ndarray:
        """Series of (28): ``kappa_{2j} = eps^j phi^(2j-1) / 2^j``, odd cumulants 0."""
        k = check_int("the moment order k", k, minimum=0)
        kappa = np.zeros(k + 1)
        for j in range(1, k // 2 + 1):
            kappa[2 * j] = self.eps**j * self.phi ** (2 * j - 1) / 2**j
        return kappa

    def ensemble_size(self, n: int) -> int:
        """``n`` rounded up to even: the ensemble is made of two ``n/2`` blocks."""
        return n + n % 2

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """``[[0, A], [A^T, 0]]`` with ``A = e x^T/m`` (``n/2 x n/2``), ``m = round(n/phi)``."""
        n = check_int("the matrix size n", n, minimum=2, expected="an int >= 2")
        if n % 2:
            raise InputError(f"the product-Wishart ensemble needs an even n; got {n}")
        rng = as_generator(generator)
        half = n // 2
        m = max(2, round(2 * half / self.phi))
        k = m // 2
        e = rng.standard_normal((half, k)) * math.sqrt(2 * self.eps)
        x = rng.standard_normal((half, k))
        a = e @ x.T / m
        out = np.zeros((n, n))
        out[:half, half:] = a
        out[half:, :half] = a.T
        return out


def _implicit_derivative(law: PolynomialLaw, z: Any) -> np.ndarray:
    """``G'(z) = -(dP/dz)/(dP/dG)`` for ``P(G, z) = 0`` with coefficients linear in z."""
    z = np.asarray(z, dtype=complex)
    flat = z.reshape(-1)
    g = law.stieltjes(flat)
    c = law._coefficients(flat)
    dc = law._coefficients(flat + 1.0) - c  # exact: coefficients are affine in z
    deg = c.shape[1] - 1
    powers = g[:, None] ** np.arange(deg, -1, -1)
    dpdz = np.sum(dc * powers, axis=1)
    dpowers = np.arange(deg, 0, -1) * g[:, None] ** np.arange(deg - 1, -1, -1)
    dpdg = np.sum(c[:, :-1] * dpowers, axis=1)
    return (-dpdz / dpdg).reshape(z.shape)


@savable
@dataclass(frozen=True)
class PenningtonBahri(PolynomialLaw):
    """Hessian law of 001 at energy ``eps`` and ratio ``phi = P/(n m)`` (theory.md §2.4, §2.6).

    ``model="wishart+wigner"`` (eq. 17-18, generalised to an MP scale s):

    .. math:: R(w) = \\frac{s}{1 - s\\phi w} + 2\\epsilon w:\\quad
       2\\epsilon s\\phi G^3 - (2\\epsilon + z s\\phi)G^2 + (z + s\\phi - s)G - 1 = 0;

    ``model="improved"`` (eq. 29-30):

    .. math:: z\\epsilon s\\phi^3 G^4 - \\epsilon\\phi^2(z + s(\\phi - 2))G^3
       - \\phi(2sz + \\epsilon(1 - \\phi))G^2 + 2(z - s(1 - \\phi))G - 2 = 0.

    The density is ``|Im G|/pi`` of the complex-conjugate root pair at real x (the correct root
    everywhere on the real line; theory.md §2.4). The improved model has an atom of mass
    ``1 - 2/phi`` at 0 for ``phi > 2`` (erratum, theory.md §2.6); the Wishart + Wigner model
    has no atom for ``eps > 0``.

    Attributes:
        eps: energy per output (``>= 0``).
        phi: ratio of parameters to effective examples (``> 0``).
        model: ``"wishart+wigner"`` or ``"improved"``.
        scale: ``s``, the MP scale (mean eigenvalue) of ``H0``; the paper's ``sigma``.
    """

    eps: float
    phi: float
    model: str = "wishart+wigner"
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", _in_checked_range("eps", _energy(self.eps), 0.0))
        object.__setattr__(self, "phi", _in_checked_range("phi", check_positive("phi", self.phi)))
        object.__setattr__(self, "model", _check_model(self.model))
        object.__setattr__(
            self, "scale", _in_checked_range("scale", check_positive("scale", self.scale))
        )

    def components(self) -> tuple[SpectralLaw, SpectralLaw | None]:
        """``(law of H0, law of H1)``; H1 is ``None`` at ``eps = 0``."""
        h0 = MarchenkoPastur(self.phi, self.scale)
        if self.eps == 0:
            return h0, None
        if self.model == "wishart+wigner":
            return h0, Semicircle(math.sqrt(2 * self.eps))
        return h0, ProductWishart(self.eps, self.phi)

    def _coefficients(self, z: np.ndarray) -> np.ndarray:
        e, p, s = self.eps, self.phi, self.scale
        one = np.ones_like(z)
        if self.model == "wishart+wigner":
            return np.stack([2 * e * s * p * one, -(2 * e + z * s * p), z + s * p - s, -one], -1)
        return np.stack(
            [
                z * e * s * p**3,
                -e * p**2 * (z + s * (p - 2)),
                -p * (2 * s * z + e * (1 - p)),
                2 * (z - s * (1 - p)),
                -2 * one,
            ],
            -1,
        )

    def _scan_bounds(self) -> tuple[float, float]:
        h0, h1 = self.components()
        lo0, hi0 = 0.0, h0.edges[1]
        if h1 is None:
            return lo0 - 1e-3 * hi0, 1.01 * hi0
        lo1, hi1 = h1._scan_bounds() if isinstance(h1, ProductWishart) else h1.support
        return 1.01 * (lo0 + lo1) - 1e-3 * hi0, 1.01 * (hi0 + hi1)

    @property
    def atoms(self) -> tuple[tuple[float, float], ...]:
        if self.eps == 0:
            return MarchenkoPastur(self.phi, self.scale).atoms
        if self.model == "improved" and self.phi > 2:
            return ((0.0, 1.0 - 2.0 / self.phi),)
        return ()

    def stieltjes_derivative(self, z: Any) -> np.ndarray:
        return _implicit_derivative(self, z)

    def free_cumulants(self, k: int) -> np.ndarray:
        """Sum of the components' free cumulants (``R_H = R_H0 + R_H1``, eqs. 17, 29)."""
        k = check_int("the moment order k", k, minimum=0)
        h0, h1 = self.components()
        return h0.free_cumulants(k) + (h1.free_cumulants(k) if h1 is not None else 0.0)

    def ensemble_size(self, n: int) -> int:
        """The size both components accept (even for the product-Wishart ``H1``)."""
        h0, h1 = self.components()
        return h0.ensemble_size(n if h1 is None else h1.ensemble_size(n))

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """``H0 + H1``: a Wishart matrix plus a GOE / product-Wishart matrix.

        The Wishart ensemble is orthogonally invariant, so the two summands are asymptotically
        free without an explicit rotation.
        """
        rng = as_generator(generator)
        h0, h1 = self.components()
        out = h0.sample_matrix(n, generator=rng)
        if h1 is not None:
            out = out + h1.sample_matrix(n, generator=rng)
        return out

    @property
    def index(self) -> float:
        """``alpha = ∫_{-inf}^0 rho`` (eq. 19): the fraction of negative eigenvalues."""
        return self.mass_between(-math.inf, 0.0) + sum(m for x, m in self.atoms if x < 0)


#: The range of phi, scale and eps over which the laws' mass, index and support are checked
#: (tests/test_rmt_pennington_bahri.py, test_reliability_core_rmt.py): far beyond the paper's
#: phi <= 1 and eps <= 0.5. Outside it the polynomial roots lose their precision (at phi = 1e300
#: the law silently lost its mass; at eps = 1e300 the root finder met infinities).
CHECKED_MIN, CHECKED_MAX = 1e-6, 1e6


def _in_checked_range(name: str, value: float, low: float = CHECKED_MIN) -> float:
    if not low <= value <= CHECKED_MAX:
        raise InputError(
            f"{name} = {value:g} lies outside [{low:g}, {CHECKED_MAX:g}], the range where the "
            f"Pennington-Bahri law is computed to full accuracy; pass a {name} in that range "
            "(the paper's experiments use phi <= 1, eps <= 0.5)"
        )
    return value


def pennington_bahri(
    eps: float,
    phi: float,
    *,
    model: Model = "wishart+wigner",
    scale: float | None = None,
    sigma: float | None = None,
) -> PenningtonBahri:
    """The Hessian law of paper 001 (eq. 18 or eq. 29-30); see :class:`PenningtonBahri`.

    ``scale`` (or its paper name ``sigma``) is the MP scale ``s`` of ``H0`` (mean eigenvalue).

    Example:
        >>> from curvscope.rmt import pennington_bahri
        >>> law = pennington_bahri(0.1, 0.5)
        >>> round(law.index, 5)  # theory.md §2.5 reference value
        0.11356
    """
    return PenningtonBahri(eps, phi, model, _scale_arg(scale, sigma))


def product_wishart(eps: float, phi: float) -> ProductWishart:
    """The product-Wishart law of ``H1`` alone (001 eqs. 27-28); see :class:`ProductWishart`."""
    return ProductWishart(eps, phi)


def index(
    eps: Any,
    phi: float,
    *,
    model: Model = "wishart+wigner",
    scale: float | None = None,
    sigma: float | None = None,
) -> Any:
    """Index ``alpha(eps, phi)``: fraction of negative Hessian eigenvalues (001 eq. 19).

    .. math:: \\alpha(\\epsilon, \\phi) = \\int_{-\\infty}^{0} \\rho(\\lambda; \\epsilon, \\phi)\\, d\\lambda

    Support edges are located by bisection on "has a conjugate pair of roots", and the density is
    integrated by Gauss-Legendre after the substitution that removes the square-root edges
    (theory.md §2.5). ``eps`` may be a scalar (returns a float) or an array (returns an array).
    """
    s = _scale_arg(scale, sigma)
    eps_arr = np.asarray(eps, dtype=float)
    vals = [PenningtonBahri(e, phi, model, s).index for e in eps_arr.reshape(-1)]
    return float(vals[0]) if eps_arr.ndim == 0 else np.array(vals).reshape(eps_arr.shape)


def critical_energy(
    phi: Any,
    *,
    model: Model = "wishart+wigner",
    scale: float | None = None,
    sigma: float | None = None,
) -> Any:
    """Critical energy ``eps_c(phi)`` below which critical points are minima (eqs. 21, 32).

    Stable forms (theory.md §2.5, §2.6; the printed eq. 32 loses all accuracy near phi = 1):

    .. math:: \\epsilon_c = s^2\\,\\frac{4(1-\\phi)^3(1+t)}{(3+t)^3},\\; t = \\sqrt{1 + 8\\phi}
       \\quad\\text{(Wishart + Wigner)};\\qquad
       \\epsilon_c = s^2\\,\\frac{16(1-\\phi)^3(1+q)}{\\phi(3+q)^3},\\; q = \\sqrt{1 + 16\\phi - 8\\phi^2}
       \\quad\\text{(improved)}.

    Each is the positive root of the discriminant in G of the polynomial at z = 0. The Wishart +
    Wigner form is eq. 21 for s = 1; a scale s multiplies every eigenvalue by s and so eps_c by
    ``s^2``. For ``phi >= 1`` the value is ``<= 0``: there is no gap and ``alpha > 0`` for all
    ``eps > 0``. The improved form needs ``1 + 16 phi - 8 phi^2 >= 0`` (``phi <= 2.06``).
    ``phi`` may be a scalar or an array.
    """
    _check_model(model)
    s = check_positive("scale", _scale_arg(scale, sigma))
    p = np.asarray(phi, dtype=float)
    if np.any(~(p > 0)) or np.any(~np.isfinite(p)):
        raise InputError(f"phi must be positive and finite; got {phi!r}")
    if model == "wishart+wigner":
        t = np.sqrt(1 + 8 * p)
        out = s**2 * 4 * (1 - p) ** 3 * (1 + t) / (3 + t) ** 3
    else:
        chi = 1 + 16 * p - 8 * p**2
        if np.any(chi < 0):
            raise InputError(
                f"the improved model's eps_c needs 1 + 16 phi - 8 phi^2 >= 0 (phi <= 2.06); got phi={phi!r}"
            )
        q = np.sqrt(chi)
        out = s**2 * 16 * (1 - p) ** 3 * (1 + q) / (p * (3 + q) ** 3)
    return float(out) if p.ndim == 0 else out


@savable
@dataclass(frozen=True, eq=False)
class IndexCurve:
    """``alpha(eps)`` at one ``phi`` (for plots and reports).

    Attributes:
        phi, model, scale: the law's parameters.
        eps: energies; alpha: the index at each.
        critical_energy: ``eps_c(phi)``.
    """

    phi: float
    model: str
    scale: float
    eps: np.ndarray
    alpha: np.ndarray
    critical_energy: float


def index_curve(
    phi: float, eps: Any, *, model: Model = "wishart+wigner", scale: float = 1.0
) -> IndexCurve:
    """Compute ``alpha(eps)`` on a grid of energies (eq. 19) as an :class:`IndexCurve`."""
    eps = np.asarray(eps, dtype=float).reshape(-1)
    alpha = np.asarray(index(eps, phi, model=model, scale=scale), dtype=float)
    return IndexCurve(
        float(phi), model, float(scale), eps, alpha, critical_energy(phi, model=model, scale=scale)
    )


@savable
@dataclass(frozen=True, eq=False)
class CriticalEnergyCurve:
    """``eps_c(phi)`` with the paper's empirical fits beside it (001 §6.4, theory.md §2.8).

    Attributes:
        model, scale: the law's parameters.
        phi: ratios; critical_energy: ``eps_c`` at each.
        fit_tanh: ``(1 - phi)^2 / 2`` (paper's fit to tanh networks).
        fit_linear: ``(1 - phi) / 2`` (linear networks, Advani & Ganguli).
    """

    model: str
    scale: float
    phi: np.ndarray
    critical_energy: np.ndarray
    fit_tanh: np.ndarray
    fit_linear: np.ndarray


def critical_energy_curve(
    phi: Any, *, model: Model = "wishart+wigner", scale: float = 1.0
) -> CriticalEnergyCurve:
    """``eps_c`` on a grid of ``phi`` with the empirical fits ``(1-phi)^2/2`` and ``(1-phi)/2``."""
    phi = np.asarray(phi, dtype=float).reshape(-1)
    ec = np.asarray(critical_energy(phi, model=model, scale=scale), dtype=float)
    return CriticalEnergyCurve(model, float(scale), phi, ec, (1 - phi) ** 2 / 2, (1 - phi) / 2)
