"""Ensemble trainer vs a loop of single runs (CPU, one torch thread, float64).

R = 64 tanh networks, 200 full-batch GD steps, at four sizes up to paper 001's (n = 16,
P = 512, m = 64 examples) and P ~ 1000: with :func:`curvscope.training.train_ensemble` on its
default stacked path (batched matrix products), on its vmap path (``path="vmap"``, for
comparison), and as a loop of 64 ``torch.optim.SGD`` runs with the same seeds. The three are
timed interleaved (stacked, vmap, loop, stacked, ...) so machine load hits all alike; ratios of
the medians are reported, with the largest weight difference to the loop (must be <= 1e-12).

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
SIZES = [
    (4, 8, 1, 16, True),
    (8, 16, 1, 32, True),
    (16, 16, 16, 64, False),
    (16, 30, 16, 64, False),
]


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


def ensemble(net: Callable, x: torch.Tensor, y: torch.Tensor, path: str):
    return train_ensemble(
        net, range(R), x, y, loss_fn=torch.nn.MSELoss(), lr=LR, steps=STEPS, path=path
    )


def max_diff(net: Callable, result, singles: list[torch.nn.Module]) -> float:
    return max(
        float((p.detach() - q.detach()).abs().max())
        for r, single in enumerate(singles)
        for p, q in zip(single.parameters(), result.member(net, r).parameters(), strict=True)
    )


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
    print(
        "| network | P | N | stacked s | vmap s | loop s | speed-up stacked | speed-up vmap "
        "| max weight diff stacked / vmap |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d, h, k, n, bias in SIZES:
        net = factory(d, h, k, bias)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        y = torch.randn(n, k, generator=gen, dtype=torch.float64)
        ensemble(net, x, y, "stacked")  # warm-up (vmap, allocator)
        ensemble(net, x, y, "vmap")
        loop(net, x, y)
        times: dict[str, list[float]] = {"stacked": [], "vmap": [], "loop": []}
        results = {}
        for _ in range(args.repeats):
            for path in ("stacked", "vmap"):
                t0 = time.perf_counter()
                results[path] = ensemble(net, x, y, path)
                times[path].append(time.perf_counter() - t0)
                assert results[path].path == path
            t0 = time.perf_counter()
            singles = loop(net, x, y)
            times["loop"].append(time.perf_counter() - t0)
        err = {path: max_diff(net, results[path], singles) for path in ("stacked", "vmap")}
        P = sum(p.numel() for p in net(0).parameters())
        st, vm, lo = (statistics.median(times[key]) for key in ("stacked", "vmap", "loop"))
        name = f"tanh {d}-{h}-{k}" + ("" if bias else " (no bias)")
        print(
            f"| {name} | {P} | {n} | {st:.3f} | {vm:.3f} | {lo:.3f} | **{lo / st:.1f}x** "
            f"| {lo / vm:.1f}x | {err['stacked']:.1e} / {err['vmap']:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
