"""Projection of SGD iterates to the valley floor, line connectedness and projected paths
(paper 002 §2.1.1; spec ``theory.md`` §3.9).

- :func:`project_to_threshold`: Proj(θ) = full-batch (heavy-ball) GD from θ with the run's
  learning rate and momentum until the training loss is below a threshold;
- :func:`line_losses` / :func:`line_connected`: the loss at K evenly spaced points of the
  segment A → B, endpoints included (spec §3.9 ambiguity: curvscope includes them);
- :func:`projected_path`: the recursive bisection of the path between checkpoints — keep a
  segment whose projected ends are line connected, else insert the projected midpoint
  iterate, and record a break when two consecutive iterates are not connected.

Everything works on one flat parameter vector and a loss ``L(θ)``; :func:`model_loss` makes that
function from a network and a full batch (parameters in the curvature operators' order), and the
planted toys of the tests pass their own.

Example:
    >>> import torch
    >>> loss = lambda t: 0.5 * (t**2).sum()
    >>> p = project_to_threshold(loss, torch.tensor([1.0, -1.0], dtype=torch.float64),
    ...                          threshold=1e-3, lr=0.5)
    >>> p.reached, p.loss < 1e-3
    (True, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from curvscope.errors import InputError, NonFiniteError
from curvscope.persistence import savable

__all__ = [
    "ProjectedPath",
    "Projection",
    "line_connected",
    "line_losses",
    "model_loss",
    "project_to_threshold",
    "projected_path",
]

Loss = Callable[[torch.Tensor], torch.Tensor]


def model_loss(
    model: nn.Module, loss_fn: Callable, inputs: torch.Tensor, targets: torch.Tensor
) -> Loss:
    """:math:`\\theta \\mapsto L(\\theta)` on a full batch, θ flat in ``named_parameters`` order
    (trainable only, as the curvature operators and :func:`~curvscope.training.flat_parameters`).
    The model's own weights are not touched."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise InputError("the model has no trainable parameters; nothing to project")
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, sizes)
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    return loss


@savable
@dataclass(frozen=True)
class Projection:
    """The outcome of :func:`project_to_threshold`.

    Attributes:
        parameters: the projected point (flat).
        steps: GD steps taken; ``start_loss``/``loss``: L before and after.
        threshold: the level; ``reached``: whether ``loss < threshold`` (else ``max_steps``).
    """

    parameters: torch.Tensor
    steps: int
    start_loss: float
    loss: float
    threshold: float
    reached: bool


def _check(name: str, value: object, *, low: float = 0.0, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise InputError(
            f"{name} must be a finite {'integer' if integer else 'number'}, got {value!r}"
        )
    if not value > low:
        raise InputError(f"{name} must be > {low:g}, got {value!r}")


def project_to_threshold(
    loss: Loss,
    theta: torch.Tensor,
    *,
    threshold: float,
    lr: float,
    momentum: float = 0.0,
    max_steps: int = 10000,
) -> Projection:
    """Full-batch GD with heavy-ball momentum from θ until :math:`L < \\text{threshold}`.

    .. math:: b_{t+1} = \\mu b_t + \\nabla L(\\theta_t), \\quad
              \\theta_{t+1} = \\theta_t - \\eta b_{t+1}, \\quad b_0 = 0

    (torch.optim.SGD's update without dampening), the projection Proj of spec §3.9 ("trained
    with the same hyper-parameters except using GD", paper 002 §2.1.1). Deterministic: the same
    θ gives the same point bit for bit. A θ already below the threshold is returned as is.

    Args:
        loss: L(θ) on the full training set (:func:`model_loss`).
        theta: the starting point (flat; not modified).
        threshold: stop at the first iterate with L < threshold.
        lr, momentum: the run's η and μ.
        max_steps: the step cap (``reached=False`` when hit).
    """
    _check("threshold", threshold, low=-math.inf)
    _check("lr", lr)
    _check("max_steps", max_steps, integer=True)
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float))
        or not 0 <= momentum < 1
    ):
        raise InputError(f"momentum must be a number in [0, 1), got {momentum!r}")
    if not isinstance(theta, torch.Tensor) or theta.dim() != 1:
        raise InputError(f"theta must be a flat parameter vector (1-D tensor), got {theta!r:.60}")
    theta = theta.detach().clone()
    buffer = torch.zeros_like(theta)
    start = None
    for step in range(max_steps + 1):
        point = theta.requires_grad_(True)
        value = loss(point)
        current = float(value.detach())
        if not math.isfinite(current):
            raise NonFiniteError(
                f"the projection diverged: loss {current} after {step} GD steps (lr {lr:g}, "
                f"momentum {momentum:g}); lower lr"
            )
        start = current if start is None else start
        if current < threshold or step == max_steps:
            return Projection(
                theta.detach(), step, start, current, float(threshold), current < threshold
            )
        (grad,) = torch.autograd.grad(value, point)
        with torch.no_grad():
            buffer = momentum * buffer + grad
            theta = theta.detach() - lr * buffer
    raise AssertionError("unreachable")  # pragma: no cover


