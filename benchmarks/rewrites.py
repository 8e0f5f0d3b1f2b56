"""What the exact kernel rewrites gain: BatchNorm folding and channels_last (issue 16 item 4).

On the small CNN with eval-mode BatchNorm (benchmarks.spectral.small_cnn, CIFAR-shaped
inputs), for each ``rewrite=`` of the operators: the engine's verification status (float64 to
1e-8 and float32 to sqrt(eps) against the model as written), the aten kernels one Hessian
product runs (torch.profiler counts: machine-independent), and the time of one product in
gradient passes (gp), interleaved over the rewrites, with and without the graph cache.

    PYTHONPATH=src python -m benchmarks.rewrites --num-samples 256 --repeats 5
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.spectral import gradient_pass_seconds, small_cnn, sync

REWRITES = ("none", "fold-bn", "channels-last", "fold-bn+channels-last")
KERNELS = ("convolution", "batch_norm", "mul", "add", "copy_", "contiguous")


def kernel_counts(op: Any, vector: torch.Tensor) -> dict[str, int]:
    """aten calls of one product (after the first, so a cached graph is reused)."""
    from torch.profiler import profile

    with profile() as prof:
        op @ vector
    counts: dict[str, int] = {}
    for event in prof.key_averages():
        name = event.key.removeprefix("aten::")
        for kernel in KERNELS:
            if kernel in name:
                counts[kernel] = counts.get(kernel, 0) + event.count
    return counts


def bench(
    num_samples: int, repeats: int, cache: bool, device: torch.device
) -> list[dict[str, Any]]:
    from curvscope.operators import HessianOperator

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # model initialisation only
    model = small_cnn().eval()
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
    x = torch.randn(num_samples, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (num_samples,), generator=gen).to(device)
    model = model.to(device)
    gp = gradient_pass_seconds(model, x, y, device)
    ops: dict[str, tuple[Any, torch.Tensor]] = {}
    rows: dict[str, dict[str, Any]] = {}
    size = sum(p.numel() for p in model.parameters())
    vector = torch.randn(size, generator=gen).to(device)  # one vector for every rewrite
    for rewrite in REWRITES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            op = HessianOperator(
                model, nn.CrossEntropyLoss(), (x, y), rewrite=rewrite, method="rev-rev", cache=cache
            )
            first = op @ vector
        ops[rewrite] = (op, first)
        rows[rewrite] = {
            "rewrite": rewrite,
            "used": op.report.rewrite,
            "verified": op.report.rewrites.get(rewrite, "-"),
            "warnings": len(caught),
            "kernels": kernel_counts(op, vector),
            "times": [],
        }
    reference = ops["none"][1]
    for rewrite, (_op, first) in ops.items():
        rows[rewrite]["rel_diff_float32"] = float((first - reference).norm() / reference.norm())
    for _ in range(repeats):  # interleaved
        for rewrite, (op, _first) in ops.items():
            sync(device)
            tick = time.perf_counter()
            op @ vector
            sync(device)
            rows[rewrite]["times"].append(time.perf_counter() - tick)
    for row in rows.values():
        row["gp"] = float(np.median(row.pop("times"))) / gp
        row["cache"] = cache
    return list(rows.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(f"small CNN, N = {args.num_samples}, float32, {device}, torch {torch.__version__}")
    print("| rewrite | cache | used | verification | diff vs none | gp/product | kernels |")
    print("|---|---|---|---|---|---|---|")
    for cache in (True, False):
        for row in bench(args.num_samples, args.repeats, cache, device):
            print(
                f"| {row['rewrite']} | {row['cache']} | {row['used']} | {row['verified']} | "
                f"{row['rel_diff_float32']:.1e} | {row['gp']:.2f} | {row['kernels']} |"
            )


if __name__ == "__main__":
    main()
