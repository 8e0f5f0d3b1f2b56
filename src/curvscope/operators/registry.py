"""Curvature operator kinds by name, for the studies, the CLI and the benchmarks."""

from __future__ import annotations

from curvscope.operators.covariance import GradientCovarianceOperator
from curvscope.operators.curvature import CurvatureOperator
from curvscope.operators.fisher import EmpiricalFisherOperator, FisherOperator
from curvscope.operators.ggn import GGNOperator
from curvscope.operators.hessian import HessianOperator
from curvscope.operators.residual import ResidualOperator

__all__ = ["MATRICES", "OPERATORS"]

#: Every curvature operator kind, by name.
OPERATORS: dict[str, type[CurvatureOperator]] = {
    "hessian": HessianOperator,
    "ggn": GGNOperator,
    "residual": ResidualOperator,
    "empirical-fisher": EmpiricalFisherOperator,
    "fisher": FisherOperator,
    "covariance": GradientCovarianceOperator,
}

#: The matrices a study takes the spectrum of (``--matrix`` of the CLI; paper 000 studies the
#: Hessian), by name.
MATRICES: dict[str, type[CurvatureOperator]] = {
    name: OPERATORS[name] for name in ("hessian", "ggn", "fisher", "covariance")
}
