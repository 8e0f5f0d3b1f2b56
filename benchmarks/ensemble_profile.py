"""Where one ensemble GD step goes: the stacked path's hand-written step, operation by operation.

R = 64 members of tanh d-h-k (no bias) on N shared samples, float64, one torch thread; each
operation of ``curvscope.training._stacked.manual_step`` replayed on preallocated buffers and
timed with the thread CPU clock (``time.thread_time``, robust to other jobs on the machine), 300
steps after 30 of warm-up, medians; the last rows time the step whole.

Run:  OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ensemble_profile.py [N d h k]
      (default 64 16 30 16: P = 960; 64 16 16 16: P = 512)
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import torch

from curvscope.training._stacked import _matmul


def main() -> None:
    torch.set_num_threads(1)
    R = 64
    N, d, h, k = (int(a) for a in sys.argv[1:5]) if len(sys.argv) > 4 else (64, 16, 30, 16)
    D = torch.float64
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N, d, dtype=D, generator=gen)
    Y = torch.randn(N, k, dtype=D, generator=gen)
    W1 = 0.3 * torch.randn(R, h, d, dtype=D, generator=gen)
    W2 = 0.3 * torch.randn(R, k, h, dtype=D, generator=gen)
    zb, gb = torch.empty(N, R * h, dtype=D), torch.empty(N, R, h, dtype=D)
    ob, lb = torch.empty(R, N, k, dtype=D), torch.empty(R, N, k, dtype=D)
    parts: dict[str, list[float]] = {}
    clock = time.thread_time

    def timed(name: str, t0: float) -> None:
        parts.setdefault(name, []).append(clock() - t0)

    def step() -> None:
        t = clock()
        z = _matmul(X, W1.reshape(R * h, d).t(), out=zb)
        timed(f"layer 1 forward: X @ W1cat, one GEMM {N}x{d} @ {d}x{R * h}", t)
        t = clock()
        a = z.numpy()
        np.tanh(a, out=a)
        timed(f"tanh in place, {z.numel()} elements (numpy)", t)
        A = z.view(N, R, h).transpose(0, 1)
        t = clock()
        out = _matmul(A, W2.transpose(1, 2), out=ob)
        timed(f"layer 2 forward: {R} x ({N}x{h} @ {h}x{k})", t)
        t = clock()
        M = N * k
        diff = torch.sub(out, Y, out=lb)
        flat = diff.view(R, 1, M)
        torch.bmm(flat, flat.transpose(1, 2)).view(R).div_(M)
        g = diff.mul_(2.0 / M)
        timed("MSE losses and dL/d(out)", t)
        t = clock()
        dW2 = _matmul(g.transpose(1, 2), A)
        timed(f"dW2 = g^T A1, {R} products", t)
        t = clock()
        gA = _matmul(g, W2, out=gb.transpose(0, 1))
        timed(f"dA1 = g W2, {R} products into the (N, R, h) buffer", t)
        t = clock()
        gA = torch.ops.aten.tanh_backward.grad_input(gA, A, grad_input=gA)
        timed("tanh_backward in place", t)
        t = clock()
        dW1 = _matmul(gA.transpose(0, 1).reshape(-1, R * h).t(), X).view(R, h, d)
        timed(f"dW1 = g^T X, one GEMM {R * h}x{N} @ {N}x{d}", t)
        t = clock()
        W1.add(dW1, alpha=-1e-9)
        W2.add(dW2, alpha=-1e-9)
        timed("update W - lr g (2 adds, as ensemble.py)", t)

    for _ in range(30):
        step()
    parts.clear()
    t0 = clock()
    for _ in range(300):
        step()
    whole = (clock() - t0) / 300 * 1e6
    print(f"R = {R}, tanh {d}-{h}-{k}, N = {N}, P = {d * h + h * k}, float64, 1 thread\n")
    print("| operation | us |\n|---|---|")
    total = 0.0
    for name, times in parts.items():
        us = statistics.median(times) * 1e6
        total += us
        print(f"| {name} | {us:.0f} |")
    print(
        f"| sum | {total:.0f} |\n| the same step timed whole (with the timer calls) | {whole:.0f} |"
    )


if __name__ == "__main__":
    main()
