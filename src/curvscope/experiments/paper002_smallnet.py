"""Shared pieces of the paper-002 studies on small networks (``noise-alignment``,
``noise-negative-eigenvalues``, ``noise-fdr``): the data's identity, the losses (label-smoothed
cross-entropy, MSE on one-hot targets), the networks, epoch-shuffled mini-batches, and the exact
(dense float64) Hessian and mini-batch noise covariance of spec ``theory.md`` §3.2.

The noise covariance of the mean gradient of a uniformly drawn batch of S of the N samples
(without replacement, as with epoch shuffling) is exactly

.. math:: C = \\frac1S\\Big(1 - \\frac SN\\Big)\\frac{1}{N-1}\\sum_{k=1}^N (g_k - \\bar g)(g_k - \\bar g)^\\top
          = c(S, N)\\,\\Sigma,

with :math:`\\Sigma` the population covariance of the per-sample gradients
(:class:`~curvscope.operators.GradientCovarianceOperator`) and ``c`` from
:func:`~curvscope.operators.minibatch_noise_scale` (spec §3.2; the paper's (1/S)(1 − S/M) omits
N/(N − 1)).

Example:
    >>> make_loss("mse", classes=3).op_targets(torch.tensor([2])).tolist()
    [[0.0, 0.0, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope.errors import CurvscopeError, InputError
from curvscope.persistence import savable

__all__ = [
    "LOSS_KINDS",
    "LossPair",
    "NetData",
    "check_dense",
    "epoch_batches",
    "exact_hessian",
    "exact_noise_covariance",
    "flat",
    "load_net_data",
    "load_state",
    "make_loss",
    "mlp",
    "num_params",
    "smoothed_ce_minimum",
    "state_of",
    "typed_options",
]

LOSS_KINDS = ("cross_entropy", "mse")

#: Memory allowed for one dense float64 P x P matrix (the studies guard P before training).
_DENSE_MEMORY = 16 * 2**30


# ---------------------------------------------------------------------- data identity
@savable
@dataclass(frozen=True)
class NetData:
    """What rebuilds a training set: ``load_dataset(name, "train", data_dir, seed, **options)``
    and the indices of the items it kept in that split (``indices``; all of them when no subset
    option is given), checked on every rebuild."""

    name: str
    options: dict[str, Any]
    seed: int
    data_dir: str | None
    indices: np.ndarray

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The float64 inputs (images keep their shape) and int64 labels."""
        from curvscope.data import load_dataset

        data = load_dataset(
            self.name, "train", data_dir=self.data_dir, seed=self.seed, **self.options
        )
        indices = _indices(data)
        if not np.array_equal(indices, self.indices):
            raise CurvscopeError(
                f"the rebuilt {self.name!r} training set holds other items than the recorded "
                f"one ({indices.size} vs {self.indices.size} items, first differing position "
                f"{int(np.argmax(indices != self.indices)) if indices.size == self.indices.size else 0}); "
                "the data files or the loader changed since the result was saved"
            )
        x, y = data.get_batch(torch.arange(len(data)))
        return x.to(torch.float64), y


def _indices(data: Any) -> np.ndarray:
    sub = getattr(data, "subset_indices", None)
    return np.arange(len(data)) if sub is None else np.asarray(sub, dtype=np.int64)


def typed_options(options: dict[str, Any]) -> dict[str, Any]:
    """``--set data_options.size=7`` arrives as a string: numbers and booleans as they spell."""
    out = {}
    for key, value in options.items():
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("true", "false"):
                value = low == "true"
            else:
                for kind in (int, float):
                    try:
                        value = kind(value)
                        break
                    except ValueError:
                        pass
        out[key] = value
    return out


def load_net_data(
    name: str, options: dict[str, Any], seed: int, data_dir: str | None
) -> tuple[NetData, torch.Tensor, torch.Tensor]:
    """Load the training split and record its identity (incl. the subset indices)."""
    from curvscope.data import load_dataset

    options = typed_options(options)
    data = load_dataset(name, "train", data_dir=data_dir, seed=seed, **options)
    if data.task != "classification":
        raise InputError(
            f"these studies classify; dataset {name!r} has real targets; use digits, mnist, "
            "cifar10 or cifar100"
        )
    identity = NetData(name, options, seed, data_dir, _indices(data))
    x, y = data.get_batch(torch.arange(len(data)))
    return identity, x.to(torch.float64), y


