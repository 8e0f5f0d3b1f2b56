"""Full float32 on CUDA: curvature products run without TF32 unless the user allows it.

torch runs float32 cuDNN convolutions in TF32 by default on Ampere and later GPUs (10-bit
mantissa; matmuls stay IEEE float32 unless asked). Measured on an H200 (torch 2.11, cuDNN 9.19,
``benchmarks/gpu_check.py``, ``benchmarks/results/gpu_h200_run.log``): the Hessian product of the
benchmark's small CNN (P = 155k, N = 256) in float32 has relative error 6.1e-3 against float64
with TF32 and 1.2e-4 without, for 1.6x the speed (19.6 vs 31.1 ms per 4-column product). Errors
of 6e-3 are above any eigenvalue tolerance a float32 solver otherwise reaches, so curvscope's
operators run their products in IEEE float32 and restore the process's settings afterwards;
``allow_tf32=True`` keeps torch's settings (the faster, inexact kernels).

torch >= 2.9 has per-backend ``fp32_precision`` strings beside the legacy ``allow_tf32``
booleans and refuses to read the booleans in some mixed states; see :func:`disable_tf32`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["disable_tf32", "full_float32"]


def _has_new_api() -> bool:
    """Whether this torch has the per-backend ``fp32_precision`` strings (torch >= 2.9)."""
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(
        torch.backends.cudnn, "conv"
    )


def _inherits_tf32() -> bool:
    """Whether TF32 was set through the new API for the root or for cuDNN, which cuDNN's
    ``"none"`` strings (what the legacy booleans write) would inherit."""
    return _has_new_api() and "tf32" in (
        torch.backends.fp32_precision,
        torch.backends.cudnn.fp32_precision,
    )


def _leaves() -> list[tuple[object, str]]:
    """The new API's strings that decide a kernel's precision: cuDNN conv and RNN, CUDA matmul."""
    cudnn = torch.backends.cudnn
    spaces = (cudnn.conv, getattr(cudnn, "rnn", None), torch.backends.cuda.matmul)
    return [(s, "fp32_precision") for s in spaces if s is not None]


def _legacy_api() -> list[tuple[object, str]]:
    return [(torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32")]


def disable_tf32() -> None:
    """Turn TF32 off for cuDNN and CUDA matmuls for the whole process (benchmarks that compare
    libraries at equal precision); :func:`full_float32` does it for one block.

    Through the legacy booleans, which leave torch's state readable by them (cuDNN's strings
    become ``"none"``, matmul's ``"ieee"``): with cuDNN's conv and RNN strings at ``"ieee"``
    torch 2.13 refuses to read ``torch.backends.cudnn.allow_tf32``, which torch's own code
    reads (inductor's convolution templates, ``torch.backends.cudnn.flags``). Where the user
    set TF32 for the root or for cuDNN through the new API, ``"none"`` would inherit it, so
    the leaves are then set to ``"ieee"`` explicitly."""
    for space, name in _legacy_api():
        setattr(space, name, False)
    if _inherits_tf32():
        for space, name in _leaves():
            setattr(space, name, "ieee")


def _legacy_state() -> list[bool] | None:
    """The legacy booleans, or ``None`` where torch refuses to read them (mixed APIs)."""
    try:
        return [getattr(space, name) for space, name in _legacy_api()]
    except RuntimeError:
        return None


def full_float32(
    device: torch.device, allow_tf32: bool = False
) -> contextlib.AbstractContextManager[None]:
    """Run the block with TF32 off for cuDNN and CUDA matmuls when ``device`` is a CUDA device
    and ``allow_tf32`` is False; restore the previous settings on exit, also on error.

    Switched and restored through the API the process uses: torch 2.13 keeps the legacy
    booleans readable only while they were last written through themselves (writing the same
    strings back through the new API leaves ``torch.backends.cudnn.allow_tf32`` unreadable),
    so the booleans when they are readable and no new-API TF32 would be inherited, else the
    new API's conv, RNN and matmul strings set to ``"ieee"``. A ``nullcontext`` on other
    devices (no TF32 there) and with ``allow_tf32=True``: it is entered once per product.
    """
    if device.type != "cuda" or allow_tf32:
        return contextlib.nullcontext()
    return _tf32_off()


@contextlib.contextmanager
def _tf32_off() -> Iterator[None]:
    legacy = None if _inherits_tf32() else _legacy_state()
    if legacy is not None:
        switches, saved, off = _legacy_api(), legacy, False
    else:  # the process drives the new API: stay in it
        switches = _leaves()
        saved, off = [getattr(space, name) for space, name in switches], "ieee"
    try:
        for space, name in switches:
            setattr(space, name, off)
        yield
    finally:
        for (space, name), value in zip(switches, saved):
            setattr(space, name, value)
