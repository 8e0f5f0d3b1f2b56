"""The peers of ``python -m benchmarks``, each driven through its own public API.

PyHessian (``pyhessian.hessian``), hessian-eigenthings and curvlinops (``curvlinops``
3.x) are imported from ``build/peers`` (``pip install --no-deps --target build/peers ...``)
when present; :func:`peer` returns ``None`` for a missing one and every task then skips it
with a note. Nothing in ``src/`` imports these modules.

Products are counted by wrapping each peer's own product function (PyHessian's
``hessian_vector_product`` / ``dataloader_hv_product``, curvlinops' ``_matmat``, which every
``op @ X`` and its SciPy export go through), counting columns.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks._device import clock, device
from benchmarks.spectral import split

PEERS = Path(__file__).resolve().parent.parent / "build" / "peers"
if PEERS.is_dir() and str(PEERS) not in sys.path:
    sys.path.append(str(PEERS))

NAMES = ("pyhessian", "hessian_eigenthings", "curvlinops")
_disabled = False


def disable(flag: bool) -> None:
    """``--no-peers``: every :func:`peer` returns ``None``."""
    global _disabled
    _disabled = flag


def peer(name: str) -> Any:
    """The peer's module (``pyhessian.hessian`` for PyHessian), or ``None`` when absent."""
    if _disabled:
        return None
    try:
        if name == "pyhessian":
            import pyhessian  # noqa: F401

            return sys.modules["pyhessian.hessian"]
        if name == "curvlinops":
            import curvlinops

            return curvlinops
        if name == "hessian_eigenthings":
            import hessian_eigenthings

            return hessian_eigenthings
    except ImportError:
        return None
    raise ValueError(f"unknown peer {name!r}; one of {NAMES}")


# ------------------------------------------------------------------------------ PyHessian
def shim_torch_eig() -> None:
    """PyHessian's release calls the removed ``torch.eig``: shimmed here only."""

    def eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eig(matrix)
        return torch.stack([values.real, values.imag], dim=1), vectors.real

    torch.eig = eig  # type: ignore[attr-defined]


def pyhessian_computer(ph: Any, case: dict[str, Any]) -> Any:
    """``pyhessian.hessian`` on the case: ``data=`` for one batch (one kept graph, built here),
    ``dataloader=`` for several (a forward and a create-graph backward per batch per product)."""
    batches = split(case["x"], case["y"], case["batch_size"])
    cuda = device().type == "cuda"  # PyHessian moves the data with .cuda() itself
    if len(batches) == 1:
        return ph.hessian(
            case["model"], nn.CrossEntropyLoss(), data=(case["x"], case["y"]), cuda=cuda
        )
    return ph.hessian(case["model"], nn.CrossEntropyLoss(), dataloader=batches, cuda=cuda)


@contextmanager
def pyhessian_counter(ph: Any, comp: Any | None = None) -> Iterator[list[float]]:
    """Count PyHessian's products (module-level ``hessian_vector_product`` and, for
    ``comp``, its ``dataloader_hv_product``): the yielded list holds ``[products, seconds in
    them]``."""
    count = [0, 0.0]

    def counting(fn: Any) -> Any:
        def counted(*args: Any) -> Any:
            tick = clock()
            out = fn(*args)
            count[0] += 1
            count[1] += clock() - tick
            return out

        return counted

    original = ph.hessian_vector_product
    ph.hessian_vector_product = counting(original)
    if comp is not None and comp.full_dataset:
        comp.dataloader_hv_product = counting(comp.dataloader_hv_product)
    try:
        yield count
    finally:
        ph.hessian_vector_product = original


# ----------------------------------------------------------------------------- curvlinops
def curvlinops_operator(cl: Any, case: dict[str, Any]) -> tuple[Any, list[float]]:
    """``curvlinops.HessianLinearOperator`` on the case's batches and a counter
    ``[columns, seconds in products]``.

    ``check_deterministic=False``: the check runs extra products at construction (untimed
    here anyway); the benchmark's models are in eval mode and its data fixed.
    """
    params = [p for p in case["model"].parameters() if p.requires_grad]
    op = cl.HessianLinearOperator(
        case["model"],
        nn.CrossEntropyLoss(),
        params,
        split(case["x"], case["y"], case["batch_size"]),
        check_deterministic=False,
    )
    count = [0, 0.0]
    original = op._matmat

    def counted(block: list[torch.Tensor]) -> list[torch.Tensor]:
        tick = clock()
        out = original(block)
        count[0] += int(block[0].shape[-1])
        count[1] += clock() - tick
        return out

    op._matmat = counted
    return op, count


def curvlinops_quadrature(
    op: Any, steps: int, probes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled Gauss quadrature of ``probes`` runs of curvlinops' ``fast_lanczos`` (Papyan's
    Lanczos, no reorthogonalisation, Gaussian start from the global RNG): nodes and weights
    ``evecs[0]**2 / probes`` (the measure its ``lanczos_approximate_spectrum`` smooths)."""
    from curvlinops.papyan2020traces.spectrum import fast_lanczos

    nodes, weights = [], []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(probes):
            evals, evecs = fast_lanczos(op, steps)
            nodes.append(evals.double().cpu().numpy())
            weights.append((evecs[0].double() ** 2).cpu().numpy() / probes)
    return np.concatenate(nodes), np.concatenate(weights)


def curvlinops_grid_density(
    cl: Any, op: Any, steps: int, probes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """curvlinops' public ``lanczos_approximate_spectrum(op, ncv=steps, num_repeats=probes)``
    (spectral boundaries by ARPACK at its default tol 1e-2, then Gaussian bumps on a
    1024-point grid), as a discrete measure: grid points, density times spacing, normalised."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        grid, density = cl.lanczos_approximate_spectrum(op, steps, num_repeats=probes)
    grid = grid.double().cpu().numpy()
    mass = density.double().cpu().numpy().clip(min=0) * (grid[1] - grid[0])
    return grid, mass / mass.sum()
