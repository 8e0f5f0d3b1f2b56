"""Pennington & Bahri at large phi: the support scan must not miss the narrow bump that H1
makes of H0's atom at 0 (theory.md §2.4-2.6).

For phi > 1, H0 ~ MP(phi) has an atom of mass 1 - 1/phi at 0 and its continuous part (mass
1/phi) near phi; adding H1 (semicircle of radius 2 sqrt(2 eps)) spreads the atom into a bump of
width ~1 around 0, about half of it negative. So the index tends to 1/2 as phi -> inf, with
alpha = (1 - 1/phi)/2 + O(phi^-2). Before the fix the scan step, (range)/20000 ~ phi/20000, jumped
over the bump once phi >~ 1e5 and the index came out as 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from curvscope.rmt import index, pennington_bahri

PHIS = (1e2, 1e3, 1e4, 1e5, 1e6)


def test_reported_examples() -> None:
    assert pennington_bahri(0.05, 1e4).index == pytest.approx(0.49995, abs=1e-6)
    assert pennington_bahri(0.05, 1e5).index == pytest.approx(0.499995, abs=1e-7)
    assert index(0.05, 1e6) == pytest.approx(0.4999995, abs=1e-8)


@pytest.mark.parametrize("model", ["wishart+wigner", "improved"])
@pytest.mark.parametrize("phi", PHIS)
def test_total_mass_is_one_at_large_phi(model: str, phi: float) -> None:
    law = pennington_bahri(0.05, phi, model=model)
    total = law.mass_between(-math.inf, math.inf) + sum(m for _, m in law.atoms)
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_index_approaches_one_half_at_rate_one_over_phi_squared(eps: float) -> None:
    # alpha - (1 - 1/phi)/2 = c / phi^2 + o(phi^-2): phi^2 times the excess must settle to one
    # constant c > 0 over four decades (a scan that loses the bump gives -phi^2/2 instead).
    excess = np.array([index(eps, phi) - (1 - 1 / phi) / 2 for phi in PHIS])
    scaled = excess * np.array(PHIS) ** 2
    assert np.all(scaled > 0), scaled
    np.testing.assert_allclose(scaled[1:], scaled[-1], rtol=0.005)


def test_improved_model_at_large_phi_has_the_atom_and_little_negative_mass() -> None:
    # The improved model's atom at 0 holds 1 - 2/phi; the rest is continuous and its negative
    # part is at most the continuous mass 2/phi.
    for phi in PHIS:
        law = pennington_bahri(0.05, phi, model="improved")
        assert law.atoms == ((0.0, pytest.approx(1 - 2 / phi)),)
        assert 0 < law.index < 2 / phi
