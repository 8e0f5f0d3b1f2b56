"""Peak RSS of two products on the batched CNN (N = 2048 in batches of 256), one fresh process
per setting (issue 16: a K-column block without the graph cache against the cached single
column)::

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/block_memory.py on 1
    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/block_memory.py off 10
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.__main__ import build_case
from curvscope.operators import HessianOperator


def main(cache: str, k: int) -> None:
    case = build_case("cnn_batched", False)
    op = HessianOperator(
        case["model"],
        torch.nn.CrossEntropyLoss(),
        (case["x"], case["y"]),
        batch_size=case["batch_size"],
        cache="auto" if cache == "on" else False,
    )
    block = torch.randn(op.shape[0], k)
    for _ in range(2):
        op @ block
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cache={cache} k={k}: peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("on", "off"):
        raise SystemExit("usage: block_memory.py on|off K")
    main(sys.argv[1], int(sys.argv[2]))
