"""The device ``python -m benchmarks`` runs on (``--device``), and a clock that waits for it.

CUDA kernels run asynchronously: a timer read while they are queued measures their launch, not
their work. :func:`clock` synchronises the device before it reads the time, so every interval
between two :func:`clock` calls covers the work queued in it (on the CPU it is
``time.perf_counter``). Every timer of the benchmark and of its peer wrappers reads it.
"""

from __future__ import annotations

import time

import torch

from curvscope._precision import disable_tf32

__all__ = ["clock", "device", "set_device", "tf32", "to_device"]

DEVICES = ("cpu", "cuda")
_device = torch.device("cpu")
_tf32 = False


def set_device(name: str, tf32: bool = False) -> torch.device:
    """Select ``"cpu"`` or ``"cuda"`` (the current CUDA device); refuse CUDA without one.

    On CUDA every library computes in IEEE float32 unless ``tf32`` (``--tf32``): torch's
    default runs float32 convolutions in TF32 (6e-3 relative error in a CNN's Hessian product
    on an H200, benchmarks/results/gpu_h200_run.log) and curvscope turns TF32 off for its own
    products, so the peers must too for the comparison to be at equal precision."""
    global _device, _tf32
    if name not in DEVICES:
        raise SystemExit(f"--device must be one of {DEVICES}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"--device cuda: no CUDA device is available (torch {torch.__version__}, built "
            f"with CUDA {torch.version.cuda or 'none'}); run on a machine with a GPU and a "
            "CUDA build of torch, or use --device cpu"
        )
    _device = (
        torch.device(name, torch.cuda.current_device()) if name == "cuda" else torch.device(name)
    )
    _tf32 = tf32
    if name == "cuda" and not tf32:
        disable_tf32()
    return _device


def device() -> torch.device:
    """The device the cases and every vector of the benchmark live on."""
    return _device


def tf32() -> bool:
    """Whether ``--tf32`` was given: curvscope's operators then get ``allow_tf32=True``."""
    return _tf32


def to_device(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the benchmark's device (itself when already there)."""
    return tensor.to(_device)


def clock() -> float:
    """``time.perf_counter()`` after the device's queued work has finished."""
    if _device.type == "cuda":
        torch.cuda.synchronize(_device)
    return time.perf_counter()
