"""The split-half noise estimator (theory.md §1.4(a)) and the Theorem-1 comparison (§1.3)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from curvscope import DenseOperator
from curvscope.data import AugmentedViews, load_dataset
from curvscope.errors import InputError
from curvscope.experiments import split_half_noise, theorem1_comparison
from curvscope.experiments._sources import split_halves


def _sym(p: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(p, p, generator=g, dtype=torch.float64)
    return (a + a.T) / 2


def test_split_half_estimate_is_unbiased_for_the_frobenius_norm() -> None:
    p = 40
    a, b = _sym(p, 0), _sym(p, 1)
    truth = float(torch.linalg.matrix_norm((a - b) / 2) ** 2 / p)  # ||D||_F^2 / P
    est = split_half_noise(
        DenseOperator(a), DenseOperator(b), num_data=20, half_size=10, num_probes=400, seed=3
    )
    assert abs(est.s2 - truth) < 4 * est.s2_stderr
    assert est.s2_stderr < 0.1 * truth
    assert est.q == p / 20 and math.isclose(est.sigma2, est.s2 / est.q)
    assert math.isclose(est.noise_scale, math.sqrt(est.s2))


def test_split_half_rescales_an_odd_sample_count_and_is_exact_for_orthogonal_d() -> None:
    p = 16
    # D = (A - B)/2 = I: every Rademacher probe gives ||D v||^2 / P = 1 exactly.
    a, b = 3 * torch.eye(p, dtype=torch.float64), torch.eye(p, dtype=torch.float64)
    est = split_half_noise(
        DenseOperator(a), DenseOperator(b), num_data=11, half_size=5, num_probes=3
    )
    assert est.s2 == pytest.approx(10 / 11, rel=1e-12) and est.s2_stderr == 0


def test_split_half_rejects_bad_budgets() -> None:
    a = DenseOperator(torch.eye(3))
    with pytest.raises(InputError, match="num_probes must be an integer >= 2"):
        split_half_noise(a, a, num_data=4, half_size=2, num_probes=1)
    with pytest.raises(InputError, match="2 \\* half_size <= num_data"):
        split_half_noise(a, a, num_data=3, half_size=2)


def test_split_halves_are_disjoint_equal_and_keep_views_of_a_sample_together() -> None:
    train = load_dataset("digits", "train")
    n = len(train)
    a, b = split_halves(train, seed=0, batch_size=100)
    assert a.num_samples == b.num_samples == n // 2
    assert not set(a.indices.tolist()) & set(b.indices.tolist())
    aug = AugmentedViews(train, views=3, seed=0)
    ha, hb = split_halves(aug, seed=0, batch_size=100)
    samples_a = {i % n for i in ha.indices.tolist()}
    assert samples_a == set(a.indices.tolist())
    assert not samples_a & {i % n for i in hb.indices.tolist()}
    assert ha.num_samples == 3 * (n // 2)
    x, _ = next(iter(ha))
    assert torch.equal(x, next(iter(ha))[0])  # re-iterable, same batches


def test_theorem1_comparison_against_hand_values() -> None:
    emp = SimpleNamespace(smallest=-0.3, largest=0.6)  # what it reads of a SetSummary
    aug = SimpleNamespace(smallest=-0.01, largest=0.5)
    noise = SimpleNamespace(noise_scale=0.1, s2=0.01)  # ... and of a NoiseEstimate
    out = theorem1_comparison(
        emp,
        aug,
        noise_empirical=noise,
        noise_augmented=SimpleNamespace(s2=0.0025),
        num_params=100,
        num_train=50,
        views=4,
    )
    assert out.shrinks and out.q_empirical == 2 and out.q_augmented_nominal == 0.5
    fwd = out.forward
    assert fwd.predicted_largest == pytest.approx(0.5 + 0.01 / 0.5)  # outlier lambda + s^2/lambda
    assert fwd.predicted_smallest == pytest.approx(-0.2)  # |-0.01| < s: absorbed, edge -2s
    assert fwd.smallest_from_noise and not fwd.largest_from_noise
    rev = out.reverse.predicted_true
    assert rev[1] == pytest.approx((0.6 + np.sqrt(0.36 - 0.04)) / 2)
    assert rev[0] == pytest.approx((-0.3 - np.sqrt(0.09 - 0.04)) / 2)
    assert out.effective_num_augmented == pytest.approx(50 * 4)
    no_noise = theorem1_comparison(
        aug, emp, noise_empirical=None, noise_augmented=None, num_params=1, num_train=1, views=1
    )
    assert no_noise.forward is None and not no_noise.shrinks
