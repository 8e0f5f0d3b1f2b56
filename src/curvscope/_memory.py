"""Human-readable byte sizes and the memory a device has free, shared by memory guards and reports."""

from __future__ import annotations

import ctypes
import functools
import os
import re
from collections.abc import Callable

import torch

from curvscope.errors import InputError

__all__ = [
    "available_memory",
    "format_bytes",
    "parse_bytes",
    "release_freed_memory",
    "tune_allocator",
]

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


def available_memory(device: torch.device | str) -> int:
    """Bytes free for new allocations on ``device``.

    CUDA: ``torch.cuda.mem_get_info``; CPU: ``MemAvailable`` of ``/proc/meminfo`` (4 GiB where
    it cannot be read, e.g. off Linux).
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (musl, macOS, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory(device: torch.device | str) -> bool:
    """Hand the CPU heap's freed pages back to the operating system (glibc ``malloc_trim(0)``).

    glibc serves an allocation below its mmap threshold from the heap, and raises that threshold
    (up to 32 MiB) each time a larger mmapped block is freed, so the intermediates of a wide
    product, once freed, stay in the process's resident memory. Measured on the N = 2048 CNN of
    issue 16 (a 10-column block without the graph cache): after tuning three product methods the
    process held 1.17 GB resident against 0.6 GB live, and that retained memory added to every
    later peak (1.5-1.65 GB per batch product, 1.16-1.2 GB with a trim after the tuning). Call it
    after one-time phases that free large blocks (tuning, calibration), not per product.

    Returns whether a trim ran: only on the CPU, only with glibc.
    """
    if torch.device(device).type != "cpu":
        return False
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


#: glibc ``mallopt`` parameters (malloc.h) and the value both thresholds are raised to (the
#: largest ``mallopt`` takes: an ``int``)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
ALLOCATOR_THRESHOLD = 2**31 - 1
#: environment settings that mean the user chose the allocator's policy themselves
_ALLOCATOR_ENV = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)
_allocator_state: str | None = None


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or ``None`` where the C library has none."""
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def tune_allocator(device: torch.device | str) -> str:
    """Opt-in (``CURVSCOPE_ALLOCATOR=reuse``): raise glibc's mmap and trim thresholds for this
    process, once, before the first CPU product.

    glibc serves allocations above its mmap threshold (dynamic, at most 32 MiB) with fresh
    ``mmap`` pages and unmaps them on ``free``, so every product re-faults and zeroes the pages
    of its large intermediates (a CNN's activations: 256 x 48 x 32 x 32 floats are 50 MB), and
    it trims the heap's top whenever 128 KiB are free at it. With both thresholds raised
    (``mallopt``, to 2 GiB) freed blocks are reused instead. Measured on issue 16's CNNs
    (2 cores, ``benchmarks/results/bench_cpu_allocator.md``): on one batch of 256 curvscope's
    default product 0.46 -> 0.31 s, PyHessian's 1.03 -> 0.39 s, a gradient pass 0.22 -> 0.15 s;
    but on N = 2048 in batches the peak resident memory rises 9-50 % (a 10-column block
    without the graph cache 1717 -> 2579 MB, above the cached single column's 2485 MB), as the
    heap keeps what it reused. Hence opt-in: speed for memory.

    Process-wide, so even when asked it is skipped where the process chose the policy itself
    (any of ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
    ``MALLOC_MMAP_MAX_`` or a ``glibc.malloc`` tunable set, or jemalloc / tcmalloc / mimalloc
    in ``LD_PRELOAD``) and off glibc; only for CPU devices. Returns what was done, the same
    string for every later call: ``"system"`` (glibc's defaults), ``"reuse: glibc thresholds
    raised"`` or ``"system: <why reuse was not applied>"``. Any other value of
    ``CURVSCOPE_ALLOCATOR`` than ``reuse`` or ``system`` raises :class:`InputError`.
    """
    global _allocator_state
    if _allocator_state is not None:
        return _allocator_state
    if torch.device(device).type != "cpu":
        return "system: not a CPU device"  # not remembered: a later CPU operator still tunes
    env = os.environ
    choice = env.get("CURVSCOPE_ALLOCATOR", "").strip().lower()
    if choice not in ("", "system", "reuse"):
        raise InputError(
            f"CURVSCOPE_ALLOCATOR must be 'reuse' (raise glibc's malloc thresholds: faster CPU "
            f"products, more resident memory) or 'system', got {env['CURVSCOPE_ALLOCATOR']!r}; "
            "unset it for glibc's defaults"
        )
    preload = env.get("LD_PRELOAD", "").lower()
    if choice != "reuse":
        state = "system"
    elif any(key in env for key in _ALLOCATOR_ENV) or "glibc.malloc" in env.get(
        "GLIBC_TUNABLES", ""
    ):
        state = "system: the process sets glibc's malloc parameters itself"
    elif any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        state = "system: another allocator is preloaded"
    else:
        mallopt = _mallopt()
        if mallopt is None:
            state = "system: not glibc"
        elif mallopt(M_MMAP_THRESHOLD, ALLOCATOR_THRESHOLD) and mallopt(
            M_TRIM_THRESHOLD, ALLOCATOR_THRESHOLD
        ):
            state = "reuse: glibc thresholds raised"
        else:
            state = "system: mallopt refused the thresholds"
    _allocator_state = state
    return state
