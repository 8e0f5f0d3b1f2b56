"""Ensemble trainer vs a loop of single runs (CPU, float64; one torch thread unless --threads).

R = 64 tanh networks, 200 full-batch GD steps, at four sizes up to paper 001's (n = 16,
P = 512, m = 64 examples) and P ~ 1000: with :func:`curvscope.training.train_ensemble` on its
default stacked path (batched matrix products), on its vmap path (``path="vmap"``, for
comparison), and as a loop of 64 ``torch.optim.SGD`` runs with the same seeds. The three are
timed interleaved (stacked, vmap, loop, stacked, ...) so machine load hits all alike; ratios of
the medians are reported, with the largest weight difference to the loop (must be <= 1e-12).
``--threads 1 2`` times every size at each torch thread count in turn within the same
interleaved run (stacked, vmap and loop all at the same setting), one row per count; each row
also gives the stacked path against the loop at its fastest thread count (a loop of tiny
networks gains nothing from a second thread; the stacked path splits its members over the
threads, ``_stacked.member_threads``).
``--autograd`` also times the stacked path with its hand-written backward switched off (autograd
on the stacked forward, the path before it), for a same-process A/B. ``--clock thread`` times
with the calling thread's CPU time (``time.thread_time``: on a loaded machine it leaves out the
time other jobs hold the core; meaningful with one torch thread only).

Run:  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ensemble.py [--repeats 3] [--threads 1 2]
      [--autograd] [--clock wall|thread]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from curvscope.training import _stacked, train_ensemble

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


MANUAL_PLAN = _stacked.manual_plan


def ensemble(net: Callable, x: torch.Tensor, y: torch.Tensor, path: str):
    # "autograd": the stacked path with its hand-written backward switched off
    _stacked.manual_plan = MANUAL_PLAN if path != "autograd" else (lambda ops: None)
    try:
        return train_ensemble(
            net,
            range(R),
            x,
            y,
            loss_fn=torch.nn.MSELoss(),
            lr=LR,
            steps=STEPS,
            path="stacked" if path == "autograd" else path,
        )
    finally:
        _stacked.manual_plan = MANUAL_PLAN


def max_diff(net: Callable, result, singles: list[torch.nn.Module]) -> float:
    return max(
        float((p.detach() - q.detach()).abs().max())
        for r, single in enumerate(singles)
        for p, q in zip(single.parameters(), result.member(net, r).parameters(), strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="torch thread counts (default: 1)"
    )
    parser.add_argument("--autograd", action="store_true", help="also time autograd stacked")
    parser.add_argument("--clock", choices=["wall", "thread"], default="wall")
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    paths = ["stacked", "vmap"] + (["autograd"] if args.autograd else [])
    counts = ", ".join(map(str, args.threads))
    print(f"# Ensemble trainer vs loop (CPU, torch threads {counts}, float64)\n")
    print(
        f"torch {torch.__version__}, {platform.machine()}, R = {R} members, {STEPS} full-batch "
        f"GD steps, {args.repeats} interleaved repeats (medians), {args.clock} clock\n"
    )
    extra = " | autograd s | speed-up autograd" if args.autograd else ""
    print(
        "| network | P | N | threads | stacked s | vmap s | loop s | speed-up stacked "
        "| stacked vs the fastest loop "
        f"| speed-up vmap{extra} | max weight diff stacked / vmap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.autograd else ""))
    for d, h, k, n, bias in SIZES:
        net = factory(d, h, k, bias)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        y = torch.randn(n, k, generator=gen, dtype=torch.float64)
        for threads in args.threads:  # warm-up (vmap, allocator, thread pool)
            torch.set_num_threads(threads)
            for path in paths:
                ensemble(net, x, y, path)
            loop(net, x, y)
        times = {t: {p: [] for p in [*paths, "loop"]} for t in args.threads}
        errs: dict[int, dict[str, float]] = {t: {} for t in args.threads}
        for _ in range(args.repeats):
            for threads in args.threads:
                torch.set_num_threads(threads)
                results = {}
                for path in paths:
                    t0 = clock()
                    results[path] = ensemble(net, x, y, path)
                    times[threads][path].append(clock() - t0)
                    assert results[path].path == ("stacked" if path == "autograd" else path)
                t0 = clock()
                singles = loop(net, x, y)
                times[threads]["loop"].append(clock() - t0)
                for path in paths:
                    err = max_diff(net, results[path], singles)
                    errs[threads][path] = max(errs[threads].get(path, 0.0), err)
        P = sum(p.numel() for p in net(0).parameters())
        name = f"tanh {d}-{h}-{k}" + ("" if bias else " (no bias)")
        # the loop at its fastest thread count (tiny ops: usually 1)
        best_loop = min(statistics.median(times[t]["loop"]) for t in args.threads)
        for threads in args.threads:
            st, vm, lo = (
                statistics.median(times[threads][key]) for key in ("stacked", "vmap", "loop")
            )
            err = errs[threads]
            cols = ""
            if args.autograd:
                ag = statistics.median(times[threads]["autograd"])
                cols = f" | {ag:.3f} | {lo / ag:.1f}x"
            print(
                f"| {name} | {P} | {n} | {threads} | {st:.3f} | {vm:.3f} | {lo:.3f} "
                f"| **{lo / st:.1f}x** | **{best_loop / st:.1f}x** | {lo / vm:.1f}x{cols} "
                f"| {err['stacked']:.1e} / {err['vmap']:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
