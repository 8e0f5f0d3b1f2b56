"""Paper 000 Theorem 1 (spiked extremes) against simulated rank-r + GOE matrices at P = 2000.

Spec: theory.md §1.2 (000.lemma3.outliers), §1.3 ((P, N) form, inversion).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _rmt_helpers import one_blas_thread  # noqa: F401

from curvscope.errors import InputError
from curvscope.rmt import DeflatedExtremes, deflated_extremes, load, noise_scale, spiked_extremes


def _simulate(spikes: np.ndarray, p: int, element_var: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((p, spikes.size)))
    g = rng.standard_normal((p, p)) * math.sqrt(element_var)
    return np.linalg.eigvalsh((u * spikes) @ u.T + (g + g.T) / math.sqrt(2))


def test_spiked_extremes_match_a_rank4_plus_goe_simulation() -> None:
    # H_emp = H_true + eps, eps GOE with element variance sigma^2/N, P = 2000, N = 1000:
    # s = sqrt(P/N) sigma = 1 for sigma = 1/sqrt(2). Spikes above (3, 2, -2.5) and below (0.6) s.
    p, n_data, sigma = 2000, 1000, 1 / math.sqrt(2)
    spikes = np.array([3.0, 2.0, -2.5, 0.6])
    pred = spiked_extremes(spikes, sigma=sigma, num_params=p, num_data=n_data)
    assert pred.noise_scale == pytest.approx(1.0)
    assert pred.separated.tolist() == [True, True, True, False]
    np.testing.assert_allclose(pred.empirical, [3 + 1 / 3, 2.5, -2.9, 2.0])
    assert pred.largest == pytest.approx(10 / 3) and pred.smallest == pytest.approx(-2.9)
    assert not pred.largest_from_noise and not pred.smallest_from_noise
    ev = _simulate(spikes, p, sigma**2 / n_data, seed=6)
    # outliers fluctuate by O(P^-1/2) ~ 0.03, edges by O(P^-2/3) ~ 0.01
    np.testing.assert_allclose([ev[-1], ev[-2], ev[0]], pred.empirical[:3], atol=0.1)
    assert abs(ev[-3] - 2.0) < 0.05  # the absorbed 0.6 leaves the third eigenvalue at the edge 2s
    assert abs(ev[1] + 2.0) < 0.05
    assert abs(ev[-1] - 3.0) > 0.2  # the naive reading (no broadening) is clearly wrong


def test_all_spikes_below_threshold_leave_the_noise_edges() -> None:
    p, s = 2000, 1.5
    spikes = np.array([1.2, -0.9])  # |lambda| < s: both absorbed
    pred = spiked_extremes(spikes, scale=s)
    assert pred.largest_from_noise and pred.smallest_from_noise
    assert (pred.largest, pred.smallest) == (3.0, -3.0)
    ev = _simulate(spikes, p, s**2 / p, seed=7)
    assert abs(ev[-1] - 3.0) < 0.06 and abs(ev[0] + 3.0) < 0.06


def test_deflation_inverts_the_broadening_and_flags_noise_edges(tmp_path) -> None:
    lam = np.array([6.0, 3.5, -4.0, 1.0])
    fwd = spiked_extremes(lam, scale=math.sqrt(2.0))
    back = deflated_extremes(fwd.empirical, scale=math.sqrt(2.0))
    np.testing.assert_allclose(back.true[:3], lam[:3], rtol=1e-12)
    assert back.resolved.tolist() == [True, True, True, False]
    assert math.isnan(back.true[3]) and back.bound == pytest.approx(math.sqrt(2))
    assert len(back.notes) == 1 and "set by the noise alone" in back.notes[0]
    # against a simulation: measured outliers deflate to the planted spikes
    ev = _simulate(lam[:3], 1000, 2.0 / 1000, seed=8)
    est = deflated_extremes([ev[-1], ev[-2], ev[0]], scale=math.sqrt(2.0))
    np.testing.assert_allclose(est.true, [6.0, 3.5, -4.0], atol=0.15)
    back.save(tmp_path / "d")
    loaded = load(tmp_path / "d")
    assert isinstance(loaded, DeflatedExtremes) and loaded.notes == back.notes


def test_noise_scale_and_bad_inputs() -> None:
    assert noise_scale(sigma=2.0, num_params=400, num_data=100) == pytest.approx(4.0)
    with pytest.raises(InputError, match="missing num_data"):
        spiked_extremes([1.0], sigma=1.0, num_params=10)
    with pytest.raises(InputError, match="not both"):
        spiked_extremes([1.0], scale=1.0, sigma=1.0)
    with pytest.raises(InputError, match="num_params must be a positive int"):
        spiked_extremes([1.0], sigma=1.0, num_params=0, num_data=3)
    with pytest.raises(InputError, match=r"sigma .* must be > 0"):
        spiked_extremes([1.0], sigma=-1.0, num_params=3, num_data=3)
    with pytest.raises(InputError, match="finite numbers"):
        deflated_extremes([np.nan], scale=1.0)
    with pytest.raises(InputError, match="noise scale must be a positive"):
        deflated_extremes([1.0], scale=0.0)
