"""Curvature operators: symmetric matrices of a model reached through products M @ V."""

from curvscope.operators.base import DEFAULT_DENSE_LIMIT, SymmetricOperator
from curvscope.operators.dense import DenseOperator

__all__ = [
    "DEFAULT_DENSE_LIMIT",
    "DenseOperator",
    "SymmetricOperator",
]
