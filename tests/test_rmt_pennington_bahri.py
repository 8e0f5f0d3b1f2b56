"""Pennington & Bahri: densities (eqs. 18, 30), index (19), eps_c (21, 22, 32, 33), index fit.

Spec: theory.md §2.4-2.6, §2.8; check names 001.cubic18.*, 001.eps_c21.*, 001.eps_c22.expansion,
001.quartic30.*, 001.eps_c32.*, 001.eps_c33.expansion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _rmt_helpers import free_cumulant_moments, ks_distance, one_blas_thread  # noqa: F401
from scipy import integrate

from curvscope.errors import InputError
from curvscope.rmt import (
    IndexScalingFit,
    critical_energy,
    critical_energy_curve,
    fit_index_scaling,
    index,
    index_curve,
    load,
    pennington_bahri,
)


def _positive_disc_root(a, b, c, d) -> float:
    """Largest positive real root in eps of the cubic discriminant (coefficients: numpy poly1d)."""
    disc = 18 * a * b * c * d - 4 * b**3 * d + b**2 * c**2 - 4 * a * c**3 - 27 * a**2 * d**2
    return max(r.real for r in disc.roots if abs(r.imag) < 1e-9 and r.real > 1e-12)


def _kappa_ww(eps: float, phi: float, s: float = 1.0) -> list[float]:
    # R = s/(1 - s phi w) + 2 eps w: kappa_1 = s, kappa_2 = s^2 phi + 2 eps, kappa_k = s^k phi^(k-1)
    return [s, s**2 * phi + 2 * eps, s**3 * phi**2, s**4 * phi**3]


def _kappa_improved(eps: float, phi: float, s: float = 1.0) -> list[float]:
    return [s, s**2 * phi + eps * phi / 2, s**3 * phi**2, s**4 * phi**3 + eps**2 * phi**3 / 4]


@pytest.mark.parametrize(("eps", "phi"), [(0.1, 0.5), (0.05, 1.5), (0.3, 0.25)])
def test_eq18_density_mass_and_moments(eps: float, phi: float) -> None:
    # 001.cubic18.density: mass 1 and moments equal the free-cumulant moments
    law = pennington_bahri(eps, phi)
    x = np.linspace(-8, 14, 120001)
    rho = law.pdf(x)
    mom = [np.trapezoid(rho * x**k, x) for k in range(5)]
    np.testing.assert_allclose(mom, free_cumulant_moments(_kappa_ww(eps, phi), 4), rtol=2e-5)
    assert law.mass_between(-np.inf, np.inf) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(
        law.moments(4), free_cumulant_moments(_kappa_ww(eps, phi), 4), rtol=1e-12
    )


def test_stieltjes_solves_eq17_and_matches_quadrature() -> None:
    eps, phi = 0.15, 0.4
    law = pennington_bahri(eps, phi)
    z = np.array([0.7 + 0.3j, -0.4 + 1.1j, 3.0 + 0.01j])
    g = law.stieltjes(z)
    np.testing.assert_allclose(
        1 / (1 - phi * g) + 2 * eps * g + 1 / g, z, atol=1e-10
    )  # 001.cubic18.derivation
    ((lo, hi),) = law.intervals
    for zi, gi in zip(z[:2], g[:2]):
        f = lambda t, part, zi=zi: part(law.pdf(np.array([t]))[0] / (zi - t))  # noqa: E731
        ref = (
            integrate.quad(f, lo, hi, args=(np.real,), limit=200)[0]
            + 1j * integrate.quad(f, lo, hi, args=(np.imag,), limit=200)[0]
        )
        assert abs(gi - ref) < 1e-7


@pytest.mark.parametrize(
    ("eps", "phi", "ref"), [(0.1, 0.5, 0.11356), (0.05, 1.5, 0.23323), (0.3, 0.25, 0.17024)]
)
def test_index_reference_values_and_quadrature(eps: float, phi: float, ref: float) -> None:
    alpha = index(eps, phi)
    assert alpha == pytest.approx(ref, abs=6e-6)  # theory.md §2.5 values
    law = pennington_bahri(eps, phi)
    lo = law.intervals[0][0]
    quad = integrate.quad(lambda t: float(law.pdf(np.array([t]))[0]), lo, 0.0, limit=200)[0]
    assert alpha == pytest.approx(quad, abs=1e-7)


@pytest.mark.parametrize(("eps", "phi", "seed"), [(0.1, 0.5, 1), (0.05, 1.5, 2), (0.3, 0.25, 3)])
def test_index_matches_sampled_wishart_plus_wigner(eps: float, phi: float, seed: int) -> None:
    # 001.cubic18.vs_sample+index_alpha at n >= 1000; the fraction of negative eigenvalues has a
    # finite-size error O(1/n) (rigidity), so 0.006 at n = 1200 is a loose bound
    law = pennington_bahri(eps, phi)
    ev = np.linalg.eigvalsh(law.sample_matrix(1200, generator=np.random.default_rng(seed)))
    assert abs(np.mean(ev < 0) - index(eps, phi)) < 0.006
    assert ks_distance(ev, law.cdf) < 0.01


def test_index_is_vectorised_over_eps() -> None:
    a = index(np.array([0.1, 0.3]), 0.25)
    assert a.shape == (2,) and a[1] == pytest.approx(0.17024, abs=6e-6)


@pytest.mark.parametrize("phi", [0.05, 0.2, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("s", [1.0, 0.6])
def test_critical_energy_is_the_discriminant_root(phi: float, s: float) -> None:
    # 001.eps_c21.discriminant / 001.eps_c32.discriminant at z = 0, coefficients as polynomials in eps
    p1 = np.poly1d
    ww = _positive_disc_root(p1([2 * s * phi, 0]), p1([-2, 0]), p1([s * phi - s]), p1([-1]))
    assert critical_energy(phi, scale=s) == pytest.approx(ww, rel=1e-10)
    a3, a2 = p1([s * phi**2 * (phi - 2), 0]), p1([phi * (1 - phi), 0])
    imp = _positive_disc_root(a3, a2, p1([2 * s * (1 - phi)]), p1([2.0]))
    assert critical_energy(phi, model="improved", scale=s) == pytest.approx(imp, rel=1e-10)
    # the printed eq. 21 (s = 1) agrees away from phi = 1
    printed = (1 - 20 * phi - 8 * phi**2 + (1 + 8 * phi) ** 1.5) / 16
    assert critical_energy(phi) == pytest.approx(printed, rel=1e-9)


def test_critical_energy_reference_values_and_expansions() -> None:
    np.testing.assert_allclose(
        critical_energy(np.array([0.1, 0.25, 0.5, 0.75])),
        [0.083435, 0.043510, 0.011271, 0.0012662],
        rtol=5e-5,
    )
    np.testing.assert_allclose(
        critical_energy(np.array([0.1, 0.5, 0.9]), model="improved"),
        [3.1261, 0.081037, 3.3032e-4],
        rtol=5e-5,
    )
    for d in (1e-2, 1e-3):
        # eq. 22: eps_c = (2/27) d^3 (1 + d/3 + O(d^2)); eq. 33: (8/27) s^2 d^3 (1 + O(d))
        ratio = critical_energy(1 - d) / (2 / 27 * d**3)
        assert abs((ratio - 1) / d - 1 / 3) < 0.01
        assert (
            abs(critical_energy(1 - d, model="improved", scale=0.7) / (8 / 27 * 0.49 * d**3) - 1)
            < 2 * d
        )
    # the printed eq. 32 loses all accuracy near phi = 1; the stable form does not
    phi = 1 - 1e-4
    chi = 1 + 16 * phi - 8 * phi**2
    printed = (27 - 18 * chi - chi**2 + 8 * chi**1.5) / (32 * phi * (1 - phi) ** 3)
    stable = critical_energy(phi, model="improved")
    assert stable == pytest.approx(8 / 27 * 1e-12, rel=1e-3) and abs(printed) > 1e-5
    assert critical_energy(1.5) < 0  # no gap for phi >= 1


@pytest.mark.parametrize("model", ["wishart+wigner", "improved"])
def test_lower_edge_crosses_zero_at_eps_c_with_exponent_three_halves(model: str) -> None:
    # 001.eps_c21.spectral_edge+alpha_3_2 and 001.eps_c32.spectral_edge+alpha_3_2
    for phi in (0.2, 0.5, 0.8):
        ec = critical_energy(phi, model=model)
        below, above = (
            pennington_bahri(0.95 * ec, phi, model=model),
            pennington_bahri(1.05 * ec, phi, model=model),
        )
        assert below.intervals[0][0] > 0 and below.index == 0.0
        assert above.intervals[0][0] < 0 and above.index > 0
    ec = critical_energy(0.5, model=model)
    d = np.array([1e-3, 1e-2])
    al = index(ec * (1 + d), 0.5, model=model)
    slope = (np.diff(np.log(al)) / np.diff(np.log(d))).item()
    assert abs(slope - 1.5) < 0.03


@pytest.mark.parametrize(("eps", "phi", "s"), [(2.0, 0.3, 1.0), (0.5, 0.5, 1.5), (1.0, 1.5, 1.0)])
def test_quartic30_density_mass_and_moments(eps: float, phi: float, s: float) -> None:
    law = pennington_bahri(eps, phi, model="improved", scale=s)
    x = np.linspace(-15, 25, 120000) + 1e-7
    rho = law.pdf(x)
    mom = [np.trapezoid(rho * x**k, x) for k in range(5)]
    np.testing.assert_allclose(
        mom, free_cumulant_moments(_kappa_improved(eps, phi, s), 4), rtol=5e-5
    )
    assert law.mass_between(-np.inf, np.inf) == pytest.approx(1.0, abs=1e-6)
    z = np.array([0.7 + 0.3j, -0.4 + 1.1j])
    g = law.stieltjes(z)
    r = s / (1 - s * phi * g) + eps * phi * g / (2 - eps * phi**2 * g**2)  # eq. 29
    np.testing.assert_allclose(r + 1 / g, z, atol=1e-9)


def test_improved_model_atom_for_phi_above_two() -> None:
    # 001.quartic30.atom_phi_gt_2: continuous mass 2/phi, atom 1 - 2/phi at 0 (erratum §2.6)
    law = pennington_bahri(1.0, 3.0, model="improved")
    assert law.atoms == ((0.0, pytest.approx(1 / 3)),)
    assert law.mass_between(-np.inf, np.inf) == pytest.approx(2 / 3, abs=1e-6)
    assert pennington_bahri(1.0, 1.5, model="improved").atoms == ()


def test_improved_model_against_sampled_matrices() -> None:
    # 001.quartic30.vs_sample: alpha(1.5, 0.4; s = 1) = 0.1220 vs sampled
    law = pennington_bahri(1.5, 0.4, model="improved")
    assert law.index == pytest.approx(0.1220, abs=2e-4)
    ev = np.linalg.eigvalsh(law.sample_matrix(1400, generator=np.random.default_rng(4)))
    assert abs(np.mean(ev < 0) - law.index) < 0.008
    kap = _kappa_improved(1.5, 0.4)
    emp = [np.mean(ev**k) for k in range(1, 5)]
    np.testing.assert_allclose(emp, free_cumulant_moments(kap, 4)[1:], rtol=0.03)


def test_zero_energy_is_marchenko_pastur() -> None:
    law = pennington_bahri(0.0, 0.5)
    x = np.linspace(0.05, 2.9, 50)
    lo, hi = (1 - math.sqrt(0.5)) ** 2, (1 + math.sqrt(0.5)) ** 2
    ref = np.sqrt(np.clip((x - lo) * (hi - x), 0, None)) / (2 * np.pi * 0.5 * x)
    np.testing.assert_allclose(law.pdf(x), ref, atol=1e-10)
    assert law.index == 0.0


def test_fit_index_scaling_recovers_planted_parameters() -> None:
    eps = np.linspace(0.2, 0.6, 12)
    exact = fit_index_scaling(eps, 0.8 * (eps - 0.1) ** 1.5)
    assert exact.alpha0 == pytest.approx(0.8, rel=1e-8) and exact.critical_energy == pytest.approx(
        0.1, abs=1e-9
    )
    rng = np.random.default_rng(5)
    err = 0.002
    noisy_alpha = 0.8 * (eps - 0.1) ** 1.5 + err * rng.standard_normal(eps.size)
    fit = fit_index_scaling(eps, noisy_alpha, alpha_stderr=err)
    assert abs(fit.alpha0 - 0.8) < 4 * fit.alpha0_stderr
    assert abs(fit.critical_energy - 0.1) < 4 * fit.critical_energy_stderr
    assert 0 < fit.critical_energy_stderr < 0.05
    # Monte-Carlo coverage of the stated uncertainty: the z-scores have unit spread
    z = []
    for _ in range(200):
        a = 0.8 * (eps - 0.1) ** 1.5 + err * rng.standard_normal(eps.size)
        f = fit_index_scaling(eps, a, alpha_stderr=err)
        z.append((f.critical_energy - 0.1) / f.critical_energy_stderr)
    assert 0.8 < np.std(z) < 1.25


def test_fit_index_scaling_on_the_theoretical_index() -> None:
    # near eps_c the theory's own alpha follows the 3/2 law: the fit finds eps_c and p = 3/2
    phi = 0.5
    ec = critical_energy(phi)
    eps = ec * (1 + np.geomspace(1e-3, 2e-2, 8))
    fit = fit_index_scaling(eps, index(eps, phi), fit_exponent=True)
    assert fit.critical_energy == pytest.approx(ec, rel=1e-3)
    assert fit.exponent == pytest.approx(1.5, abs=0.03)


def test_curves_and_results_round_trip(tmp_path) -> None:
    curve = index_curve(0.5, [0.0, 0.05, 0.1])
    assert curve.alpha[0] == 0.0 and curve.alpha[2] == pytest.approx(0.11356, abs=6e-6)
    curve.save(tmp_path / "c")
    back = load(tmp_path / "c")
    np.testing.assert_array_equal(back.alpha, curve.alpha)
    ec = critical_energy_curve(np.array([0.0 + 1e-9, 0.5]))
    np.testing.assert_allclose(ec.fit_tanh, [0.5, 0.125], rtol=1e-6)
    np.testing.assert_allclose(ec.fit_linear, [0.5, 0.25], rtol=1e-6)
    assert ec.critical_energy[0] == pytest.approx(1 / 8, rel=1e-6)  # eq. 21 at phi -> 0: 2/16
    law = pennington_bahri(0.1, 0.5, model="improved", sigma=2.0)
    law.save(tmp_path / "l")
    assert load(tmp_path / "l") == law and law.scale == 2.0
    fit = fit_index_scaling(np.linspace(0.2, 0.6, 5), np.linspace(0.2, 0.6, 5) ** 1.5)
    fit.save(tmp_path / "f")
    assert isinstance(IndexScalingFit.load(tmp_path / "f"), IndexScalingFit)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="model must be one of"):
        pennington_bahri(0.1, 0.5, model="wigner")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"eps .* must be a finite number >= 0"):
        pennington_bahri(-0.1, 0.5)
    with pytest.raises(InputError, match="phi must be positive"):
        critical_energy(0.0)
    with pytest.raises(InputError, match=r"phi <= 2\.06"):
        critical_energy(3.0, model="improved")
    with pytest.raises(InputError, match=r"stieltjes needs Im z > 0"):
        pennington_bahri(0.1, 0.5).stieltjes(np.array([0.5 + 0j]))
    with pytest.raises(InputError, match="same length"):
        fit_index_scaling([0.1, 0.2], [0.1])
    with pytest.raises(InputError, match="need more than 2 pairs with alpha > 0"):
        fit_index_scaling([0.1, 0.2, 0.3], [0.0, 0.0, 0.1])
    with pytest.raises(InputError, match="alpha_stderr must be positive"):
        fit_index_scaling([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], alpha_stderr=0.0)
