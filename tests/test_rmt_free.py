"""Free additive convolution by subordination, against closed forms and sampled matrices.

Spec: theory.md §0 (R transforms add), §2.4 (eq. 18 is MP ⊞ SC), §2.6 (eq. 30 is MP ⊞ product-Wishart).
"""

from __future__ import annotations

import numpy as np
import pytest
from _rmt_helpers import free_cumulant_moments, ks_distance, one_blas_thread  # noqa: F401

from curvscope.errors import InputError
from curvscope.rmt import (
    FreeConvolution,
    as_law,
    free_convolution,
    haar_orthogonal,
    load,
    marchenko_pastur,
    product_wishart,
    semicircle,
    subordination,
)


def _cubic18_density(x: np.ndarray, eps: float, phi: float) -> np.ndarray:
    """Independent reference: numpy.roots of eq. 18 at each x, |Im| of the conjugate pair / pi."""
    out = []
    for xi in x:
        r = np.roots([2 * eps * phi, -(2 * eps + xi * phi), xi + phi - 1, -1])
        out.append(np.max(np.abs(r.imag)) / np.pi)
    return np.array(out)


@pytest.mark.parametrize(("eps", "phi"), [(0.1, 0.5), (0.05, 1.5), (0.3, 0.25), (0.5, 3.0)])
def test_mp_plus_semicircle_equals_eq18_density(eps: float, phi: float) -> None:
    law = free_convolution(marchenko_pastur(phi), semicircle(np.sqrt(2 * eps)))
    lo, hi = law.support
    x = np.linspace(lo - 0.5, hi + 0.5, 400) + 1.234e-5  # off any grid-aligned edge
    np.testing.assert_allclose(law.pdf(x), _cubic18_density(x, eps, phi), atol=1e-6)
    assert law.atoms == ()


def test_stieltjes_of_the_convolution_solves_the_summed_r_transform() -> None:
    eps, phi = 0.2, 0.7
    z = np.array([0.3 + 0.5j, -0.5 + 0.01j, 2.0 + 1e-6j, 4.0 + 3.0j])
    om_a, om_b, g = subordination(marchenko_pastur(phi), semicircle(np.sqrt(2 * eps)), z)
    # R_H(G) + 1/G = z with R_H = 1/(1 - phi w) + 2 eps w (eq. 17)
    np.testing.assert_allclose(1 / (1 - phi * g) + 2 * eps * g + 1 / g, z, atol=1e-9)
    assert (
        np.all(g.imag < 0)
        and np.all(om_a.imag >= z.imag)
        and np.all(om_b.imag >= z.imag * (1 - 1e-12))
    )
    np.testing.assert_allclose(om_a + om_b, z + 1 / g, atol=1e-9)


def test_mp_plus_product_wishart_equals_quartic30_density() -> None:
    eps, phi = 2.0, 0.3
    law = free_convolution(marchenko_pastur(phi), product_wishart(eps, phi))
    x = np.linspace(-4.0, 7.0, 23) + 1e-4
    ref = []
    for xi in x:  # eq. 30 at s = 1 as poly(G) = 0, independent numpy.roots
        c = [
            xi * eps * phi**3,
            -eps * phi**2 * (xi + phi - 2),
            -phi * (2 * xi + eps * (1 - phi)),
            2 * (xi - 1 + phi),
            -2,
        ]
        ref.append(np.max(np.abs(np.roots(c).imag)) / np.pi)
    np.testing.assert_allclose(law.pdf(x), ref, atol=1e-6)


def test_moments_and_cdf_of_the_convolution() -> None:
    a, b = marchenko_pastur(0.5, scale=2.0), semicircle(0.6)
    law = free_convolution(a, b)
    # free cumulants add: kappa(MP) = s^k phi^(k-1), kappa_2(SC) = sigma^2
    kap = [2.0, 4 * 0.5 + 0.36, 8 * 0.25, 16 * 0.125]
    np.testing.assert_allclose(law.moments(4), free_cumulant_moments(kap, 4), rtol=1e-12)
    # and the density integrates to 1 with the same low moments: trapezoid after t = cos-map
    ((lo, hi),) = law.intervals
    u = np.linspace(0, np.pi, 20001)
    t = lo + (hi - lo) * (1 - np.cos(u)) / 2
    f = law.pdf(t) * (hi - lo) * np.sin(u) / 2
    quad = [np.trapezoid(f * t**k, u) for k in range(3)]
    np.testing.assert_allclose(quad, law.moments(2), rtol=1e-6, atol=1e-6)
    assert float(law.cdf(hi + 1)) == pytest.approx(1.0, abs=1e-6)


