"""Child process of test_reliability_core_lanczos_kill: a slow SLQ run with a checkpoint after every step.

Usage: ``python _slow_lanczos_child.py CHECKPOINT DELAY_SECONDS``. The parent kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import time

import torch

torch.set_num_threads(1)

from curvscope import DenseOperator  # noqa: E402
from curvscope.spectral import slq  # noqa: E402

SIZE, NUM_STEPS, NUM_PROBES, SEED = 40, 12, 2, 5


def matrix() -> torch.Tensor:
    gen = torch.Generator().manual_seed(11)
    a = torch.randn(SIZE, SIZE, generator=gen, dtype=torch.float64)
    return (a + a.T) / 2


class SlowDense(DenseOperator):
    """A dense operator whose products take ``delay`` seconds (so that a kill lands mid-run)."""

    delay = 0.0

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return super()._matmat(block)


def run(checkpoint: str | None, delay: float = 0.0):
    op = SlowDense(matrix())
    op.delay = delay
    return slq(
        op,
        num_steps=NUM_STEPS,
        num_probes=NUM_PROBES,
        seed=SEED,
        checkpoint=checkpoint,
        checkpoint_every=1,
    )


if __name__ == "__main__":
    run(sys.argv[1], float(sys.argv[2]))
