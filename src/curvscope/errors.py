"""Exceptions raised by curvscope.

Every message says what was expected, what arrived and how to fix it. All exceptions derive
from :class:`CurvscopeError`, and each also derives from the builtin a caller would naturally
catch (``ValueError`` for bad input, ``RuntimeError`` for a computation that cannot be trusted,
``MemoryError`` for a request that would not fit).
"""

from __future__ import annotations

__all__ = [
    "CurvscopeError",
    "EngineVerificationError",
    "InputError",
    "MemoryLimitError",
    "NonDeterministicError",
    "NonFiniteError",
]


class CurvscopeError(Exception):
    """Base class of every error curvscope raises on purpose."""


class InputError(CurvscopeError, ValueError):
    """An argument (data, model, loss, vector, option) is not what curvscope expects."""


class NonDeterministicError(CurvscopeError, RuntimeError):
    """The data or the model changed between two passes, so the curvature matrix is not fixed."""


class NonFiniteError(CurvscopeError, FloatingPointError):
    """A loss or a product is NaN or infinite at the given weights."""


class MemoryLimitError(CurvscopeError, MemoryError):
    """A dense object would exceed the memory limit the caller allowed."""


class EngineVerificationError(CurvscopeError, RuntimeError):
    """No product method agreed with the reverse-over-reverse reference on the user's model."""
