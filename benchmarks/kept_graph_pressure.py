"""Does a kept graph slow the products of other batches? Plain torch, no curvscope (not a test).

PreResNet-110 (P = 1,146,842), 256 CIFAR-shaped samples in two batches of 128. ``keep``: batch
0's graph (forward + first backward with ``create_graph``) is kept, as a graph cache keeps it,
and every round runs the double backward through it, then a fresh product (forward, first
backward, double backward) on batch 1. ``fresh``: both batches fresh every round. Prints seconds
per batch and round. Found while measuring the step task on the CPU
(benchmarks/results/bench_cpu_preresnet110_step.md).

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/kept_graph_pressure.py keep|fresh
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

from curvscope.models.preresnet import PreResNet


def main(mode: str, rounds: int = 5) -> None:
    torch.manual_seed(0)
    model = PreResNet(110, num_classes=10).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (256,), generator=gen)
    params = list(model.parameters())
    v = [torch.randn_like(p) for p in params]

    def gradient(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        loss = nn.functional.cross_entropy(model(xb), yb)
        return torch.autograd.grad(loss, params, create_graph=True)

    def double_backward(g: tuple[torch.Tensor, ...]) -> None:
        dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
        torch.autograd.grad(dot, params, retain_graph=True)

    kept = gradient(x[:128], y[:128]) if mode == "keep" else None
    for _ in range(rounds):
        tick = time.perf_counter()
        double_backward(kept if kept is not None else gradient(x[:128], y[:128]))
        middle = time.perf_counter()
        double_backward(gradient(x[128:], y[128:]))
        end = time.perf_counter()
        print(f"{mode}: batch 0 {middle - tick:.2f} s, batch 1 (fresh) {end - middle:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "keep")
