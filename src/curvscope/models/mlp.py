"""Fully connected networks of any widths (the default model: 64-32-10 on digits, P = 2410)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from curvscope._validate import is_int
from curvscope.errors import InputError

__all__ = ["ACTIVATIONS", "MLP"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}


class MLP(nn.Module):
    """Flatten, then ``Linear -> activation`` for each hidden width, then a linear output.

    Args:
        in_features: input size (inputs of any shape are flattened to it).
        hidden: hidden-layer widths, e.g. ``(32,)``; empty for a linear model.
        out_features: output size (classes, or the regression target size).
        activation: one of :data:`ACTIVATIONS`.
        bias: whether the linear layers have biases.

    Example:
        >>> MLP(64, (32,), 10).num_parameters
        2410
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        activation: str = "tanh",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise InputError(
                f"unknown activation {activation!r}; expected one of {', '.join(ACTIVATIONS)}"
            )
        widths = [in_features, *hidden, out_features]
        if not all(is_int(w, minimum=1) for w in widths):
            raise InputError(f"layer widths must be positive integers, got {widths}")
        layers: list[nn.Module] = [nn.Flatten()]
        for k, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b, bias=bias))
            if k < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)

    @property
    def num_parameters(self) -> int:
        """P, the number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
