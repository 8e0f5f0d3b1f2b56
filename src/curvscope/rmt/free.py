"""Free additive convolution by subordination functions (theory.md §0, §1.3, §2.4).

For free ``A`` and ``B`` the Stieltjes transform of ``A + B`` is
``G(z) = G_A(omega_A(z)) = G_B(omega_B(z))`` with ``omega_A + omega_B = z + 1/G(z)``
(Biane; Belinschi & Bercovici 2007). With ``F = 1/G`` and ``h(w) = F(w) - w``, ``omega_A(z)`` is the
unique fixed point in the upper half plane of

.. math:: T_z(w) = z + h_B\\bigl(z + h_A(w)\\bigr),

an analytic self-map of ``C+``. This is solved for a whole grid at once, without picking roots by
hand: far from the real axis by fixed-point iteration, then by damped Newton steps while ``Im z``
is lowered geometrically to its target, each stage warm-started from the last. ``R_{A+B} =
R_A + R_B`` gives the free cumulants and so the moments exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from curvscope._validate import check_int
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.rmt._base import SpectralLaw, as_generator
from curvscope.rmt.discrete import as_law

__all__ = ["FreeConvolution", "free_convolution", "subordination"]


def _h_and_derivative(law: SpectralLaw, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = law.stieltjes(w)
    dg = law.stieltjes_derivative(w)
    return 1.0 / g - w, -dg / g**2 - 1.0, g


def _fixed_point(a: SpectralLaw, b: SpectralLaw, z: np.ndarray, w: np.ndarray, iters: int):
    for _ in range(iters):
        w_new = z + (
            1.0 / b.stieltjes(z + 1.0 / a.stieltjes(w) - w) - (z + 1.0 / a.stieltjes(w) - w)
        )
        w_new = np.where(w_new.imag < z.imag, w_new.real + 1j * z.imag, w_new)
        done = np.abs(w_new - w) <= 1e-14 * (1 + np.abs(w))
        w = w_new
        if np.all(done):
            break
    return w


def _newton(a: SpectralLaw, b: SpectralLaw, z: np.ndarray, w: np.ndarray, iters: int = 60):
    """Damped Newton on ``f(w) = T_z(w) - w``; returns the iterate and a convergence mask."""
    converged = np.zeros(z.shape, dtype=bool)
    for _ in range(iters):
        ha, dha, _ = _h_and_derivative(a, w)
        u = z + ha
        hb, dhb, _ = _h_and_derivative(b, u)
        f = z + hb - w
        converged = np.abs(f) <= 1e-13 * (1 + np.abs(w))
        if np.all(converged):
            break
        step = f / (dhb * dha - 1.0)
        step = np.where(np.isfinite(step), step, 0.0)
        new = w - step
        # omega must stay in the closed half plane Im >= Im z: halve steps that leave it
        for _ in range(40):
            bad = (new.imag < z.imag) & ~converged
            if not np.any(bad):
                break
            step = np.where(bad, step / 2, step)
            new = w - step
        w = np.where(converged, w, new)
    return w, converged


def subordination(a: Any, b: Any, z: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subordination functions and Stieltjes transform of ``a ⊞ b`` at ``z`` (``Im z > 0``).

    .. math:: G_{A \\boxplus B}(z) = G_A(\\omega_A(z)) = G_B(\\omega_B(z)),
              \\quad \\omega_A + \\omega_B = z + 1/G(z).

    Args:
        a, b: laws or discrete measures (anything :func:`~curvscope.rmt.as_law` accepts).
        z: complex points with positive imaginary part (any shape).

    Returns:
        ``(omega_a, omega_b, g)`` with the shape of ``z``.
    """
    a, b = as_law(a), as_law(b)
    z = np.asarray(z, dtype=complex)
    if np.any(~(z.imag > 0)):
        raise InputError("subordination needs Im z > 0 at every point; got Im z <= 0")
    flat = z.reshape(-1)
    lo_a, hi_a = a.support
    lo_b, hi_b = b.support
    width = max(hi_a - lo_a + hi_b - lo_b, 1e-300)
    top = max(width, float(np.max(flat.imag)))
    stages = max(1, int(np.ceil(np.log(top / flat.imag.min()) / np.log(8.0))))
    ratio = (flat.imag / top) ** (1.0 / stages)
    eta = np.full(flat.size, top)
    zz = flat.real + 1j * eta
    w = _fixed_point(a, b, zz, zz + 0j, 200)
    w, _ = _newton(a, b, zz, w)
    for _ in range(stages):
        eta = eta * ratio
        zz = flat.real + 1j * eta
        w = np.where(w.imag < eta, w.real + 1j * eta, w)
        w, ok = _newton(a, b, zz, w)
        if not np.all(ok):
            idx = np.nonzero(~ok)[0]
            w_fp = _fixed_point(a, b, zz[idx], w[idx], 3000)
            w_fix, _ = _newton(a, b, zz[idx], w_fp)
            w[idx] = w_fix
    g = a.stieltjes(w)
    omega_b = flat + 1.0 / g - w
    return w.reshape(z.shape), omega_b.reshape(z.shape), g.reshape(z.shape)


