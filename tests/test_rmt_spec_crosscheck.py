"""Cross-check against the reference helpers of ../shared/spec/check_theory.py, where present.

The rmt tests reproduce every check of check_theory.py through the package's own functions
(test_rmt_laws, _free, _pennington_bahri, _spiked, _freeness); this module additionally compares
the package with the spec's small reference implementations when the spec folder is next to the
repository (it is outside the package, so the module is skipped elsewhere).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from curvscope.rmt import (
    critical_energy,
    index,
    marchenko_pastur,
    moments_from_free_cumulants,
    pennington_bahri,
    semicircle,
)

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "check_theory.py"
pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"{SPEC} not present")


@pytest.fixture(scope="module")
def ct():
    spec = importlib.util.spec_from_file_location("check_theory", SPEC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_densities_and_cdfs_equal_the_spec_helpers(ct) -> None:
    x = np.linspace(-3, 12, 3001) + 1e-7
    np.testing.assert_allclose(semicircle(1.3).pdf(x), ct.rho_sc(x, 1.3), atol=1e-14)
    np.testing.assert_allclose(semicircle(1.3).cdf(x), ct.cdf_sc(x, 1.3), atol=1e-14)
    for phi in (0.5, 2.5):
        law = marchenko_pastur(phi, scale=2.0)
        np.testing.assert_allclose(law.pdf(x), ct.rho_mp(x, 2.0, phi), atol=1e-13)
        np.testing.assert_allclose(law.cdf(x), ct.cdf_mp(x, 2.0, phi), atol=1e-6)
    np.testing.assert_allclose(
        pennington_bahri(0.1, 0.5).pdf(x), ct.density_poly(x, ct.cubic18, 0.1, 0.5)[0], atol=1e-12
    )
    law = pennington_bahri(0.5, 0.5, model="improved", scale=1.5)
    np.testing.assert_allclose(
        law.pdf(x), ct.density_poly(x, ct.quartic30, 0.5, 0.5, 1.5)[0], atol=1e-12
    )


def test_index_eps_c_and_moments_equal_the_spec_helpers(ct) -> None:
    for phi in (0.05, 0.3, 0.5, 0.9):
        assert critical_energy(phi) == pytest.approx(ct.eps_c_simple_stable(phi), rel=1e-13)
        assert critical_energy(phi, model="improved", scale=0.6) == pytest.approx(
            ct.eps_c_improved_stable(phi, 0.6), rel=1e-13
        )
    assert index(0.05, 1.5) == pytest.approx(ct.index_alpha(ct.cubic18, (0.05, 1.5))[0], abs=1e-7)
    kappa = np.array([0.0, 1.0, 1.7, 0.25, 0.125, 0.3])
    np.testing.assert_allclose(
        moments_from_free_cumulants(kappa, 5), ct.moments_from_free_cumulants(kappa, 5), rtol=1e-13
    )
