"""Seconds per product on the batched CNN (N = 2048 in batches of 256), one library per fresh
process (issue 16: cache on / off against PyHessian).

glibc's allocator adapts its mmap threshold to the sizes freed before, so in one process the
time of a multi-GB product depends on what ran before it (the interleaved products task of
``python -m benchmarks`` measured the cached product at 1.10x PyHessian's, fresh processes 1.78x:
``benchmarks/results/bench_cpu_cnn_batched.md``). Here each (library, setting) runs alone::

    OMP_NUM_THREADS=2 PYTHONPATH=src:.:build/peers python benchmarks/fresh_products.py curvscope on
    OMP_NUM_THREADS=2 PYTHONPATH=src:.:build/peers python benchmarks/fresh_products.py curvscope off
    OMP_NUM_THREADS=2 PYTHONPATH=src:.:build/peers python benchmarks/fresh_products.py pyhessian -

Prints the median of 3 products after 2 untimed ones, the gradient pass of the same process and
their ratio (gp), and the process's system time (page faults show there).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.__main__ import build_case, operator
from benchmarks._peers import peer, pyhessian_computer
from benchmarks.spectral import split


def gradient_pass(case: dict, repeats: int = 3) -> float:
    """Median seconds of one forward + backward over every batch (the unit gp)."""
    model, loss_fn = case["model"], torch.nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    batches = split(case["x"], case["y"], case["batch_size"])
    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for bx, by in batches:
            torch.autograd.grad(loss_fn(model(bx), by), params)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[1:])


def main(library: str, cache: str) -> None:
    case = build_case("cnn_batched", False)
    if library == "curvscope":
        op = operator(case, cache="auto" if cache == "on" else False)
        v = torch.randn(op.shape[0])

        def product() -> None:
            op @ v

        label = f"curvscope cache={cache} (rewrite {{}})"
    else:
        comp = pyhessian_computer(peer("pyhessian"), case)
        vec = [torch.randn_like(p) for p in comp.params]

        def product() -> None:
            comp.dataloader_hv_product(vec)

        label = "PyHessian dataloader_hv_product"
    for _ in range(2):
        product()
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        product()
        seconds.append(time.perf_counter() - start)
    gp = gradient_pass(case)
    s = statistics.median(seconds)
    if library == "curvscope":
        label = label.format(op.report.rewrite)
    sys_s = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    malloc = "MALLOC_MMAP_THRESHOLD_" in os.environ
    print(f"{label}: {s:.2f} s per product, gradient pass {gp:.2f} s, {s / gp:.2f} gp; "
          f"system time {sys_s:.0f} s; MALLOC_* env {'set' if malloc else 'unset'}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("curvscope", "pyhessian"):
        raise SystemExit("usage: fresh_products.py curvscope|pyhessian on|off|-")
    main(sys.argv[1], sys.argv[2])
