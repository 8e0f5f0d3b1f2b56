"""A fresh batch's graph freed by its last backward pass, or retained until dropped (issue 16).

curvscope's products on batches outside the graph cache ran every backward pass with
``retain_graph=True``, so a batch's forward activations and first-backward tensors lived until
the whole product of that batch was done; PyHessian's ``dataloader_hv_product`` frees them as
its last pass runs. Since ``GraphState.last_use`` curvscope does the same. This script measures
the difference on PreResNet-110 (P = 1,146,842), CIFAR-shaped data, ``cache=False``, the
reference method and no kernel rewrite (so that nothing but the freeing differs); "retain"
puts the old behaviour back by clearing ``last_use`` before each product kernel runs::

    OMP_NUM_THREADS=2 PYTHONPATH=src:. python benchmarks/last_use.py ab [ROUNDS]
    OMP_NUM_THREADS=2 PYTHONPATH=src:. python benchmarks/last_use.py peak free|retain

``ab``: both in one process, interleaved (this machine's speed drifts up to 2x over minutes),
seconds per product and their medians. ``peak``: one kind per fresh process, three products,
the process's peak resident memory. Sizes: 256 samples in batches of 128 (``--size N B``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings
from typing import Any

import torch
from torch import nn

import curvscope.operators.hessian as hessian_module
from benchmarks.__main__ import _build_case_cpu
from curvscope.operators import HessianOperator

RETAIN = [False]
_apply = hessian_module.hessian_apply


def _maybe_retained(state: Any, block: Any) -> Any:
    if RETAIN[0]:
        state.last_use = False
    return _apply(state, block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("ab", "peak"))
    parser.add_argument("arg", nargs="?", default=None, help="ab: rounds; peak: free|retain")
    parser.add_argument("--size", nargs=2, type=int, default=(256, 128), metavar=("N", "B"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    hessian_module.hessian_apply = _maybe_retained
    case = _build_case_cpu("preresnet110", False, tuple(args.size))  # the step task's data
    model, x, y = case["model"], case["x"], case["y"]
    b = args.size[1]
    gen = torch.Generator().manual_seed(1)
    op = HessianOperator(
        model, nn.CrossEntropyLoss(), (x, y), batch_size=b, cache=False, rewrite=None,
        method="rev-rev",
    )  # fmt: skip
    v = torch.randn(op.shape[0], 1, generator=gen)
    first = op @ v  # untimed: allocator warm-up, first-use checks

    def timed() -> float:
        start = time.perf_counter()
        result = op @ v
        seconds = time.perf_counter() - start
        assert torch.equal(result, first), "the two kinds must give the same product"
        return seconds

    if args.mode == "ab":
        seconds: dict[str, list[float]] = {"free": [], "retain": []}
        for r in range(int(args.arg or 6)):
            for kind, times in seconds.items():
                RETAIN[0] = kind == "retain"
                times.append(timed())
            print(f"round {r}: " + ", ".join(f"{k} {t[-1]:.2f} s" for k, t in seconds.items()))
        for kind, times in seconds.items():
            print(f"{kind}: median {statistics.median(times):.2f} s per product, "
                  f"rounds {min(times):.2f}-{max(times):.2f} s")  # fmt: skip
        return
    if args.arg not in ("free", "retain"):
        raise SystemExit("peak needs free or retain")
    RETAIN[0] = args.arg == "retain"
    times = [timed() for _ in range(3)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.arg}: products {', '.join(f'{t:.2f}' for t in times)} s; "
          f"peak resident memory {peak_mb:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
