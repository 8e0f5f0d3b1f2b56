"""The eigensolver's own cost per product, apart from the product (CPU or GPU; not a test).

On the H200 a product inside ``top_eigenpairs(op, 1)`` on the one-batch CNN cost 13.5 ms
against 6.1 ms for the raw double backward (``benchmarks/results/bench_cuda_h200.md``): at a few
milliseconds per product, the solver's per-step work shows (host syncs for the finite check,
``torch.linalg.qr`` of a P x b block, device-to-host copies of the coefficients). This script
measures that work alone: ``top_eigenpairs`` on a diagonal operator whose product is one
elementwise multiply, with a planted spectrum (a few separated top eigenvalues above a bulk),
at the sizes of the benchmark's CNN (P = 155,466) and of PreResNet-110 (P = 1,146,842). It
reports products, seconds per product of the whole run and of the bare product, and their
difference: the solver's milliseconds per product.

    PYTHONPATH=src python -m benchmarks.solver_overhead [--device cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings

import torch

from benchmarks._device import clock, device, set_device
from curvscope.operators.base import SymmetricOperator
from curvscope.spectral import top_eigenpairs

SIZES = {"cnn": 155_466, "preresnet110": 1_146_842}


class Diagonal(SymmetricOperator):
    """``diag(values)`` as an operator: the cheapest product a solver can be handed."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    @property
    def shape(self) -> tuple[int, int]:
        return (self.values.numel(), self.values.numel())

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        return self.values[:, None] * block


def planted(size: int) -> torch.Tensor:
    """Ten outliers 10, 9.5, ..., 5.5 above a bulk uniform in [0, 1] (fixed seed), float32."""
    gen = torch.Generator().manual_seed(0)
    values = torch.rand(size, generator=gen)
    values[:10] = torch.linspace(10.0, 5.5, 10)
    return values


def measure(size: int, k: int, repeats: int) -> dict[str, float]:
    op = Diagonal(planted(size).to(device()))
    probe = torch.randn(size, 1, generator=torch.Generator().manual_seed(1)).to(device())
    runs, bare = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        top_eigenpairs(op, k)  # warm-up: first-call costs
        for _ in range(repeats):
            tick = clock()
            res = top_eigenpairs(op, k)
            runs.append((clock() - tick) / res.num_matvecs)
            tick = clock()
            for _ in range(res.num_matvecs):
                op @ probe
            bare.append((clock() - tick) / res.num_matvecs)
    run, product = statistics.median(runs), statistics.median(bare)
    syncs = float("nan")
    if device().type == "cuda":  # host synchronisations per product, counted by torch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                res = top_eigenpairs(op, k)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(w.message) for w in caught) / res.num_matvecs
    return {
        "syncs_per_product": syncs,
        "top": float(res.values[0]),
        "products": float(res.num_matvecs),
        "ms_per_product_in_solver": 1e3 * run,
        "ms_bare_product": 1e3 * product,
        "ms_solver_per_product": 1e3 * (run - product),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args(argv)
    set_device(args.device)
    print(f"device {device()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "| P | k | products | ms per product in top_eigenpairs | ms bare product "
        "| solver ms per product | host syncs per product (CUDA) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.sizes:
        for k in (1, 5):
            r = measure(SIZES[name], k, args.repeats)
            syncs = "-" if math.isnan(r["syncs_per_product"]) else f"{r['syncs_per_product']:.1f}"
            print(
                f"| {SIZES[name]:,} ({name}) | {k} | {r['products']:.0f} | "
                f"{r['ms_per_product_in_solver']:.2f} | {r['ms_bare_product']:.3f} | "
                f"{r['ms_solver_per_product']:.2f} | {syncs} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
