"""Independent references shared by the rmt tests (numpy/scipy only, no curvscope code)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_blas_thread():
    """One BLAS thread for the dense eigendecompositions: on 2 shared cores a multi-threaded
    OpenBLAS slows down several-fold as soon as another process competes (threadpoolctl comes
    with scikit-learn, a dependency)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def ks_distance(sample: np.ndarray, cdf) -> float:
    """sup_x |F_emp(x) - F(x)|, comparing both one-sided limits (valid with atoms)."""
    x = np.unique(sample)
    srt = np.sort(sample)
    n = srt.size
    right = np.abs(np.searchsorted(srt, x, "right") / n - cdf(x))
    left = np.abs(np.searchsorted(srt, x, "left") / n - cdf(x - 1e-12 * np.maximum(1, np.abs(x))))
    return float(max(right.max(), left.max()))


def free_cumulant_moments(kappa: list[float], order: int) -> np.ndarray:
    """Moments m_0..m_order from free cumulants kappa_1.. by summing over non-crossing partitions.

    Independent of the package's recursion: uses the explicit formulas of theory.md §0 up to 4.
    """
    k = list(kappa) + [0.0] * (5 - len(kappa))
    k1, k2, k3, k4 = k[0], k[1], k[2], k[3]
    m = [1.0, k1, k2 + k1**2, k3 + 3 * k2 * k1 + k1**3]
    m.append(k4 + 4 * k3 * k1 + 2 * k2**2 + 6 * k2 * k1**2 + k1**4)
    return np.array(m[: order + 1])