@savable
@dataclass(frozen=True, eq=False)
class FreeConvolution(SpectralLaw):
    """The free additive convolution ``a ⊞ b``: the limiting spectrum of ``A + Q B Q^T``.

    Attributes:
        a, b: the two laws (closed-form laws or :class:`~curvscope.rmt.DiscreteMeasure`).
        eta: imaginary part at which the density ``-Im G(x + i eta)/pi`` is read; ``None`` means
            ``1e-10`` times the width of the combined support.
    """

    a: SpectralLaw
    b: SpectralLaw
    eta: float | None = None

    @property
    def _eta(self) -> float:
        if self.eta is not None:
            return float(self.eta)
        lo, hi = self._bounds
        return 1e-10 * (hi - lo)

    @property
    def _bounds(self) -> tuple[float, float]:
        lo_a, hi_a = self.a.support
        lo_b, hi_b = self.b.support
        lo, hi = lo_a + lo_b, hi_a + hi_b
        if hi - lo <= 0:
            raise InputError("free convolution of two point masses is a point mass: no density")
        return lo, hi

    @property
    def atoms(self) -> tuple[tuple[float, float], ...]:
        """Bercovici-Voiculescu: an atom at ``x = s + t`` with mass ``a({s}) + b({t}) - 1 > 0``."""
        out = []
        for s, ms in self.a.atoms:
            for t, mt in self.b.atoms:
                if ms + mt > 1:
                    out.append((s + t, ms + mt - 1))
        return tuple(out)

    def stieltjes(self, z: Any) -> np.ndarray:
        return subordination(self.a, self.b, z)[2]

    def _density(self, x: np.ndarray, eta: float) -> np.ndarray:
        z = x + 1j * eta
        g = self.stieltjes(z)
        for loc, mass in self.atoms:
            g = g - mass / (z - loc)
        return np.clip(-g.imag / np.pi, 0.0, None)

    def pdf(self, x: Any) -> np.ndarray:
        """``-Im G(x + i eta)/pi`` with the atoms' own contribution removed."""
        return self._density(np.asarray(x, dtype=float), self._eta)

    def _inside(self, x: np.ndarray) -> np.ndarray:
        # Inside the support the density does not depend on eta -> 0; outside it is O(eta).
        # Comparing eta with 100 eta separates the two without a threshold on the density's
        # size (which fails next to inverse-square-root edges, e.g. Bernoulli ⊞ Bernoulli).
        small = self._density(x, self._eta)
        large = self._density(x, 100 * self._eta)
        return (small > 0) & (large < 3 * small)

    @cached_property
    def _edges(self) -> tuple[tuple[float, float], ...]:
        lo, hi = self._bounds
        pad = 1e-3 * (hi - lo)
        xs = np.linspace(lo - pad, hi + pad, 2001)
        on = self._inside(xs)
        flips = np.nonzero(on[1:] != on[:-1])[0]
        a, b, state = xs[flips], xs[flips + 1], on[flips]
        for _ in range(40):
            mid = 0.5 * (a + b)
            same = self._inside(mid) == state
            a, b = np.where(same, mid, a), np.where(same, b, mid)
        edges = 0.5 * (a + b)
        return tuple((float(edges[i]), float(edges[i + 1])) for i in range(0, edges.size - 1, 2))

    @property
    def intervals(self) -> tuple[tuple[float, float], ...]:
        """Support intervals, located on a grid of the density and refined by bisection."""
        return self._edges

    def free_cumulants(self, k: int) -> np.ndarray:
        """``R_{A+B} = R_A + R_B``: free cumulants add."""
        k = check_int("the moment order k", k, minimum=0)
        return self.a.free_cumulants(k) + self.b.free_cumulants(k)

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """``A + Q B Q^T`` with ``A``, ``B`` drawn from the two ensembles and ``Q`` Haar."""
        from curvscope.rmt.freeness import haar_orthogonal

        rng = as_generator(generator)
        mat_a = self.a.sample_matrix(n, generator=rng)
        mat_b = self.b.sample_matrix(n, generator=rng)
        q = haar_orthogonal(n, generator=rng)
        return mat_a + q @ mat_b @ q.T


def free_convolution(a: Any, b: Any, *, eta: float | None = None) -> FreeConvolution:
    """Free additive convolution ``a ⊞ b`` of two laws known by their Stieltjes transforms.

    ``a`` and ``b`` may be closed-form laws (:func:`semicircle`, :func:`marchenko_pastur`,
    :func:`pennington_bahri`, :func:`product_wishart`, another :class:`FreeConvolution`) or
    discrete measures: a 1-D list/array of eigenvalues, a tuple ``(nodes, weights)``, or an object
    with ``nodes`` and ``weights`` (an SLQ ``SpectralDensity``; per-probe rows are pooled).

    .. math:: R_{A \\boxplus B}(w) = R_A(w) + R_B(w)
       \\quad\\Longleftrightarrow\\quad
       G(z) = G_A(\\omega_A(z)) = G_B(\\omega_B(z)).

    The density at real x is ``-Im G(x + i eta)/pi``, computed by subordination (module
    docstring); it is vectorised over the grid. See theory.md §0 and §2.4.

    Example:
        >>> from curvscope.rmt import free_convolution, marchenko_pastur, semicircle
        >>> law = free_convolution(marchenko_pastur(0.5), semicircle(0.3))
        >>> round(float(law.moments(2)[2]), 12)  # = m2(MP) + sigma^2 = 1.5 + 0.09
        1.59
    """
    return FreeConvolution(as_law(a), as_law(b), eta)
