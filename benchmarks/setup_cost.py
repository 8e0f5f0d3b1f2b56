"""Where an operator's one-time setup goes on PreResNet-110 (issue 16: 65 gp of setup on the CPU).

Builds ``HessianOperator`` with the defaults (``rewrite="auto"``, ``method="auto"``,
``cache="auto"``) on CIFAR-shaped data and runs products until ``op.tuning`` is false, timing
each product and the engine's setup steps inside them (kernel-rewrite verification and timing,
method verification, the graph cache's first batch). Prints the steps, the rewrite timings the
engine measured (``op.report.rewrite_timings``: seconds per batch under each option) and the
gradient pass of the same process, so the setup reads in gp::

    OMP_NUM_THREADS=2 PYTHONPATH=src:. python benchmarks/setup_cost.py [--size N B]
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import curvscope.operators.curvature as curvature
import curvscope.operators.verify as verify
from benchmarks.__main__ import _build_case_cpu, _gradient_pass_seconds
from curvscope.operators import HessianOperator

STEPS: dict[str, list[float]] = {}


def _timed(owner: Any, name: str) -> None:
    inner: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            STEPS.setdefault(name, []).append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs=2, type=int, default=(256, 128), metavar=("N", "B"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for name in ("_choose_rewrite", "_time_rewrites", "_try_cache"):
        _timed(curvature.CurvatureOperator, name)
    for name in ("verify_rewrite", "verify_methods"):
        _timed(verify, name)
    case = _build_case_cpu("preresnet110", False, tuple(args.size))  # the step task's data
    model, x, y = case["model"], case["x"], case["y"]
    b = args.size[1]
    gen = torch.Generator().manual_seed(1)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), batch_size=b)
    v = torch.randn(op.shape[0], 1, generator=gen)
    total = 0.0
    for i in range(12):
        start = time.perf_counter()
        op @ v
        seconds = time.perf_counter() - start
        total += seconds
        print(f"product {i}: {seconds:.2f} s (tuning still: {op.tuning})", flush=True)
        if not op.tuning:
            break
    gp = _gradient_pass_seconds(case)  # the step task's unit
    print(f"setup products: {total:.1f} s = {total / gp:.1f} gp (gradient pass {gp:.2f} s)")
    for name, times in STEPS.items():
        print(f"  {name}: {', '.join(f'{t:.2f}' for t in times)} s")
    print(
        "rewrite timings (s per batch):",
        {k: round(t, 2) for k, t in op.report.rewrite_timings.items()},
    )
    print(
        "rewrites:",
        {k: v[:60] for k, v in op.report.rewrites.items()},
        "chosen:",
        op.report.rewrite,
    )
    print("method timings (s per sample):", op.report.timings)


if __name__ == "__main__":
    main()
