"""What a product costs inside top_eigenpairs beyond the engine's own ``op @ v`` (cProfile).

For each path (the raw double backward through a kept graph, ``op @ v``, ``top_eigenpairs``
with ``method="lanczos"`` and with ``method="eigsh"``) the profiler counts Python function calls
per product and splits the time into the product itself (``SymmetricOperator.__matmul__`` or
the raw ``torch.autograd.grad``) and everything else. Call counts are machine-independent;
times are only as good as the machine is quiet.

    PYTHONPATH=src python -m benchmarks.overhead --problem cnn --num-samples 256
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import warnings
from typing import Any

import torch
from torch import nn


def _stats(profile: cProfile.Profile) -> pstats.Stats:
    return pstats.Stats(profile)


def _cumulative(stats: pstats.Stats, name: str, filename_part: str = "") -> tuple[int, float]:
    """(calls, cumulative seconds) of functions called ``name`` (in files containing the part)."""
    calls, seconds = 0, 0.0
    for (filename, _line, func), (_cc, nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func == name and filename_part in filename:
            calls += nc
            seconds += ct
    return calls, seconds


def _total(stats: pstats.Stats) -> tuple[int, float]:
    return stats.total_calls, stats.total_tt  # type: ignore[attr-defined]


def profile_paths(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_products: int = 8
) -> list[dict[str, Any]]:
    """Profile the four paths; returns one row per path."""
    from curvscope.operators import HessianOperator
    from curvscope.spectral import top_eigenpairs

    params = [p for p in model.parameters() if p.requires_grad]
    size = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(0)
    vectors = torch.randn(size, num_products, generator=gen)
    rows = []

    # 1. Raw: one kept create-graph gradient, one backward per product (PyHessian's kernel).
    loss = nn.CrossEntropyLoss()(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    # Untimed first product: torch imports sympy lazily on the first double backward.
    torch.autograd.grad(grads, params, [torch.zeros_like(p) for p in params], retain_graph=True)
    profile = cProfile.Profile()
    profile.enable()
    for j in range(num_products):
        pieces = torch.split(vectors[:, j], [p.numel() for p in params])
        vs = [piece.view_as(p) for piece, p in zip(pieces, params, strict=True)]
        torch.autograd.grad(grads, params, vs, retain_graph=True)
    profile.disable()
    stats = _stats(profile)
    calls, seconds = _total(stats)
    _, kernel = _cumulative(stats, "grad", "autograd")
    rows.append(_row("raw double backward (kept graph)", calls, seconds, kernel, num_products))
    del grads, loss

    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    op @ vectors[:, :1]  # one-time method choice, verification, graph cache
    profile = cProfile.Profile()
    profile.enable()
    for j in range(num_products):
        op @ vectors[:, j : j + 1]
    profile.disable()
    stats = _stats(profile)
    calls, seconds = _total(stats)
    _, kernel = _cumulative(stats, "__matmul__", "operators")
    rows.append(_row("op @ v", calls, seconds, kernel, num_products))

    for method in ("lanczos", "eigsh"):
        profile = cProfile.Profile()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            profile.enable()
            res = top_eigenpairs(op, 1, method=method, tol=1e-3, max_matvecs=num_products)
            profile.disable()
        stats = _stats(profile)
        calls, seconds = _total(stats)
        _, kernel = _cumulative(stats, "_matmat", "operators/curvature")
        rows.append(_row(f"top_eigenpairs({method})", calls, seconds, kernel, res.num_matvecs))
    return rows


def _row(path: str, calls: int, seconds: float, kernel: float, products: int) -> dict[str, Any]:
    return {
        "path": path,
        "products": products,
        "calls_per_product": calls / products,
        "seconds_per_product": seconds / products,
        "kernel_per_product": kernel / products,
        "outside_kernel": 1.0 - kernel / seconds if seconds else 0.0,
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    raw = rows[0]["seconds_per_product"]
    eng = rows[1]["seconds_per_product"]
    lines = [
        "| path | products | Python calls / product | s / product (profiled) | "
        "share outside the product | vs raw | vs op @ v |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['path']} | {r['products']} | {r['calls_per_product']:.0f} | "
            f"{r['seconds_per_product']:.4f} | {100 * r['outside_kernel']:.1f} % | "
            f"{r['seconds_per_product'] / raw:.2f} | {r['seconds_per_product'] / eng:.2f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    from benchmarks.spectral import problems

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="cnn", choices=["cnn", "digits_mlp"])
    parser.add_argument("--num-samples", type=int, default=256)
    parser.add_argument("--num-products", type=int, default=8)
    args = parser.parse_args(argv)
    model, x, y = problems(torch.device("cpu"), args.num_samples, 64)[args.problem]
    print("\n".join(table(profile_paths(model, x, y, args.num_products))))


if __name__ == "__main__":
    main()
