"""Semicircle, Marchenko-Pastur, product-Wishart and discrete laws against independent references.

Spec: theory.md §2.2 (001.semicircle.*), §2.3 (001.mp.*, 001.stieltjes_R.transforms), §2.6 (001.r28).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _rmt_helpers import free_cumulant_moments, ks_distance, one_blas_thread  # noqa: F401
from scipy import integrate

from curvscope.errors import InputError
from curvscope.rmt import (
    DiscreteMeasure,
    MarchenkoPastur,
    Semicircle,
    as_law,
    free_cumulants_from_moments,
    load,
    marchenko_pastur,
    moments_from_free_cumulants,
    product_wishart,
    semicircle,
)

ALG = {"weight": "alg", "wvar": (0.5, 0.5)}  # quad's sqrt((x-a)(b-x)) weight carries the edges


def test_semicircle_normalisation_and_moments_match_quadrature() -> None:
    sig = 1.3
    law = semicircle(sig)
    # 001.semicircle.normalisation: integrate sqrt(4 s^2 - x^2)/(2 pi s^2) x^k with the alg weight
    quad = [
        integrate.quad(lambda x, k=k: x**k / (2 * np.pi * sig**2), -2 * sig, 2 * sig, **ALG)[0]
        for k in range(7)
    ]
    assert abs(quad[0] - 1) < 1e-10
    np.testing.assert_allclose(law.moments(6), quad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(law.moments(4)[[2, 4]], [sig**2, 2 * sig**4], rtol=1e-12)
    assert law.mass_between(-np.inf, np.inf) == pytest.approx(1.0, abs=1e-10)
    assert law.atoms == () and law.support == (-2 * sig, 2 * sig)


def test_semicircle_cdf_is_the_integral_of_the_pdf() -> None:
    law = semicircle(0.7)
    for x in (-1.2, -0.3, 0.0, 0.9, 1.39):
        ref = integrate.quad(lambda t: law.pdf(np.array(t)), -1.4, x)[0]
        assert float(law.cdf(x)) == pytest.approx(ref, abs=1e-8)


@pytest.mark.parametrize("phi", [0.5, 2.5])
def test_mp_normalisation_moments_and_atom(phi: float) -> None:
    s = 2.0
    law = marchenko_pastur(phi, scale=s)
    lo, hi = s * (1 - math.sqrt(phi)) ** 2, s * (1 + math.sqrt(phi)) ** 2
    f = lambda x, k: x**k / (2 * np.pi * s * phi * x)  # noqa: E731
    quad = [integrate.quad(f, lo, hi, args=(k,), **ALG)[0] for k in range(5)]
    atom = max(0.0, 1 - 1 / phi)
    assert quad[0] + atom == pytest.approx(1.0, abs=1e-10)  # 001.mp.normalisation
    assert law.mass_between(-np.inf, np.inf) + sum(m for _, m in law.atoms) == pytest.approx(
        1, abs=1e-9
    )
    np.testing.assert_allclose(law.moments(4)[1:], quad[1:], rtol=1e-9)
    assert law.moments(2)[1:].tolist() == pytest.approx([s, s**2 * (1 + phi)], rel=1e-12)
    assert law.atoms == (((0.0, atom),) if phi > 1 else ())
    # moments through the free cumulants kappa_k = s^k phi^(k-1) (theory.md §2.3), explicit formula
    np.testing.assert_allclose(
        law.moments(4),
        free_cumulant_moments([s * phi**0, s**2 * phi, s**3 * phi**2, s**4 * phi**3], 4),
        rtol=1e-12,
    )


def test_mp_cdf_matches_quadrature_including_the_atom() -> None:
    law = marchenko_pastur(2.5, scale=2.0)
    lo, hi = law.edges
    for x in (-0.1, 0.0, lo + 0.01, 3.0, hi - 0.01, hi + 1):
        cont = integrate.quad(
            lambda t: float(law.pdf(np.array([t]))[0]), lo, min(max(x, lo), hi), limit=200
        )[0]
        assert float(law.cdf(x)) == pytest.approx(cont + 0.6 * (x >= 0), abs=2e-7)


def test_stieltjes_transforms_match_quadrature_and_r_transforms() -> None:
    # 001.stieltjes_R.transforms: G(z) = ∫ rho/(z - t) (+ atom/z) and R(G) + 1/G = z
    sig = 0.8
    sc = semicircle(sig)
    for z in (0.3 + 0.7j, -2.0 + 0.2j, 2.5 + 1.0j):
        f = lambda t, part, z=z: part(1 / (z - t)) / (2 * np.pi * sig**2)  # noqa: E731
        g = (
            integrate.quad(f, -2 * sig, 2 * sig, args=(np.real,), **ALG)[0]
            + 1j * integrate.quad(f, -2 * sig, 2 * sig, args=(np.imag,), **ALG)[0]
        )
        assert abs(sc.stieltjes(z) - g) < 1e-9
        assert abs(sig**2 * g + 1 / g - z) < 1e-9
    for phi in (0.6, 2.5):
        s = 1.7
        mp = marchenko_pastur(phi, scale=s)
        lo, hi = mp.edges
        for z in (0.5 + 0.5j, 5.0 + 0.3j, -1.0 + 0.1j, 0.05 + 0.02j):
            f = lambda t, part, z=z, s=s, phi=phi: part(1 / (z - t)) / (2 * np.pi * s * phi * t)  # noqa: E731
            g = (
                integrate.quad(f, lo, hi, args=(np.real,), **ALG)[0]
                + 1j * integrate.quad(f, lo, hi, args=(np.imag,), **ALG)[0]
            )
            g += max(0.0, 1 - 1 / phi) / z
            assert abs(mp.stieltjes(z) - g) < 1e-8
            assert abs(s / (1 - s * phi * g) + 1 / g - z) < 1e-8
    # inversion: density = -Im G(x + i0)/pi
    xs = np.array([-1.2, 0.0, 0.9])
    np.testing.assert_allclose(-sc.stieltjes(xs + 1e-10j).imag / np.pi, sc.pdf(xs), atol=1e-7)
    # derivatives against finite differences of the transform itself
    for law in (sc, marchenko_pastur(2.5, scale=1.7)):
        z = np.array([0.4 + 0.3j, 3.0 + 0.05j])
        h = 1e-6
        fd = (law.stieltjes(z + h) - law.stieltjes(z - h)) / (2 * h)
        np.testing.assert_allclose(law.stieltjes_derivative(z), fd, rtol=1e-6)


@pytest.mark.parametrize(
    ("law", "seed"),
    [
        (semicircle(1.3), 1),
        (marchenko_pastur(0.5, scale=2.0), 2),
        (marchenko_pastur(2.5, scale=2.0), 3),
    ],
    ids=["semicircle", "mp-0.5", "mp-2.5"],
)
def test_sampled_spectra_converge_in_ks_distance(law, seed: int) -> None:
    # 001.semicircle.vs_goe, 001.mp.vs_wishart: KS of the sampled spectrum shrinks with n
    ks = {}
    for n in (500, 2000):
        ev = np.linalg.eigvalsh(law.sample_matrix(n, generator=np.random.default_rng(seed)))
        ev[np.abs(ev) < 1e-9] = 0.0  # exact zeros of a rank-deficient Wishart come out as ±1e-15
        ks[n] = ks_distance(ev, law.cdf)
    assert ks[2000] < ks[500]
    assert ks[2000] < 0.006
    assert ks[500] < 0.02


def test_sampled_mp_has_the_mean_eigenvalue_scale() -> None:
    # erratum theory.md §2.3: the paper's "sigma" is the mean eigenvalue, not a standard deviation
    ev = np.linalg.eigvalsh(marchenko_pastur(0.5, sigma=2.0).sample_matrix(1000, generator=3))
    assert abs(ev.mean() - 2.0) < 0.02


def test_product_wishart_moments_atoms_and_samples() -> None:
    # 001.r28.product_wishart: kappa_2 = eps phi/2, kappa_4 = eps^2 phi^3/4, kappa_6 = eps^3 phi^5/8
    for eps, phi in [(1.0, 0.5), (2.0, 0.25)]:
        law = product_wishart(eps, phi)
        k2, k4, k6 = eps * phi / 2, eps**2 * phi**3 / 4, eps**3 * phi**5 / 8
        closed = [k2, k4 + 2 * k2**2, k6 + 6 * k4 * k2 + 5 * k2**3]
        np.testing.assert_allclose(law.moments(6)[[2, 4, 6]], closed, rtol=1e-12)
        assert law.moments(5)[[1, 3, 5]].tolist() == [0.0, 0.0, 0.0]
        # density from the cubic (28): mass 1 and the same moments by quadrature
        assert law.mass_between(-np.inf, np.inf) == pytest.approx(1.0, abs=1e-8)
        grid = np.linspace(*law.support, 200001)
        dens = law.pdf(grid)
        np.testing.assert_allclose(
            [np.trapezoid(dens * grid**k, grid) for k in (2, 4)], closed[:2], rtol=1e-4
        )
        ev = np.linalg.eigvalsh(law.sample_matrix(1200, generator=np.random.default_rng(4)))
        emp = [np.mean(ev**2), np.mean(ev**4), np.mean(ev**6)]
        np.testing.assert_allclose(emp, closed, rtol=0.04)
    pw = product_wishart(1.0, 3.0)
    assert pw.atoms == ((0.0, pytest.approx(2 / 3)),)
    assert pw.mass_between(-np.inf, np.inf) == pytest.approx(1 / 3, abs=1e-8)


def test_moment_cumulant_conversions_invert_each_other() -> None:
    kappa = np.array([0.0, 0.3, 1.2, -0.4, 0.7, 0.1])
    m = moments_from_free_cumulants(kappa, 5)
    np.testing.assert_allclose(m[:5], free_cumulant_moments(kappa[1:5].tolist(), 4), rtol=1e-12)
    np.testing.assert_allclose(free_cumulants_from_moments(m, 5), kappa, atol=1e-12)


def test_discrete_measures_from_every_accepted_form() -> None:
    ev = np.array([1.0, 2.0, 2.0, 5.0])
    law = as_law(ev.tolist())
    assert isinstance(law, DiscreteMeasure)
    np.testing.assert_allclose(law.nodes, [1, 2, 5])
    np.testing.assert_allclose(law.weights, [0.25, 0.5, 0.25])
    z = np.array([0.5 + 1j])
    np.testing.assert_allclose(law.stieltjes(z), np.mean(1 / (z[0] - ev)))
    assert law.moments(2).tolist() == pytest.approx([1, ev.mean(), np.mean(ev**2)])
    pair = as_law((np.array([0.0, 1.0]), np.array([0.3, 0.7])))
    np.testing.assert_allclose(pair.weights, [0.3, 0.7])

    class SLQLike:  # per-probe Ritz pairs, as the spectral engine's SpectralDensity holds them
        nodes = np.array([[0.0, 1.0], [1.0, 3.0]])
        weights = np.array([[0.5, 0.5], [0.25, 0.75]])

    pooled = as_law(SLQLike())
    np.testing.assert_allclose(pooled.nodes, [0, 1, 3])
    np.testing.assert_allclose(pooled.weights, [0.25, 0.375, 0.375])
    assert as_law(semicircle(1.0)) == semicircle(1.0)


def test_laws_save_and_load(tmp_path) -> None:
    for law in (semicircle(0.4), marchenko_pastur(1.5, scale=0.3), product_wishart(1.0, 0.5)):
        law.save(tmp_path / "law")
        assert load(tmp_path / "law") == law
    d = as_law([1.0, 3.0])
    d.save(tmp_path / "d.json")
    back = DiscreteMeasure.load(tmp_path / "d")
    np.testing.assert_array_equal(back.nodes, d.nodes)
    with pytest.raises(InputError, match="not a Semicircle"):
        Semicircle.load(tmp_path / "d")
    with pytest.raises(InputError, match="missing"):
        load(tmp_path / "nothing")


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(InputError, match="sigma must be a positive"):
        semicircle(-1.0)
    with pytest.raises(InputError, match="phi must be a positive"):
        marchenko_pastur(0.0)
    with pytest.raises(InputError, match="give only one"):
        marchenko_pastur(0.5, scale=1.0, sigma=2.0)
    with pytest.raises(InputError, match="matrix size n must be an int >= 2"):
        semicircle(1.0).sample_matrix(1, generator=0)
    with pytest.raises(InputError, match=r"numpy\.random\.Generator or an int seed"):
        semicircle(1.0).sample_matrix(10, generator="seed")
    with pytest.raises(InputError, match="moment order"):
        semicircle(1.0).moments(-1)
    with pytest.raises(InputError, match="weights must sum to 1"):
        as_law((np.array([0.0, 1.0]), np.array([0.3, 0.3])))
    with pytest.raises(InputError, match="same shape"):
        DiscreteMeasure.from_nodes_weights([0.0, 1.0], [1.0])
    with pytest.raises(InputError, match="must be 1-D"):
        as_law(np.ones((3, 3)))
    with pytest.raises(InputError, match="expected a spectral law"):
        as_law("eigenvalues")
    with pytest.raises(InputError, match="even n"):
        product_wishart(1.0, 0.5).sample_matrix(11, generator=0)
    assert isinstance(MarchenkoPastur(0.5), MarchenkoPastur) and isinstance(
        Semicircle(1.0), Semicircle
    )
