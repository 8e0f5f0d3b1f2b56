"""Curvature operators: symmetric matrices of a model reached through products M @ V."""

from curvscope.operators._params import select_parameters
from curvscope.operators.adapter import ScipyOperator, as_operator
from curvscope.operators.base import DEFAULT_DENSE_LIMIT, SymmetricOperator
from curvscope.operators.covariance import GradientCovarianceOperator, minibatch_noise_scale
from curvscope.operators.curvature import CacheInfo, CurvatureOperator, EngineReport
from curvscope.operators.dense import DenseOperator
from curvscope.operators.fisher import EmpiricalFisherOperator, FisherOperator
from curvscope.operators.ggn import GGNOperator
from curvscope.operators.hessian import HessianOperator
from curvscope.operators.output_space import OutputSpaceOperator
from curvscope.operators.registry import MATRICES, OPERATORS
from curvscope.operators.residual import ResidualOperator
from curvscope.operators.verify import EngineCheck, verify_engine

__all__ = [
    "DEFAULT_DENSE_LIMIT",
    "MATRICES",
    "OPERATORS",
    "CacheInfo",
    "CurvatureOperator",
    "DenseOperator",
    "EmpiricalFisherOperator",
    "EngineCheck",
    "EngineReport",
    "FisherOperator",
    "GGNOperator",
    "GradientCovarianceOperator",
    "HessianOperator",
    "OutputSpaceOperator",
    "ResidualOperator",
    "ScipyOperator",
    "SymmetricOperator",
    "as_operator",
    "minibatch_noise_scale",
    "select_parameters",
    "verify_engine",
]
