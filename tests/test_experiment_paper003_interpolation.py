"""The ``small-nets-interpolation`` study (paper 003 fig. 10): recorded profiles against a
hand-built interpolated network, the GD run against hand-written GD, the claims from the result,
the figures and the laptop preset's time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curvscope.experiments import get_study
from curvscope.experiments.paper003_interpolation import (
    InterpolationResult,
    barriers,
    claims,
    interpolation_grid,
    run_interpolation_study,
)

SMALL = ["num_samples=60", "steps=40", "record_every=10", "num_points=5", "margin=0.25"]


@pytest.fixture(scope="module")
def result() -> InterpolationResult:
    torch.set_num_threads(1)
    config = get_study("small-nets-interpolation").config("laptop", overrides=SMALL)
    return run_interpolation_study(config)


def _by_hand(flat: np.ndarray, width: int, x: torch.Tensor, y: torch.Tensor) -> float:
    """The 2-h-h-2 ReLU net written out from the flat vector (Linear: weight then bias)."""
    w = torch.from_numpy(flat)
    shapes = [(width, 2), (width,), (width, width), (width,), (2, width), (2,)]
    parts, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        parts.append(w[offset : offset + n].view(shape))
        offset += n
    assert offset == len(flat)
    w1, b1, w2, b2, w3, b3 = parts
    h = torch.relu(x @ w1.T + b1)
    h = torch.relu(h @ w2.T + b2)
    z = h @ w3.T + b3
    return float((torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]).mean())


@pytest.mark.parametrize("which", ["one start", "two starts"])
def test_recorded_profile_equals_the_hand_built_interpolated_network(result, which) -> None:
    pair = result.pair(which)
    x, y = result.rebuild_data()
    width = result.config["width"]
    # (last step, s = -0.25 beyond the segment), (step 20, s = 0.5), (step 0, s = 1.25)
    for k, j in [(len(pair.steps) - 1, 1), (2, 3), (0, len(pair.s) - 1)]:
        s = pair.s[j]
        flat = (1 - s) * pair.weights_a[k] + s * pair.weights_b[k]
        assert pair.losses[k, j] == pytest.approx(_by_hand(flat, width, x, y), rel=1e-12)
    # and the rebuild helper gives the same network
    net = pair.rebuild(2, float(pair.s[3]), width)
    with torch.no_grad():
        got = float(torch.nn.functional.cross_entropy(net(x), y))
    assert pair.losses[2, 3] == pytest.approx(got, rel=1e-12)


def test_grid_and_the_start_of_the_pairs(result) -> None:
    s, i0, i1 = interpolation_grid(5, 0.25)
    assert s[i0] == 0.0 and s[i1] == 1.0 and len(s) == 7
    one, two = result.pair("one start"), result.pair("two starts")
    np.testing.assert_array_equal(one.weights_a[0], one.weights_b[0])  # one w0
    np.testing.assert_array_equal(one.weights_a[0], two.weights_a[0])
    cos = two.weights_a[0] @ two.weights_b[0]
    cos /= np.linalg.norm(two.weights_a[0]) * np.linalg.norm(two.weights_b[0])
    assert abs(cos) < 0.5  # independent starts: near-orthogonal in R^74
    assert np.linalg.norm(two.weights_a[0]) == pytest.approx(result.radius)
    np.testing.assert_array_equal(one.steps, [0, 10, 20, 30, 40])
    assert np.all(np.isclose(one.losses[0], one.losses[0, 0]))  # a point at step 0


def test_gd_run_equals_hand_written_gd(result) -> None:
    pair = result.pair("one start")
    x, y = result.rebuild_data()
    width, lr = result.config["width"], result.config["lr"]
    w = torch.from_numpy(pair.weights_a[0].copy()).requires_grad_(True)
    for _ in range(10):
        g = torch.autograd.grad(_loss_t(w, width, x, y), w)[0]
        w = (w - lr * g).detach().requires_grad_(True)
    np.testing.assert_allclose(w.detach().numpy(), pair.weights_a[1], rtol=1e-10, atol=1e-13)
    assert not np.allclose(pair.weights_b[1], pair.weights_a[1])  # SGD took other steps


def _loss_t(w: torch.Tensor, width: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    shapes = [(width, 2), (width,), (width, width), (width,), (2, width), (2,)]
    parts, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        parts.append(w[offset : offset + n].view(shape))
        offset += n
    w1, b1, w2, b2, w3, b3 = parts
    z = torch.relu(torch.relu(x @ w1.T + b1) @ w2.T + b2) @ w3.T + b3
    return (torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]).mean()


def test_claim_verdicts_recompute_from_the_result(result) -> None:
    tol = result.config["flat_tol"]
    _, i0, i1 = interpolation_grid(result.config["num_points"], result.config["margin"])
    rel = {}
    for p in result.pairs:
        ends = np.maximum(p.losses[:, i0], p.losses[:, i1])
        inner = p.losses[:, i0 : i1 + 1].max(axis=1)
        rel[p.name] = (inner - ends) / ends
        np.testing.assert_allclose(barriers(p.losses, i0, i1), inner - ends)
    one, two = rel["one start"], rel["two starts"]
    want_one = "agrees" if one[1:].max() <= tol else ("partly" if one[-1] <= tol else "disagrees")
    if two[-1] > tol and two[-1] > one[-1]:
        want_two = "agrees"
    else:
        want_two = "partly" if two[-1] > one[-1] else "disagrees"
    p = result.pair("two starts")
    peak = p.losses[:, i0 : i1 + 1].max(axis=1)
    if peak[-1] < peak[0] and peak[-1] <= p.losses[0, [i0, i1]].max():
        want_dec = "agrees"
    else:
        want_dec = "partly" if peak[-1] < peak[0] else "disagrees"
    assert [c.verdict for c in claims(result)] == [want_one, want_two, want_dec]


def test_figures_and_report_sections(result) -> None:
    from curvscope.plots.registry import figures_for

    study = get_study("small-nets-interpolation")
    figs = figures_for("small-nets-interpolation", result)
    assert set(figs) == {"profiles", "heatmaps", "barriers"}
    assert study.sections(result)


def test_laptop_preset_runs() -> None:
    torch.set_num_threads(1)
    result = run_interpolation_study(get_study("small-nets-interpolation").config("laptop"))
    assert len(result.pairs[0].steps) == 41
