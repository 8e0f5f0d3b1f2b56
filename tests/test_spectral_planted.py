"""SLQ, Lanczos, trace and top-k on matrices whose spectrum is planted or computed by eigh.

Oracles: numpy.linalg.eigh of the same dense float64 matrix, the planted eigenvalues, the
Lanczos bound of paper 000 theorem 3 (spec theory.md §1.7), and Monte-Carlo standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from curvscope import DenseOperator
from curvscope.errors import InputError
from curvscope.spectral import (
    exact_spectrum,
    hutchinson_trace,
    hutchpp_trace,
    lanczos,
    slq,
    top_eigenpairs,
)
from curvscope.spectral.probes import draw_probes, make_generator

P = 2000


def _rotated(eigenvalues: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    rotation = q * np.sign(np.diag(r))  # Haar
    matrix = (rotation * eigenvalues) @ rotation.T
    return (matrix + matrix.T) / 2, rotation


@pytest.fixture(scope="module")
def planted() -> dict[str, np.ndarray]:
    """Spike at zero (60%), a bulk in [0.05, 2], outliers 10..80, negatives -3, -2, -1.5."""
    rng = np.random.default_rng(1)
    lam = np.concatenate(
        [
            np.zeros(1200),
            rng.uniform(0.05, 2.0, P - 1207),
            [10.0, 20.0, 50.0, 80.0],
            [-3.0, -2.0, -1.5],
        ]
    )
    matrix, rotation = _rotated(lam, seed=2)
    return {"matrix": matrix, "rotation": rotation, "lam": lam}


@pytest.fixture(scope="module")
def lowrank_goe() -> np.ndarray:
    """Rank-3 spikes (3, 2, -2.5) plus a GOE with element variance 1/P (spec §1.2)."""
    rng = np.random.default_rng(3)
    u = np.linalg.qr(rng.standard_normal((P, 3)))[0]
    low = (u * np.array([3.0, 2.0, -2.5])) @ u.T
    g = rng.standard_normal((P, P)) / math.sqrt(P)
    return low + (g + g.T) / math.sqrt(2)


@pytest.fixture(scope="module")
def wishart() -> np.ndarray:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((P, 2 * P)) / math.sqrt(2 * P)
    return x @ x.T


_EIGH: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy.linalg.eigh, cached per fixture matrix (the oracle is the expensive part)."""
    if id(matrix) not in _EIGH:
        _EIGH[id(matrix)] = np.linalg.eigh(matrix)
    return _EIGH[id(matrix)]


def _theorem3_bounds(matrix: np.ndarray, q1: np.ndarray, steps: int) -> tuple[float, float]:
    """Golub & Van Loan thm 10.1.2 bounds on lambda_1 - theta_1 and theta_k - lambda_P."""
    lam, z = _eigh(matrix)
    lam, z = lam[::-1], z[:, ::-1]
    cos1, cosn = abs(q1 @ z[:, 0]), abs(q1 @ z[:, -1])
    tan1, tann = (1 - cos1**2) / cos1**2, (1 - cosn**2) / cosn**2
    rho1 = (lam[0] - lam[1]) / (lam[1] - lam[-1])
    rhon = (lam[-2] - lam[-1]) / (lam[0] - lam[-2])

    def cheb(x: float) -> float:
        return math.cosh((steps - 1) * math.acosh(x))

    width = lam[0] - lam[-1]
    return width * tan1 / cheb(1 + 2 * rho1) ** 2, width * tann / cheb(1 + 2 * rhon) ** 2


@pytest.mark.parametrize("case", ["planted", "lowrank_goe", "wishart"])
@pytest.mark.parametrize("steps", [5, 15, 40])
def test_extremal_ritz_values_within_theorem3_bound(
    case: str, steps: int, request: pytest.FixtureRequest
) -> None:
    fixture = request.getfixturevalue(case)
    matrix = fixture["matrix"] if isinstance(fixture, dict) else fixture
    seed = 11
    result = lanczos(DenseOperator(torch.as_tensor(matrix)), num_steps=steps, seed=seed)
    nodes, weights, _ = result.ritz(0)
    probe = draw_probes(P, 1, generator=make_generator(seed))[:, 0].numpy()
    bound_top, bound_bottom = _theorem3_bounds(matrix, probe / np.linalg.norm(probe), steps)
    lam = _eigh(matrix)[0]
    slack = 1e-10 * np.abs(lam).max()
    assert lam[-1] + slack >= nodes[-1] >= lam[-1] - bound_top - slack
    assert lam[0] - slack <= nodes[0] <= lam[0] + bound_bottom + slack
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_extremes_converge_and_weights_sum_to_one(planted: dict[str, np.ndarray]) -> None:
    density = slq(DenseOperator(torch.as_tensor(planted["matrix"])), num_steps=80, num_probes=3)
    lo, hi = density.extremal
    assert lo == pytest.approx(-3.0, abs=1e-9)
    assert hi == pytest.approx(80.0, abs=1e-9)
    for i in range(3):
        assert density.probe_nodes(i)[1].sum() == pytest.approx(1.0, abs=1e-12)
    assert density.pooled_weights.sum() == pytest.approx(1.0, abs=1e-12)
    # Residual bounds say which Ritz values are converged: the outliers are.
    top = np.argmax(density.nodes)
    assert density.residuals[top] < 1e-8


