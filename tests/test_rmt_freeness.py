"""Free-independence test (001 §5.2.1, theory.md §2.7; check 001.freeness_test)."""

from __future__ import annotations

import numpy as np
import pytest
from _rmt_helpers import one_blas_thread  # noqa: F401
from scipy import stats

from curvscope.errors import InputError
from curvscope.rmt import (
    FreenessTest,
    freeness_test,
    haar_orthogonal,
    load,
    marchenko_pastur,
    semicircle,
)


def test_free_pair_is_at_the_null_and_a_commuting_pair_is_far() -> None:
    rng = np.random.default_rng(5)
    p = 400
    h0 = marchenko_pastur(0.5).sample_matrix(p, generator=rng)
    h1 = semicircle(np.sqrt(0.2)).sample_matrix(p, generator=rng)
    _, u0 = np.linalg.eigh(h0)
    aligned = (u0 * np.sort(np.linalg.eigvalsh(h1))) @ u0.T  # commutes with h0: not free
    free = freeness_test(h0, h1, num_rotations=3, generator=np.random.default_rng(1))
    dep = freeness_test(h0, aligned, num_rotations=3, generator=np.random.default_rng(1))
    assert free.wasserstein.shape == (3,) and free.null_wasserstein.shape == (3,)
    assert free.ratio < 3 and dep.ratio > 10
    assert np.mean(dep.ks) > 5 * np.mean(free.null_ks)
    # W1 against scipy's implementation (independent), normalised by std(spec(A + B))
    base = np.linalg.eigvalsh(h0 + h1)
    q = haar_orthogonal(p, generator=np.random.default_rng(1))
    ref = stats.wasserstein_distance(base, np.linalg.eigvalsh(h0 + q @ h1 @ q.T)) / np.std(base)
    assert free.wasserstein[0] == pytest.approx(ref, rel=1e-9)
    ks = stats.ks_2samp(base, np.linalg.eigvalsh(h0 + q @ h1 @ q.T)).statistic
    assert free.ks[0] == pytest.approx(ks, abs=1e-12)
    assert set(free.summary()) >= {"wasserstein_mean", "null_wasserstein_mean", "ratio"}


def test_haar_orthogonal_is_orthogonal_and_unbiased() -> None:
    q = haar_orthogonal(50, generator=0)
    np.testing.assert_allclose(q.T @ q, np.eye(50), atol=1e-12)
    # Haar: E[Q_11^2] = 1/n; the sign fix removes QR's bias towards positive diagonals
    rng = np.random.default_rng(3)
    diag = np.array([haar_orthogonal(4, generator=rng)[0, 0] for _ in range(4000)])
    assert abs(diag.mean()) < 4 * diag.std() / np.sqrt(diag.size)
    assert abs(np.mean(diag**2) - 0.25) < 4 * np.std(diag**2) / np.sqrt(diag.size)


def test_result_round_trip_and_bad_inputs(tmp_path) -> None:
    a = np.diag([1.0, 2.0, 3.0, 4.0])
    res = freeness_test(a, np.diag([1.0, 0.0, 0.0, -1.0]), num_rotations=2, generator=0)
    res.save(tmp_path / "f")
    back = load(tmp_path / "f")
    assert isinstance(back, FreenessTest)
    np.testing.assert_array_equal(back.wasserstein, res.wasserstein)
    with pytest.raises(InputError, match="zero spread"):
        freeness_test(a, a[::-1, ::-1].copy(), generator=0)  # A + B = 5 I
    with pytest.raises(InputError, match="must be symmetric"):
        freeness_test(np.triu(np.ones((3, 3))), np.eye(3), generator=0)
    with pytest.raises(InputError, match="same shape"):
        freeness_test(np.eye(3), np.eye(4), generator=0)
    with pytest.raises(InputError, match="num_rotations must be an int >= 2"):
        freeness_test(np.eye(3), np.eye(3), num_rotations=1, generator=0)
    with pytest.raises(InputError, match="square matrix"):
        freeness_test(np.ones(3), np.eye(3), generator=0)
