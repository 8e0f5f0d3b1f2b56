"""A Lanczos run killed with SIGKILL at any point resumes from its checkpoint to the result of
an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _reliability_slow_lanczos_child as child

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def _done(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["done"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def _run_until(path: Path, target: int) -> int:
    """Start the slow child, SIGKILL it once its checkpoint holds >= ``target`` steps."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(child.__file__).parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, child.__file__, str(path), "0.05"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while _done(path) < target:
            if proc.poll() is not None:
                raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("child made no progress in 60 s")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return _done(path)


def test_sigkill_at_several_points_then_resume_equals_uninterrupted(tmp_path) -> None:
    reference = child.run(None)
    path = tmp_path / "slq.pt"
    reached = []
    for target in (2, 5, 9):
        reached.append(_run_until(path, target))
        assert reached[-1] >= target
    assert reached == sorted(reached) and reached[-1] < child.NUM_STEPS, reached
    print("killed at steps", reached)
    resumed = child.run(str(path))
    # Only the steps after the last checkpoint were recomputed.
    assert resumed.num_products == child.NUM_STEPS - reached[-1]
    np.testing.assert_allclose(resumed.nodes, reference.nodes, rtol=0, atol=1e-12)
    np.testing.assert_allclose(resumed.weights, reference.weights, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(resumed.steps, reference.steps)
    # A kill can land mid-write: its uniquely named temporary file may stay, the checkpoint never
    # is half written.
    assert all(p.name == "slq.pt" or p.name.endswith(".tmp") for p in tmp_path.iterdir())
