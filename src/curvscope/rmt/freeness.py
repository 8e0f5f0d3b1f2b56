"""Free-independence test of two symmetric matrices (001 §5.2.1, theory.md §2.7).

If ``A`` and ``B`` are free, ``spec(A + B)`` looks like ``spec(A + Q B Q^T)`` for a Haar-random
orthogonal ``Q``. The statistic is the Wasserstein-1 distance between the two eigenvalue sets,
divided by the standard deviation of ``spec(A + B)`` (scale-free), and the Kolmogorov-Smirnov
distance; the null spread comes from pairs of independent rotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from curvscope._validate import check_int
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.rmt._base import as_generator

__all__ = [
    "FreenessTest",
    "freeness_test",
    "haar_orthogonal",
    "ks_distance_samples",
    "wasserstein1_samples",
]


def haar_orthogonal(n: int, *, generator: Any) -> np.ndarray:
    """A Haar-distributed ``n x n`` orthogonal matrix: QR of a Gaussian matrix, columns times
    ``sign(diag R)`` (theory.md §2.7; without the sign fix the law is not Haar)."""
    rng = as_generator(generator)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def wasserstein1_samples(x: Any, y: Any) -> float:
    """Wasserstein-1 distance between two equal-size samples: ``mean |sort(x) - sort(y)|``."""
    x, y = np.sort(np.asarray(x, float)), np.sort(np.asarray(y, float))
    if x.shape != y.shape:
        raise InputError(f"samples must have the same size; got {x.size} and {y.size}")
    return float(np.mean(np.abs(x - y)))


def ks_distance_samples(x: Any, y: Any) -> float:
    """Two-sample Kolmogorov-Smirnov distance ``sup_t |F_x(t) - F_y(t)|``."""
    x, y = np.sort(np.asarray(x, float)), np.sort(np.asarray(y, float))
    t = np.concatenate([x, y])
    fx = np.searchsorted(x, t, side="right") / x.size
    fy = np.searchsorted(y, t, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


@savable
@dataclass(frozen=True, eq=False)
class FreenessTest:
    """Result of :func:`freeness_test`.

    Attributes:
        wasserstein: ``W1(spec(A+B), spec(A+Q_i B Q_i^T)) / std(spec(A+B))`` per rotation.
        ks: the KS distance per rotation.
        null_wasserstein, null_ks: the same statistics between ``spec(A+Q_i B Q_i^T)`` and
            ``spec(A+Q_j B Q_j^T)`` for every pair ``i < j`` (the spread if A, B were free).
        num_rotations: number of Haar rotations drawn.
        size: matrix size P.
    """

    wasserstein: np.ndarray
    ks: np.ndarray
    null_wasserstein: np.ndarray
    null_ks: np.ndarray
    num_rotations: int
    size: int

    @property
    def ratio(self) -> float:
        """``mean(wasserstein) / mean(null_wasserstein)``: about 1 when free, large when not."""
        return float(np.mean(self.wasserstein) / np.mean(self.null_wasserstein))

    def summary(self) -> dict[str, float]:
        """Means and standard deviations of the statistics and their null values."""
        return {
            "wasserstein_mean": float(np.mean(self.wasserstein)),
            "wasserstein_std": float(np.std(self.wasserstein)),
            "null_wasserstein_mean": float(np.mean(self.null_wasserstein)),
            "null_wasserstein_std": float(np.std(self.null_wasserstein)),
            "ks_mean": float(np.mean(self.ks)),
            "null_ks_mean": float(np.mean(self.null_ks)),
            "ratio": self.ratio,
        }


def _symmetric(name: str, m: Any) -> np.ndarray:
    try:
        arr = np.asarray(m, dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a real square matrix (numpy array); got {type(m).__name__}"
        ) from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise InputError(f"{name} must be a square matrix of size >= 2; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite entries")
    if np.max(np.abs(arr - arr.T)) > 1e-8 * max(1.0, float(np.max(np.abs(arr)))):
        raise InputError(
            f"{name} must be symmetric; max|M - M^T| = {np.max(np.abs(arr - arr.T)):.3g}"
        )
    return (arr + arr.T) / 2


def freeness_test(a: Any, b: Any, *, num_rotations: int = 4, generator: Any) -> FreenessTest:
    """How far from free two symmetric matrices are (001 §5.2.1, theory.md §2.7).

    .. math:: D_i = W_1\\bigl(\\mathrm{spec}(A + B), \\mathrm{spec}(A + Q_i B Q_i^T)\\bigr)
       / \\mathrm{std}\\,\\mathrm{spec}(A + B), \\quad Q_i \\text{ Haar}.

    Freeness is supported when ``D`` is comparable to the null ``D0`` between two independent
    rotations. Costs ``num_rotations + 1`` dense eigendecompositions (for large nets use SLQ
    densities instead).

    Args:
        a, b: symmetric ``P x P`` numpy arrays (e.g. GGN and H - GGN of a small net).
        num_rotations: Haar rotations to draw (>= 2, so that the null has a spread).
        generator: ``numpy.random.Generator`` or int seed.
    """
    a_m, b_m = _symmetric("a", a), _symmetric("b", b)
    if a_m.shape != b_m.shape:
        raise InputError(f"a and b must have the same shape; got {a_m.shape} and {b_m.shape}")
    check_int(
        "num_rotations",
        num_rotations,
        minimum=2,
        expected="an int >= 2 (the null needs two rotations)",
    )
    rng = as_generator(generator)
    n = a_m.shape[0]
    base = np.linalg.eigvalsh(a_m + b_m)
    scale = float(np.std(base))
    if scale == 0:
        raise InputError("spec(A + B) has zero spread; the scale-free distance is undefined")
    rotated = []
    for _ in range(int(num_rotations)):
        q = haar_orthogonal(n, generator=rng)
        rotated.append(np.linalg.eigvalsh(a_m + q @ b_m @ q.T))
    w = np.array([wasserstein1_samples(base, r) / scale for r in rotated])
    ks = np.array([ks_distance_samples(base, r) for r in rotated])
    pairs = list(combinations(range(len(rotated)), 2))
    nw = np.array([wasserstein1_samples(rotated[i], rotated[j]) / scale for i, j in pairs])
    nks = np.array([ks_distance_samples(rotated[i], rotated[j]) for i, j in pairs])
    return FreenessTest(w, ks, nw, nks, int(num_rotations), n)
