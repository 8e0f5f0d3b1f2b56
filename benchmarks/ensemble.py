"""Ensemble trainer vs a loop of single runs (CPU, one torch thread, float64).

R = 64 tanh networks, 200 full-batch GD steps, at three sizes up to paper 001's (n = 16,
P = 512, m = 64 examples): once with :func:`curvscope.training.train_ensemble` (one vmapped
computation) and once as a loop of 64 ``torch.optim.SGD`` runs with the same seeds. The two are
timed interleaved (ensemble, loop, ensemble, loop, ...) so machine load hits both alike; the
ratio of the medians is reported, with the largest weight difference (must be <= 1e-12).

Run:  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ensemble.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from curvscope.training import train_ensemble

R, STEPS, LR = 64, 200, 0.05
# (input width, hidden width, outputs, samples N, biases)
SIZES = [(4, 8, 1, 16, True), (8, 16, 1, 32, True), (16, 16, 16, 64, False)]


def factory(d: int, h: int, k: int, bias: bool) -> Callable[[int], torch.nn.Module]:
    def net(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(d, h, bias=bias), torch.nn.Tanh(), torch.nn.Linear(h, k, bias=bias)
        ).double()

    return net


def loop(net: Callable, x: torch.Tensor, y: torch.Tensor) -> list[torch.nn.Module]:
    out = []
    loss_fn = torch.nn.MSELoss()
    for seed in range(R):
        model = net(seed)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        for _ in range(STEPS):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
        out.append(model)
    return out


def ensemble(net: Callable, x: torch.Tensor, y: torch.Tensor):
    return train_ensemble(net, range(R), x, y, loss_fn=torch.nn.MSELoss(), lr=LR, steps=STEPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("# Ensemble trainer vs loop (CPU, torch threads 1, float64)\n")
    print(
        f"torch {torch.__version__}, {platform.machine()}, R = {R} members, {STEPS} full-batch "
        f"GD steps, {args.repeats} interleaved repeats (medians)\n"
    )
    print("| network | P | N | ensemble s | loop s | speed-up | max weight diff |")
    print("|---|---|---|---|---|---|---|")
    for d, h, k, n, bias in SIZES:
        net = factory(d, h, k, bias)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        y = torch.randn(n, k, generator=gen, dtype=torch.float64)
        ensemble(net, x, y)  # warm-up (vmap, allocator)
        loop(net, x, y)
        t_ens, t_loop = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = ensemble(net, x, y)
            t_ens.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            singles = loop(net, x, y)
            t_loop.append(time.perf_counter() - t0)
        err = max(
            float((p.detach() - q.detach()).abs().max())
            for r, single in enumerate(singles)
            for p, q in zip(single.parameters(), result.member(net, r).parameters(), strict=True)
        )
        P = sum(p.numel() for p in net(0).parameters())
        e, lo = statistics.median(t_ens), statistics.median(t_loop)
        name = f"tanh {d}-{h}-{k}" + ("" if bias else " (no bias)")
        print(f"| {name} | {P} | {n} | {e:.3f} | {lo:.3f} | **{lo / e:.1f}x** | {err:.1e} |")


if __name__ == "__main__":
    main()
