"""The GD projection, line connectedness and the recursive projected path (spec §3.9) on planted
toys whose answers are known, and on a small network."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from curvscope.errors import InputError
from curvscope.training import (
    ProjectedPath,
    line_connected,
    line_losses,
    model_loss,
    project_to_threshold,
    projected_path,
)

F64 = torch.float64


def _ring(theta: torch.Tensor) -> torch.Tensor:
    """A degenerate ring valley: minima on the unit circle."""
    return (theta.norm() - 1.0) ** 2


def _double_well(theta: torch.Tensor) -> torch.Tensor:
    """Two valleys x = ±1 (y degenerate) separated by a barrier of height 1 at x = 0."""
    return (theta[0] ** 2 - 1.0) ** 2


def _net_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen, dtype=F64)
    y = torch.randint(0, 3, (40,), generator=gen)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return net, model_loss(net, nn.CrossEntropyLoss(label_smoothing=0.1), x, y)


def test_projection_reaches_the_threshold_and_is_deterministic():
    net, loss = _net_problem()
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    start = float(loss(theta))
    threshold = 0.5 * start
    a = project_to_threshold(loss, theta, threshold=threshold, lr=0.5, momentum=0.9)
    b = project_to_threshold(loss, theta, threshold=threshold, lr=0.5, momentum=0.9)
    assert a.reached and a.loss < threshold
    assert float(loss(a.parameters)) == a.loss and a.start_loss == start
    assert torch.equal(a.parameters, b.parameters) and a.steps == b.steps > 0
    # the previous iterate was still above the threshold: GD stopped at the first one below
    again = project_to_threshold(
        loss, theta, threshold=threshold, lr=0.5, momentum=0.9, max_steps=a.steps - 1
    )
    assert not again.reached and again.loss >= threshold
    # the model's own weights are untouched, and a point below the threshold is kept as is
    assert torch.equal(theta, torch.cat([p.detach().reshape(-1) for p in net.parameters()]))
    same = project_to_threshold(loss, a.parameters, threshold=threshold, lr=0.5)
    assert same.steps == 0 and torch.equal(same.parameters, a.parameters)


def test_heavy_ball_matches_torch_sgd():
    net, loss = _net_problem()
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    p = project_to_threshold(loss, theta, threshold=-1.0, lr=0.1, momentum=0.9, max_steps=7)
    ref = torch.nn.Parameter(theta.clone())
    opt = torch.optim.SGD([ref], lr=0.1, momentum=0.9)
    for _ in range(7):
        opt.zero_grad()
        loss(ref).backward()
        opt.step()
    torch.testing.assert_close(p.parameters, ref.detach(), rtol=0, atol=1e-13)
    assert p.steps == 7 and not p.reached


def test_line_connectedness_on_convex_and_barrier_toys():
    a, b = torch.tensor([-1.0, 0.0], dtype=F64), torch.tensor([1.0, 3.0], dtype=F64)
    values = line_losses(_double_well, a, b, num_points=11)
    assert values[0] == values[-1] == 0.0 and values[5] == pytest.approx(1.0)
    assert not line_connected(_double_well, a, b, threshold=0.1)
    bowl = lambda t: (t**2).sum()  # noqa: E731
    assert line_connected(bowl, 0.1 * a, 0.1 * b, threshold=float(bowl(0.1 * b)) + 1e-12)
    # same well: connected along the degenerate direction at any K
    c = torch.tensor([1.0, -5.0], dtype=F64)
    assert line_connected(_double_well, b, c, threshold=1e-12, num_points=50)


def _crossing(step: int) -> torch.Tensor:
    """Iterates that cross the barrier between steps 7 and 8 (x changes sign)."""
    return torch.tensor([-1.0 + 2.0 * (step + 0.5) / 16.0, 0.1 * step], dtype=F64)


def test_bisection_finds_the_planted_break_only():
    project = lambda t: project_to_threshold(_double_well, t, threshold=1e-3, lr=0.05)  # noqa: E731
    path = projected_path(_crossing, [0, 8, 16], project, _double_well, threshold=1e-3)
    assert path.breaks == ((7, 8),)
    # bisection of (0, 8) down to the neighbours of the barrier: 0, 4, 6, 7, 8 then 16
    assert path.steps.tolist() == [0, 4, 6, 7, 8, 16]
    assert path.reached.all() and (path.losses < 1e-3).all()
    assert path.segment_max[path.steps.tolist().index(7)] > 0.5
    np.testing.assert_array_less(np.delete(path.segment_max, 3), 1e-3)


def test_ring_valley_has_no_breaks():
    def around(step: int) -> torch.Tensor:
        angle = math.pi * step / 20
        return 1.3 * torch.tensor([math.cos(angle), math.sin(angle)], dtype=F64)

    threshold = 1e-2
    project = lambda t: project_to_threshold(_ring, t, threshold=threshold, lr=0.1)  # noqa: E731
    path = projected_path(around, list(range(21)), project, _ring, threshold=threshold)
    assert path.num_breaks == 0 and len(path.steps) == 21
    coarse = projected_path(around, [0, 20], project, _ring, threshold=threshold)
    # one half-ring chord crosses the hole: bisection goes down until the chords are short
    assert coarse.num_breaks == 0 and len(coarse.steps) > 2
    assert isinstance(coarse, ProjectedPath)


def test_bad_inputs_are_input_errors():
    t = torch.zeros(2, dtype=F64)
    with pytest.raises(InputError, match="lr must be > 0"):
        project_to_threshold(_ring, t, threshold=0.1, lr=0.0)
    with pytest.raises(InputError, match=r"momentum must be a number in \[0, 1\)"):
        project_to_threshold(_ring, t, threshold=0.1, lr=0.1, momentum=1.0)
    with pytest.raises(InputError, match="flat parameter vector"):
        project_to_threshold(_ring, t.reshape(1, 2), threshold=0.1, lr=0.1)
    with pytest.raises(InputError, match="at least two ascending"):
        projected_path(_crossing, [3, 3], lambda v: None, _ring, threshold=0.1)
    with pytest.raises(InputError, match="num_points"):
        line_losses(_ring, t, t, num_points=1)
    with pytest.raises(InputError, match="no trainable parameters"):
        model_loss(nn.ReLU(), nn.MSELoss(), t, t)
