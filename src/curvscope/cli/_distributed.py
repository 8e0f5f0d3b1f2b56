"""Which process prints and writes: under ``torchrun`` only rank 0 (design: studies and runs)."""

from __future__ import annotations

import os

__all__ = ["is_writer"]


def is_writer() -> bool:
    """True unless this process is a rank other than 0 of a ``torch.distributed`` job."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0