@pytest.mark.parametrize("case", ["planted", "lowrank_goe", "wishart"])
def test_pooled_moments_match_traces_within_4_stderr(
    case: str, request: pytest.FixtureRequest
) -> None:
    fixture = request.getfixturevalue(case)
    matrix = fixture["matrix"] if isinstance(fixture, dict) else fixture
    density = slq(DenseOperator(torch.as_tensor(matrix)), num_steps=12, num_probes=20, seed=5)
    moments = density.moments(4)
    lam = _eigh(matrix)[0]
    for j in range(1, 5):
        truth = np.mean(lam**j)
        assert abs(moments.values[j] - truth) < 4 * moments.stderr[j], (j, moments.values[j], truth)
    assert moments.values[0] == pytest.approx(1.0, abs=1e-12)
    # trace() is P times the first moment, with the same relative standard error
    est = density.trace()
    assert abs(est.value - lam.sum()) < 4 * est.stderr


def test_negative_mass_recovers_planted_negative_eigenvalues(
    planted: dict[str, np.ndarray],
) -> None:
    seed = 7
    density = slq(DenseOperator(torch.as_tensor(planted["matrix"])), num_steps=80, seed=seed)
    probe = draw_probes(P, 1, generator=make_generator(seed))[:, 0].numpy()
    q1 = probe / np.linalg.norm(probe)
    negative = planted["lam"] < 0
    # Probe-weighted truth: the weight the probe puts on the negative eigenvectors.
    truth = float(((planted["rotation"][:, negative].T @ q1) ** 2).sum())
    result = density.negative_mass()
    assert result.mass == pytest.approx(truth, rel=1e-6)
    assert result.count == 3
    # The zero spike (60% of eigenvalues) is recognised as the zero cluster.
    assert result.zero_cluster == pytest.approx(0.6, abs=0.05)


def test_negative_mass_rule_separates_degenerate_zero_spike() -> None:
    # spec §1.6 synthetic case: 85% at -1e-4 (a degenerate "zero" spike), 5% negative bulk.
    rng = np.random.default_rng(10)
    lam = np.concatenate(
        [
            np.full(2550, -1e-4),
            rng.uniform(-0.5, -0.05, 150),
            rng.uniform(0.05, 5, 297),
            [10.0, 20.0, 40.0],
        ]
    )
    seed = 3
    density = slq(DenseOperator(torch.diag(torch.as_tensor(lam))), num_steps=80, seed=seed)
    probe = draw_probes(len(lam), 1, generator=make_generator(seed))[:, 0].numpy()
    truth = float(np.sum((probe / np.linalg.norm(probe))[2550:2700] ** 2))
    result = density.negative_mass()
    assert abs(result.mass - truth) < 0.01
    assert result.naive > 0.5  # the plain rule counts the zero spike as negative
    assert float(result) == result.mass
    # A wide separation swallows the negative bulk into the zero cluster: the knob matters.
    assert density.negative_mass(tau_abs=1.0).mass < 0.001


def test_top_weights_smoothed_and_probe_views(planted: dict[str, np.ndarray]) -> None:
    density = slq(DenseOperator(torch.as_tensor(planted["matrix"])), num_steps=40, num_probes=2)
    top = density.top_weights(3)
    assert len(top) == 3
    assert top[0].weight >= top[1].weight >= top[2].weight
    assert abs(top[0].node) < 1e-6  # the heaviest node is the zero spike
    grid = np.linspace(-10, 90, 20001)
    curve = density.smoothed(grid, sigma=0.5)
    assert np.trapezoid(curve, grid) == pytest.approx(1.0, abs=1e-6)
    mean = np.trapezoid(curve * grid, grid)
    assert mean == pytest.approx(density.moments(1).values[1], abs=1e-6)


