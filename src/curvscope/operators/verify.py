"""``verify_engine``: check curvscope's fast product methods on the user's own model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from curvscope.operators._engine import CurvatureOperator, verify_methods
from curvscope.operators.ggn import GGNOperator
from curvscope.operators.hessian import HessianOperator
from curvscope.persistence import savable

__all__ = ["EngineCheck", "verify_engine"]


@savable
@dataclass(frozen=True)
class EngineCheck:
    """Per operator kind, per product method: ``"ok"`` or why the method must not be used."""

    results: dict[str, dict[str, str]]

    @property
    def all_ok(self) -> bool:
        return all(v == "ok" for methods in self.results.values() for v in methods.values())

    def __str__(self) -> str:
        lines = []
        for kind, methods in self.results.items():
            for method, status in methods.items():
                lines.append(f"{kind:>10s}  {method:<16s} {status}")
        return "\n".join(lines)


def verify_engine(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    *,
    operators: Sequence[type[CurvatureOperator]] = (HessianOperator, GGNOperator),
    **kwargs: Any,
) -> EngineCheck:
    """Compare every product method with the reverse-over-reverse reference on a small batch.

    The check every curvature operator runs before its first product (``verify=True``), exposed
    so that users can see which methods torch computes correctly for their model: torch 2.13's
    forward-over-reverse raises for ``nn.MSELoss`` (pytorch issue 123996) and nested forward mode
    is wrong for LayerNorm (issue 196700). Runs in float64 on the first 8 samples of the first
    batch. Methods reported as not ``"ok"`` are never used by ``method="auto"``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        >>> check = verify_engine(model, nn.MSELoss(), (torch.randn(8, 3), torch.randn(8, 2)))
        >>> check.results["hessian"]["rev-rev"]
        'ok'
    """
    results: dict[str, dict[str, str]] = {}
    for cls in operators:
        op = cls(model, loss_fn, data, **kwargs)
        with op._model_mode():
            report = verify_methods(op, op.source.first_batch())
        name = cls.__name__.removesuffix("Operator").lower()
        results[name] = dict(report.verified)
    return EngineCheck(results)