# ---------------------------------------------------------------------- losses
@dataclass(frozen=True)
class LossPair:
    """A training loss on integer labels and the same function as the curvature operators see it.

    ``train(outputs, labels)`` is the mean loss; ``op`` with ``op_targets(labels)`` is the same
    mean loss for the operators (MSE: ``nn.MSELoss`` on one-hot targets, i.e. the mean over
    samples and classes).
    """

    kind: str
    label_smoothing: float
    train: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    op: nn.Module
    classes: int

    def op_targets(self, labels: torch.Tensor) -> torch.Tensor:
        if self.kind == "mse":
            return nn.functional.one_hot(labels.long(), self.classes).to(torch.float64)
        return labels


def make_loss(kind: str, *, classes: int, label_smoothing: float = 0.0) -> LossPair:
    """``cross_entropy`` (label-smoothed with ``label_smoothing``) or ``mse`` (one-hot)."""
    if kind not in LOSS_KINDS:
        raise InputError(f"loss must be one of {', '.join(LOSS_KINDS)}; got {kind!r}")
    if not (0.0 <= label_smoothing < 1.0):
        raise InputError(f"label_smoothing must lie in [0, 1); got {label_smoothing!r}, e.g. 0.1")
    if kind == "mse":
        from curvscope.training import OneHotMSELoss

        fn = OneHotMSELoss(classes)
        return LossPair(kind, 0.0, fn, fn.operator_loss(), classes)
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return LossPair(kind, float(label_smoothing), ce, ce, classes)


def smoothed_ce_minimum(label_smoothing: float, classes: int) -> float:
    """L*: the smallest value of label-smoothed cross-entropy, the entropy of the smoothed target.

    .. math:: L^* = -(1 - \\epsilon + \\epsilon/C)\\log(1 - \\epsilon + \\epsilon/C)
              - (C - 1)\\frac{\\epsilon}{C}\\log\\frac{\\epsilon}{C}

    reached when the softmax equals the smoothed target on every sample (spec §3.6: the
    negative eigenvalues scale with L − L*, not with L).

    Example:
        >>> round(smoothed_ce_minimum(0.1, 10), 6)
        0.500288
    """
    eps, c = float(label_smoothing), int(classes)
    top = 1.0 - eps + eps / c
    rest = eps / c
    return -top * math.log(top) - ((c - 1) * rest * math.log(rest) if rest > 0 else 0.0)


# ---------------------------------------------------------------------- networks
def mlp(input_dim: int, hidden: tuple[int, ...], classes: int, activation: str, seed: int) -> Any:
    """The float64 fully connected net (flattening its input), initial weights from ``seed``."""
    from curvscope.models import ModelSpec

    options = {"hidden": list(hidden), "activation": activation}
    return ModelSpec("mlp", (input_dim,), classes, options).build(seed=seed).double()


def num_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def check_dense(p: int, limit: int, what: str) -> None:
    """Refuse a P whose dense float64 matrices the study would not afford."""
    if p > limit:
        raise InputError(
            f"{what} has P = {p:,} parameters: its dense float64 Hessian needs "
            f"{8 * p * p / 2**30:.2f} GiB and an O(P^3) eigendecomposition, over "
            f"max_dense_params = {limit:,}; raise max_dense_params where the machine allows, "
            "or use a smaller network or inputs"
        )


def state_of(net: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def load_state(net: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return net


def flat(tensors: Any) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches of exactly ``batch_size`` (the ragged rest dropped,
    so every step's gradient noise is that of an S-subset drawn without replacement, §3.2)."""
    if not (1 <= batch_size <= n):
        raise InputError(f"batch_size must lie in [1, N = {n}]; got {batch_size}")
    order = torch.randperm(n, generator=generator)
    for start in range(0, n - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


# ---------------------------------------------------------------------- exact matrices
def exact_hessian(net: nn.Module, loss: LossPair, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The dense float64 Hessian of the mean training loss (curvscope's HessianOperator)."""
    from curvscope.operators import HessianOperator

    op = HessianOperator(net, loss.op, (x, loss.op_targets(y)), dtype=torch.float64)
    return op.to_dense(max_memory=_DENSE_MEMORY, block_size=256)


def exact_noise_covariance(
    net: nn.Module, loss: LossPair, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, float]:
    """The dense mini-batch noise covariance C = c(S, N) Σ (spec §3.2) and the factor c."""
    from curvscope.operators import GradientCovarianceOperator, minibatch_noise_scale

    op = GradientCovarianceOperator(net, loss.op, (x, loss.op_targets(y)), dtype=torch.float64)
    scale = minibatch_noise_scale(batch_size, int(x.shape[0]))
    return op.to_dense(max_memory=_DENSE_MEMORY, block_size=256) * scale, scale
