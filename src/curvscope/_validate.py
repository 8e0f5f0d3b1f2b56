"""Checks of user-given options shared by the configs, the loaders and the CLI.

Each check raises :class:`~curvscope.errors.InputError` saying what was expected, what arrived
and how to fix it, and returns the value in its canonical form (``torch.float64`` -> ``"float64"``,
``torch.device("cuda", 0)`` -> ``"cuda:0"``). Every layer uses it, ``rmt`` included, so it imports
torch only inside the checks that need it.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

from curvscope.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPES",
    "SEED_MAX",
    "check_bool",
    "check_device",
    "check_dtype",
    "check_int",
    "check_positive",
    "check_real",
    "check_seed",
    "is_int",
]

#: Precisions curvscope trains and multiplies in.
DTYPES = ("float32", "float64")

#: Largest accepted seed: torch's generators take a signed 64-bit seed.
SEED_MAX = 2**63 - 1

_DEVICE_HINT = "use cpu, cuda, cuda:<index> or mps"


def _kind(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def is_int(value: Any, *, minimum: int | None = None, maximum: int | None = None) -> bool:
    """Whether ``value`` is an integer (not a bool, not a float; numpy integers count) in
    ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    hint: str = "",
    expected: str | None = None,
) -> int:
    """An integer (not a bool, not a float; numpy integers count) in ``[minimum, maximum]``.

    Args:
        name: the option, as the message names it.
        value: what arrived.
        minimum, maximum: the accepted range (``None``: unbounded).
        hint: how to fix it, appended to the message.
        expected: the requirement in the caller's words (``"a positive integer"``); the message
            is then ``"{name} must be {expected}, got {value!r}"`` for every failure.

    Example:
        >>> check_int("num_steps", 3, minimum=1)
        3
        >>> check_int("num_steps", 0, minimum=1)
        Traceback (most recent call last):
        ...
        curvscope.errors.InputError: num_steps must be an integer >= 1, got 0
    """
    suffix = f"; {hint}" if hint else ""
    if is_int(value, minimum=minimum, maximum=maximum):
        return int(value)
    if expected is not None:
        raise InputError(f"{name} must be {expected}, got {value!r}{suffix}")
    if not is_int(value):
        raise InputError(f"{name} must be an integer, got {_kind(value)}{suffix}")
    if maximum is None:
        bound = f">= {minimum}"
    elif minimum is None:
        bound = f"<= {maximum}"
    else:
        bound = f"in [{minimum}, {maximum}]"
    raise InputError(f"{name} must be an integer {bound}, got {value!r}{suffix}")


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
    expected: str | None = None,
) -> float:
    """A finite real number (not a bool or a string) in the given interval.

    ``expected`` words the requirement as :func:`check_int`'s does (``"a positive number"``).
    """
    lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
    interval = f"{lo}, {hi}"
    suffix = f"; {hint}" if hint else ""
    if isinstance(value, bool) or not isinstance(value, Real):
        if expected is not None:
            raise InputError(f"{name} must be {expected}, got {value!r}{suffix}")
        raise InputError(
            f"{name} must be a finite number in {interval}, got {_kind(value)}{suffix}"
        )
    out = float(value)
    below = low is not None and (out <= low if low_open else out < low)
    above = high is not None and (out >= high if high_open else out > high)
    if not math.isfinite(out) or below or above:
        if expected is not None:
            raise InputError(f"{name} must be {expected}, got {value!r}{suffix}")
        raise InputError(f"{name} must be a finite number in {interval}, got {value!r}{suffix}")
    return out


def check_positive(name: str, value: Any, *, hint: str = "") -> float:
    """A finite real number ``> 0`` (a scale, a ratio, a width).

    Example:
        >>> check_positive("phi", 0.5)
        0.5
    """
    return check_real(
        name, value, low=0, low_open=True, hint=hint, expected="a positive finite number"
    )


def check_bool(name: str, value: Any) -> bool:
    """A real ``True``/``False`` (a string ``"false"`` would be truthy)."""
    if not isinstance(value, bool):
        raise InputError(
            f"{name} must be True or False, got {_kind(value)}; pass {name}=True or {name}=False"
        )
    return value


def check_seed(value: Any, *, name: str = "seed") -> int:
    """A seed in ``[0, 2**63 - 1]`` (the range every torch and numpy generator accepts)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= value <= SEED_MAX:
        raise InputError(
            f"{name} must be an integer in [0, 2**63 - 1] = [0, {SEED_MAX}], got "
            f"{_kind(value)}; pass a non-negative integer such as 0"
        )
    return int(value)


def check_dtype(value: Any, *, name: str = "dtype") -> str:
    """``"float32"``/``"float64"``, also given as ``torch.float32``/``torch.float64``."""
    import torch

    text = str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else value
    if not isinstance(text, str) or text not in DTYPES:
        raise InputError(
            f"{name} must be one of {', '.join(map(repr, DTYPES))} (or torch.float32/"
            f"torch.float64), got {_kind(value)}"
        )
    return text


def check_device(value: Any, *, name: str = "device", available: bool = True) -> str:
    """A torch device string curvscope can use here, e.g. ``"cpu"`` or ``"cuda:0"``.

    Args:
        value: a string or a :class:`torch.device`.
        name: the option name for messages (``"--device"`` in the CLI).
        available: also check that the device exists on this machine (CUDA index below
            the number of GPUs, MPS built and available); ``False`` checks the spelling only.
    """
    import torch

    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"{name} must be a device string, got {_kind(value)}; {_DEVICE_HINT}")
    try:
        dev = torch.device(value.strip())
    except (RuntimeError, ValueError):
        raise InputError(f"{name}: {value!r} is not a torch device; {_DEVICE_HINT}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(
            f"{name}: curvscope runs on cpu, cuda or mps, got {value!r} (device type "
            f"{dev.type!r}); {_DEVICE_HINT}"
        )
    if available:
        _check_available(dev, value, name)
    return str(dev)


def _check_available(dev: torch.device, value: str, name: str) -> None:
    import torch

    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(
                f"{name} {value!r} asked for, but torch sees no CUDA device on this machine "
                f"(torch.cuda.is_available() is False); use {name} cpu, or run on a machine "
                "with a GPU and a CUDA build of torch"
            )
        if dev.index is not None and dev.index >= count:
            raise InputError(
                f"{name} {value!r} asked for, but this machine has {count} CUDA device(s) "
                f"(indices 0..{count - 1}); use {name} cuda:0"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(
                f"{name} {value!r} asked for, but the Apple MPS device is not available on this "
                f"machine (torch.backends.mps.is_available() is False); use {name} cpu"
                + (" or cuda" if torch.cuda.is_available() else "")
            )
