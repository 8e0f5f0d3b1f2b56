"""curvscope: exact, fast curvature spectra of neural networks.

Layers (imports point only downward): ``cli``/``report``/``plots`` -> ``experiments`` ->
``rmt`` / ``spectral`` -> ``operators`` -> ``data`` / ``models`` / ``training``.
"""

from curvscope._version import __version__
from curvscope.errors import (
    CurvscopeError,
    EngineVerificationError,
    InputError,
    MemoryLimitError,
    NonDeterministicError,
    NonFiniteError,
)
from curvscope.operators import DenseOperator, SymmetricOperator

__all__ = [
    # errors
    "CurvscopeError",
    # operators
    "DenseOperator",
    "EngineVerificationError",
    "InputError",
    "MemoryLimitError",
    "NonDeterministicError",
    "NonFiniteError",
    "SymmetricOperator",
    "__version__",
]