def line_losses(
    loss: Loss, a: torch.Tensor, b: torch.Tensor, *, num_points: int = 10
) -> np.ndarray:
    """:math:`L(A + s_k (B - A))` at :math:`s_k = k/(K-1)`, k = 0..K−1 (endpoints included)."""
    _check("num_points", num_points, low=1, integer=True)
    if a.shape != b.shape:
        raise InputError(f"the two ends have shapes {tuple(a.shape)} and {tuple(b.shape)}")
    with torch.no_grad():
        return np.array([float(loss(a + s * (b - a))) for s in np.linspace(0.0, 1.0, num_points)])


def line_connected(
    loss: Loss, a: torch.Tensor, b: torch.Tensor, *, threshold: float, num_points: int = 10
) -> bool:
    """Whether all K points of the segment have L < threshold (spec §3.9, paper: K = 10)."""
    return bool((line_losses(loss, a, b, num_points=num_points) < threshold).all())


@savable
@dataclass(frozen=True)
class ProjectedPath:
    """The projected path of :func:`projected_path`.

    Attributes:
        steps: the iterations on the path, ascending (checkpoints and inserted midpoints).
        parameters: their projected points, one row each.
        losses: L at each projected point; ``projection_steps``: GD steps of each projection;
            ``reached``: whether each projection reached the threshold.
        segment_max: the largest loss on the line between consecutive rows (K points).
        breaks: pairs of consecutive iterations (i, i+1) whose projections are not line connected.
        threshold, num_points: the level and K.
    """

    steps: np.ndarray
    parameters: np.ndarray
    losses: np.ndarray
    projection_steps: np.ndarray
    reached: np.ndarray
    segment_max: np.ndarray
    breaks: tuple[tuple[int, int], ...]
    threshold: float
    num_points: int

    @property
    def num_breaks(self) -> int:
        return len(self.breaks)


def projected_path(
    iterate: Callable[[int], torch.Tensor],
    checkpoints: Sequence[int],
    project: Callable[[torch.Tensor], Projection],
    loss: Loss,
    *,
    threshold: float,
    num_points: int = 10,
) -> ProjectedPath:
    """Recursive bisection of the projected path between checkpoints (spec §3.9).

    For consecutive checkpoints i < j: keep the segment when Proj(θ_i) and Proj(θ_j) are line
    connected; else if j − i ≤ 1 record a break; else recurse on (i, c) and (c, j) with
    c = i + ⌊(j − i)/2⌋. Each iterate is projected once.

    Args:
        iterate: step -> θ_step (deterministic replay of the run).
        checkpoints: ascending iteration numbers (e.g. epoch ends).
        project: θ -> :class:`Projection` (e.g. :func:`project_to_threshold` with the run's
            hyper-parameters).
        loss: L(θ) for the line test.
        threshold: the level of the line test; ``num_points``: K.
    """
    points = [int(c) for c in checkpoints]
    if len(points) < 2 or any(b <= a for a, b in itertools.pairwise(points)):
        raise InputError(
            f"checkpoints must be at least two ascending iterations, got {checkpoints!r}"
        )
    done: dict[int, Projection] = {}

    def proj(step: int) -> Projection:
        if step not in done:
            done[step] = project(iterate(step))
        return done[step]

    breaks: list[tuple[int, int]] = []
    segment: dict[tuple[int, int], float] = {}

    def walk(i: int, j: int) -> None:
        values = line_losses(loss, proj(i).parameters, proj(j).parameters, num_points=num_points)
        if (values < threshold).all():
            segment[(i, j)] = float(values.max())
            return
        if j - i <= 1:
            segment[(i, j)] = float(values.max())
            breaks.append((i, j))
            return
        c = i + (j - i) // 2
        walk(i, c)
        walk(c, j)

    for i, j in itertools.pairwise(points):
        walk(i, j)
    steps = np.array(sorted(done))
    rows = [done[int(s)] for s in steps]
    return ProjectedPath(
        steps=steps,
        parameters=np.stack([r.parameters.double().numpy() for r in rows]),
        losses=np.array([r.loss for r in rows]),
        projection_steps=np.array([r.steps for r in rows]),
        reached=np.array([r.reached for r in rows]),
        segment_max=np.array([segment[(int(a), int(b))] for a, b in itertools.pairwise(steps)]),
        breaks=tuple(sorted(breaks)),
        threshold=float(threshold),
        num_points=int(num_points),
    )
