"""``torch.distributed`` in one place: who this process is, who writes, and which samples it
passes over (design: "Under torch.distributed only rank 0 prints and writes").

The curvature operators all-reduce their sums and sample counts over the ranks
(:mod:`curvscope.operators.curvature`), so each rank must pass over a disjoint part of the data:
:func:`shard` gives rank r the samples r, r + R, r + 2R, ... of an index list.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["distributed_session", "is_distributed", "is_writer", "rank_and_world", "shard"]


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group of more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a distributed job."""
    import torch.distributed as dist

    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_writer() -> bool:
    """True unless this process is a rank other than 0 of a distributed job (or of torchrun)."""
    if is_distributed():
        return rank_and_world()[0] == 0
    return int(os.environ.get("RANK", "0")) == 0


def shard(indices: torch.Tensor | int) -> torch.Tensor:
    """This rank's part of ``indices`` (or of ``range(indices)``): every R-th from the rank."""
    if isinstance(indices, int):
        indices = torch.arange(indices)
    rank, world = rank_and_world()
    return indices[rank::world]


@contextlib.contextmanager
def distributed_session() -> Iterator[None]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1), a gloo process group for the block, unless one
    is already initialised; otherwise nothing."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        yield
        return
    if dist.is_initialized():
        yield
        return
    dist.init_process_group(backend="gloo")
    try:
        yield
        # Every rank done with its collectives before any tears gloo down: without it a rank
        # could abort at exit ("terminate called without an active exception", 3 of 12 runs
        # of the 2-rank operator test; 0 of 12 with the barrier).
        dist.barrier()
    finally:
        dist.destroy_process_group()