@pytest.mark.parametrize(
    "method",
    [
        "lanczos",
        pytest.param("eigsh", marks=pytest.mark.slow),
        pytest.param("block_lanczos", marks=pytest.mark.slow),
        pytest.param("lobpcg", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_top_eigenpairs_match_eigh(lowrank_goe: np.ndarray, method: str, which: str) -> None:
    lam, vecs = _eigh(lowrank_goe)
    # LOBPCG stalls above ~1e-9 relative residual here (it reports converged=False at 1e-10),
    # LOBPCG and ARPACK need more than the default product budget (max(300, 60 k)) for the GOE
    # edge (3 smallest: -2.9, -1.980, -1.975).
    tol = 1e-7 if method == "lobpcg" else 1e-10
    budget = 6000 if method in ("lobpcg", "eigsh") else None
    result = top_eigenpairs(
        DenseOperator(torch.as_tensor(lowrank_goe)),
        3,
        which=which,
        method=method,
        tol=tol,
        max_matvecs=budget,
    )
    truth = lam[::-1][:3] if which == "largest" else lam[:3]
    np.testing.assert_allclose(result.values, truth, rtol=1e-6)
    assert result.converged.all()
    assert result.residuals.max() < 1e-6 * np.abs(lam).max()
    # The outliers are simple: vectors agree with eigh's up to sign.
    idx = [len(lam) - 1] if which == "largest" else [0]
    overlap = abs(result.vectors[:, 0] @ vecs[:, idx[0]])
    assert overlap == pytest.approx(1.0, abs=1e-8)


def test_top_eigenpairs_magnitude_and_planted(planted: dict[str, np.ndarray]) -> None:
    result = top_eigenpairs(DenseOperator(torch.as_tensor(planted["matrix"])), 4, which="magnitude")
    np.testing.assert_allclose(result.values, [80.0, 50.0, 20.0, 10.0], rtol=1e-6)
    result = top_eigenpairs(torch.as_tensor(planted["matrix"]), 3, which="smallest")
    np.testing.assert_allclose(result.values, [-3.0, -2.0, -1.5], rtol=1e-6)


def test_hutchinson_and_hutchpp_within_4_stderr(wishart: np.ndarray, planted: dict) -> None:
    for matrix in (wishart, planted["matrix"]):
        op = DenseOperator(torch.as_tensor(matrix))
        truth = float(np.trace(matrix))
        for estimator in (hutchinson_trace, hutchpp_trace):
            est = estimator(op, num_matvecs=60, seed=1)
            assert est.num_matvecs == 60
            assert est.stderr > 0
            assert abs(est.value - truth) < 4 * est.stderr, (estimator.__name__, est, truth)
    # Hutch++ removes the outliers exactly: much smaller error bar on the planted matrix.
    op = DenseOperator(torch.as_tensor(planted["matrix"]))
    assert hutchpp_trace(op, num_matvecs=60).stderr < hutchinson_trace(op, num_matvecs=60).stderr


class _CountingOperator(DenseOperator):
    """A dense operator that records the width of every block product."""

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__(matrix)
        self.widths: list[int] = []

    def __matmul__(self, other: torch.Tensor) -> torch.Tensor:
        self.widths.append(1 if other.ndim == 1 else other.shape[1])
        return super().__matmul__(other)


def test_hutchinson_rounds_do_not_change_the_estimate(wishart: np.ndarray) -> None:
    matrix = torch.as_tensor(wishart)
    whole = hutchinson_trace(DenseOperator(matrix), num_matvecs=50, seed=3, block_size=None)
    op = _CountingOperator(matrix)
    rounds = hutchinson_trace(op, num_matvecs=50, seed=3, block_size=16)
    assert op.widths == [16, 16, 16, 2]
    assert rounds.num_matvecs == 50
    assert rounds.value == pytest.approx(whole.value, rel=1e-12)
    assert rounds.stderr == pytest.approx(whole.stderr, rel=1e-9)


def test_hutchinson_rtol_stops_when_the_error_bar_is_small_enough(wishart: np.ndarray) -> None:
    op = _CountingOperator(torch.as_tensor(wishart))
    full = hutchinson_trace(op, num_matvecs=400, seed=0, block_size=20)
    rtol = 2.5 * full.stderr / abs(full.value)  # reached after roughly (2.5)^-2 * 400 = 64 probes
    op.widths.clear()
    early = hutchinson_trace(op, num_matvecs=400, seed=0, block_size=20, rtol=rtol)
    assert 20 <= early.num_matvecs < 400 and sum(op.widths) == early.num_matvecs
    assert early.stderr <= rtol * abs(early.value)
    truth = float(np.trace(wishart))
    assert abs(early.value - truth) < 4 * early.stderr
    # unreachable tolerance: the whole budget is spent
    assert hutchinson_trace(op, num_matvecs=40, seed=0, rtol=1e-12).num_matvecs == 40
    with pytest.raises(InputError, match="rtol"):
        hutchinson_trace(op, num_matvecs=40, rtol=-1.0)
    with pytest.raises(InputError, match="block_size"):
        hutchinson_trace(op, num_matvecs=40, block_size=0)


def test_exact_spectrum_matches_eigh_and_float32(lowrank_goe: np.ndarray) -> None:
    small = lowrank_goe[:400, :400]
    exact = exact_spectrum(DenseOperator(torch.as_tensor(small)), eigenvectors=True)
    np.testing.assert_allclose(exact.eigenvalues, np.linalg.eigvalsh(small), atol=1e-10)
    z = exact.eigenvectors
    np.testing.assert_allclose(z.T @ small @ z, np.diag(exact.eigenvalues), atol=1e-9)
    # float32 products: SLQ extremes still within float32 rounding of the truth
    lam = _eigh(lowrank_goe)[0]
    density = slq(DenseOperator(torch.as_tensor(lowrank_goe, dtype=torch.float32)), num_steps=60)
    assert density.extremal[1] == pytest.approx(lam[-1], rel=1e-4)
    assert density.extremal[0] == pytest.approx(lam[0], rel=1e-4)
