"""Peak RSS of two products on the batched CNN (N = 2048 in batches of 256), one fresh process
per setting (issue 16: a K-column block without the graph cache against the cached single
column), with the block memory model's prediction and the sub-block size it chose::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/block_memory.py on 1
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/block_memory.py off 10
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/block_memory.py off 10 100GB  # no budget

The optional third argument is ``block_memory=`` (default ``"auto"``). Peak RSS is the
process's VmHWM: meaningful on a loaded machine; the seconds printed are not.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.__main__ import build_case, operator, peak_rss_mb
from curvscope._memory import format_bytes


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(cache: str, k: int, block_memory: str) -> None:
    case = build_case("cnn_batched", False)
    op = operator(case, cache="auto" if cache == "on" else False, block_memory=block_memory)
    block = torch.randn(op.shape[0], k)
    baseline = rss_mb()
    tick = time.perf_counter()
    op @ block  # verification, rewrite choice, memory model, method tuning
    print(f"first product: {time.perf_counter() - tick:.1f} s (loaded machine: not a timing)")
    first = peak_rss_mb()
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():  # restart VmHWM from the RSS now: the second product's own peak
        clear_refs.write_text("5")
    op @ block
    second = peak_rss_mb()
    peak = max(first, second)
    print(
        f"peak RSS of the first product {first:.0f} MB, of the second alone {second:.0f} MB "
        f"(from {rss_mb():.0f} MB after it)"
    )
    print(
        f"cache={cache} k={k} block_memory={block_memory}: peak RSS {peak:.0f} MB "
        f"(RSS before the first product {baseline:.0f} MB)"
    )
    print(f"rewrite {op.report.rewrite}; chosen {op.report.chosen}")
    if cache == "on":
        print(op.cache_info)
    blocks = op.report.blocks
    print(blocks)
    if blocks.budget_bytes is not None:
        chosen = op.report.chosen.get(("fresh", k))
        plan = blocks.plans.get(k, {}).get(chosen) if chosen else None
        if plan is not None:
            print(
                f"used: {chosen} in sub-blocks of {plan.sub_block}, predicted peak "
                f"{format_bytes(plan.predicted_bytes)} per batch "
                f"(+ RSS before the product = {baseline + plan.predicted_bytes / 2**20:.0f} MB)"
            )


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("on", "off"):
        raise SystemExit("usage: block_memory.py on|off K [BLOCK_MEMORY]")
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else "auto")
