"""Pieces shared by the paper-002 path studies (``noise-trace-dynamics``, ``noise-valley-paths``):
the digits MLP rebuilt from a result, the Hessian trace at a flat parameter vector (Hutch++ with
its standard error, and the exact trace of the dense float64 Hessian for small nets), and the
floor of label-smoothed cross-entropy.

The GD projection itself lives in :mod:`curvscope.training.projection` (spec ``theory.md`` §3.9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope.persistence import savable

__all__ = [
    "TracePoint",
    "build_mlp",
    "load_flat",
    "sgd_path",
    "smoothed_ce_floor",
    "state_of",
    "trace_at",
    "typed_options",
]


def build_mlp(input_dim: int, hidden: tuple[int, ...], classes: int, seed: int) -> nn.Module:
    """The float64 MLP of the studies (curvscope's ``mlp``: tanh hidden layers)."""
    from curvscope.models import ModelSpec

    return (
        ModelSpec("mlp", (input_dim,), classes, {"hidden": list(hidden)}).build(seed=seed).double()
    )


def load_flat(net: nn.Module, theta: torch.Tensor) -> nn.Module:
    """Write the flat vector θ (``named_parameters`` order) into ``net`` and return it."""
    torch.nn.utils.vector_to_parameters(theta.detach().to(torch.float64), net.parameters())
    return net


def state_of(net: nn.Module) -> dict[str, np.ndarray]:
    """The state dict as float64 arrays (what a result stores to rebuild the network)."""
    return {k: v.detach().double().numpy().copy() for k, v in net.state_dict().items()}


def smoothed_ce_floor(classes: int, smoothing: float) -> float:
    """:math:`L^* = H(q)`, the minimum of label-smoothed cross-entropy with
    :math:`q = (1-\\epsilon)\\,\\text{onehot} + \\epsilon/C` (reached when softmax = q)."""
    if smoothing <= 0:
        return 0.0
    big = 1.0 - smoothing + smoothing / classes
    small = smoothing / classes
    return float(-big * math.log(big) - (classes - 1) * small * math.log(small))


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


def typed_options(options: dict[str, Any]) -> dict[str, Any]:
    """Data options with ``--set data_options.per_class=20`` strings as the numbers they spell
    (dict values of a config keep the type they arrive with)."""
    out = {}
    for key, value in options.items():
        if isinstance(value, str):
            for kind in (int, float):
                try:
                    value = kind(value)
                    break
                except ValueError:
                    pass
        out[key] = value
    return out
