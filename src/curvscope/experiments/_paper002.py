"""Pieces shared by the paper-002 path studies (``noise-trace-dynamics``, ``noise-valley-paths``):
the digits MLP rebuilt from a result, the Hessian trace at a flat parameter vector (Hutch++ with
its standard error, and the exact trace of the dense float64 Hessian for small nets). The
network builder, state dicts, typed data options and the floor of label-smoothed cross-entropy
are those of :mod:`curvscope.experiments.paper002_smallnet`.

The GD projection itself lives in :mod:`curvscope.training.projection` (spec ``theory.md`` §3.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from curvscope.persistence import savable

__all__ = ["TracePoint", "load_flat", "sgd_path", "trace_at"]


def load_flat(net: nn.Module, theta: torch.Tensor) -> nn.Module:
    """Write the flat vector θ (``named_parameters`` order) into ``net`` and return it."""
    torch.nn.utils.vector_to_parameters(theta.detach().to(torch.float64), net.parameters())
    return net


@savable
@dataclass(frozen=True)
class TracePoint:
    """The Hessian trace at one point: Hutch++ ``value ± stderr`` and the exact trace (NaN when
    the net is over ``exact_max_params``)."""

    value: float
    stderr: float
    exact: float


def trace_at(
    net: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: torch.Tensor,
    *,
    num_matvecs: int,
    seed: int,
    exact: bool,
    verify: bool = True,
) -> TracePoint:
    """tr H(θ) of the full-batch loss by Hutch++ (Meyer et al. 2021) and, if ``exact``, as the
    sum of the diagonal of the dense float64 Hessian (P Hessian-vector products). ``verify``
    checks the operator's fast product against reverse-over-reverse first (once per network
    is enough: later points of the same architecture may skip it)."""
    from curvscope.operators import HessianOperator
    from curvscope.spectral import hutchpp_trace

    op = HessianOperator(load_flat(net, theta), loss_fn, (x, y), dtype=torch.float64, verify=verify)
    estimate = hutchpp_trace(op, num_matvecs=num_matvecs, seed=seed)
    value = float(torch.diagonal(op.to_dense()).sum()) if exact else float("nan")
    return TracePoint(estimate.value, estimate.stderr, value)


def sgd_path(
    loss_of,
    theta: torch.Tensor,
    n: int,
    *,
    lr: float,
    momentum: float,
    batch: int,
    steps: int,
    seed: int,
    every: int,
) -> list[tuple[int, torch.Tensor]]:
    """Plain minibatch SGD (heavy ball when ``momentum``): each epoch a fresh permutation from
    the seed's generator; ``batch`` = n is full-batch GD. Returns (step, θ) every ``every``."""
    gen = torch.Generator().manual_seed(seed)
    per_epoch = max(n // batch, 1)
    buffer = torch.zeros_like(theta)
    out = [(0, theta.clone())]
    order = torch.arange(n)
    for step in range(steps):
        if step % per_epoch == 0 and batch < n:
            order = torch.randperm(n, generator=gen)
        idx = order[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
        point = theta.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of(point, idx), point)
        buffer = momentum * buffer + grad
        theta = (theta - lr * buffer).detach()
        if (step + 1) % every == 0:
            out.append((step + 1, theta.clone()))
    return out
