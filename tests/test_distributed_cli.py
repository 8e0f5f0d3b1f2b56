"""``torchrun --nproc_per_node=2 -m curvscope spectrum``: rank 0 alone prints and writes, the
ranks share the data (each passes over its shard; the operators all-reduce), and the 2-rank
result equals the 1-rank one (float64, to summation-order rounding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curvscope.cli import main

_SPEC = ["--views", "2", "--steps", "15", "--probes", "2", "--noise-probes", "4"]
_SPEC += ["--dtype", "float64", "--threads", "1"]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on Linux/macOS")
def test_two_ranks_print_once_write_once_and_equal_one_rank(tmp_path: Path) -> None:
    train = CliRunner().invoke(
        main, ["train", "--epochs", "2", "--hidden", "8", "--out", str(tmp_path / "t")]
    )
    assert train.exit_code == 0, train.output
    ckpt = str(tmp_path / "t" / "checkpoint.pt")
    one = CliRunner().invoke(main, ["spectrum", ckpt, *_SPEC, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",  # a free port for the rendezvous (a fixed one can collide)
            "--nproc_per_node=2",
            "-m",
            "curvscope",
            "spectrum",
            ckpt,
            *_SPEC,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        cwd=tmp_path,
    )
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("report:") == 1 and two.stdout.count("empirical:") == 1
    assert two.stderr.count("noise scale (empirical") == 1  # rank 1 shows no progress
    a = json.loads((tmp_path / "one" / "summary.json").read_text())
    b = json.loads((tmp_path / "two" / "summary.json").read_text())
    for name in ("empirical", "augmented", "test"):
        for key in ("smallest", "largest", "trace", "loss"):
            assert b["sets"][name][key] == pytest.approx(a["sets"][name][key], rel=1e-9), key
    s_one, s_two = (x["theorem1"]["noise_empirical"]["s2"] for x in (a, b))
    assert s_two == pytest.approx(s_one, rel=1e-9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "t", "two"]  # no rank leftovers
