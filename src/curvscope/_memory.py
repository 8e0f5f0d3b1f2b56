"""Human-readable byte sizes, shared by memory guards and reports."""

from __future__ import annotations

import re

__all__ = ["format_bytes", "parse_bytes"]

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def format_bytes(num: float) -> str:
    """Format a byte count with a binary unit, e.g. ``format_bytes(3 * 2**30) == '3.00 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(num) < 1024 or unit == "TiB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.2f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


def parse_bytes(value: int | float | str) -> int:
    """Parse ``4096``, ``"512MB"``, ``"2 GiB"`` or ``"1.5G"`` into a byte count (binary units)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a memory size must be non-negative, got {value}")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?\s*", value, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(
            f"could not read the memory size {value!r}; write it like 4096, '512MB' or '2GiB'"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
