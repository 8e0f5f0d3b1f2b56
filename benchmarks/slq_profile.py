"""Where curvscope's SLQ spends its time on the digits MLP: cProfile, products vs the rest.

Runs ``slq(op, num_steps=80, num_probes=10)`` on the digits MLP (P = 8970) under cProfile and
prints the share of time inside the operator's products (``op @ V``) against everything else
(reorthogonalisation, coefficient bookkeeping, conversions), with call counts. Fractions are
meaningful on a loaded machine; absolute seconds are not. Not a test.

    PYTHONPATH=src:. python benchmarks/slq_profile.py [--steps 80] [--probes 10] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import torch
from torch import nn

from benchmarks.topk import digits_mlp
from curvscope.operators import HessianOperator
from curvscope.spectral import slq


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    model, x, y = digits_mlp()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    op @ torch.zeros(op.shape[0], args.probes)  # method choice and graph cache, unprofiled
    profiler = cProfile.Profile()
    profiler.enable()
    density = slq(op, num_steps=args.steps, num_probes=args.probes, seed=0)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(row[3] for key, row in stats.stats.items() if key[2] == "slq")
    product = sum(
        row[3]
        for key, row in stats.stats.items()
        if key[2] == "__matmul__" and "operators" in key[0]
    )
    t = density.timings
    print(
        f"cProfile: slq {total:.3f} s, operator products {product:.3f} s "
        f"({product / total:.1%}); outside products {1 - product / total:.1%}"
    )
    print(
        f"slq timings: products {t['products']:.3f} s, reorthogonalization "
        f"{t['reorthogonalization']:.3f} s, checkpoint {t['checkpoint']:.3f} s, "
        f"total {t['total']:.3f} s (outside products {1 - t['products'] / t['total']:.1%})"
    )
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