def test_atoms_follow_bercovici_voiculescu() -> None:
    # a({0}) = 0.8, b({0}) = 0.75 (MP, phi = 4): an atom at 0 of mass 0.55
    a = as_law((np.array([0.0, 1.0]), np.array([0.8, 0.2])))
    law = free_convolution(a, marchenko_pastur(4.0))
    assert law.atoms == ((0.0, pytest.approx(0.55)),)
    assert law.mass_between(-np.inf, np.inf) == pytest.approx(0.45, abs=2e-4)


def test_convolution_of_sampled_spectra_predicts_the_rotated_sum() -> None:
    rng = np.random.default_rng(11)
    n = 300
    a = marchenko_pastur(0.5).sample_matrix(n, generator=rng)
    b = semicircle(0.5).sample_matrix(n, generator=rng) + 0.5 * np.diag(
        np.sign(rng.standard_normal(n))
    )
    ea, eb = np.linalg.eigvalsh(a), np.linalg.eigvalsh(b)
    law = free_convolution(ea, eb)  # two discrete spectra of 300 atoms each
    # A + Q B Q^T at a larger size with the same two spectra (each eigenvalue repeated 4 times)
    big = 4 * n
    q = haar_orthogonal(big, generator=rng)
    p = haar_orthogonal(big, generator=rng)
    mat = (p * np.repeat(ea, 4)) @ p.T + (q * np.repeat(eb, 4)) @ q.T
    ev = np.linalg.eigvalsh(mat)
    ks = ks_distance(ev, law.cdf)
    assert ks < 0.01
    # and it is far closer than the commuting sum with aligned eigenvectors
    assert ks_distance(np.repeat(ea + eb, 4), law.cdf) > 5 * ks


def test_convolution_saves_loads_and_samples(tmp_path) -> None:
    law = free_convolution([0.0, 1.0, 2.0], semicircle(0.5))
    law.save(tmp_path / "fc")
    back = load(tmp_path / "fc")
    assert isinstance(back, FreeConvolution)
    x = np.linspace(-1, 3, 7)
    np.testing.assert_allclose(back.pdf(x), law.pdf(x))
    m = free_convolution(marchenko_pastur(0.5), semicircle(0.3)).sample_matrix(50, generator=0)
    np.testing.assert_allclose(m, m.T, atol=1e-12)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="Im z > 0"):
        subordination(semicircle(1.0), semicircle(1.0), np.array([1.0 + 0j]))
    with pytest.raises(InputError, match="expected a spectral law"):
        free_convolution({"nodes": 1}, semicircle(1.0))
    with pytest.raises(InputError, match="point mass"):
        free_convolution([1.0], [2.0]).pdf(np.array([3.0]))


def test_bernoulli_plus_bernoulli_is_the_arcsine_law() -> None:
    # a classic closed form: (delta_0 + delta_1)/2 ⊞ itself has density 1/(pi sqrt(x (2 - x)))
    law = free_convolution([0.0, 1.0], [0.0, 1.0])
    x = np.linspace(0.01, 1.99, 67)
    np.testing.assert_allclose(law.pdf(x), 1 / (np.pi * np.sqrt(x * (2 - x))), rtol=1e-9)
    ((lo, hi),) = law.intervals
    assert abs(lo) < 1e-6 and abs(hi - 2) < 1e-6
    cdf = 2 / np.pi * np.arcsin(np.sqrt(np.array([0.25, 0.5, 1.0, 1.5]) / 2))
    np.testing.assert_allclose(law.cdf(np.array([0.25, 0.5, 1.0, 1.5])), cdf, atol=5e-4)
