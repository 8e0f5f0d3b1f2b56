"""Random probe vectors drawn on the CPU from an explicit generator, then moved.

Drawing on the CPU makes a seed give the same probes on every device; the global RNG is never
touched.
"""

from __future__ import annotations

from typing import Literal

import torch

from curvscope._validate import check_seed
from curvscope.errors import InputError

__all__ = ["ProbeKind", "draw_probes", "make_generator"]

ProbeKind = Literal["rademacher", "gaussian"]


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (an ``int``)."""
    return torch.Generator(device="cpu").manual_seed(check_seed(seed))


def check_probe_kind(probe: str) -> None:
    if probe not in ("rademacher", "gaussian"):
        raise InputError(
            f"probe must be 'rademacher' or 'gaussian', got {probe!r}; both satisfy E[v v^T] = I"
        )


def draw_probes(
    size: int,
    count: int,
    *,
    generator: torch.Generator,
    probe: str = "rademacher",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """A ``(size, count)`` block of probes with :math:`\\mathbb{E}[v v^\\top] = I`.

    Rademacher entries are :math:`\\pm 1` with probability 1/2 each; Gaussian entries are standard
    normal. Drawn in float64 on the CPU, then cast and moved.
    """
    check_probe_kind(probe)
    if probe == "rademacher":
        bits = torch.randint(0, 2, (size, count), generator=generator, dtype=torch.int8)
        block = bits.to(torch.float64) * 2 - 1
    else:
        block = torch.randn(size, count, generator=generator, dtype=torch.float64)
    return block.to(dtype=dtype, device=device)
