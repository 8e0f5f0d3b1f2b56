"""Reliability: a SIGKILL at any moment loses at most the work since the last checkpoint; the
same command then resumes, says so, and its result equals an uninterrupted run. Ctrl-C exits
130 and says how to resume. Two commands writing one folder at once: one refuses, the other's
result is whole. Real processes, real signals (issue: reliability)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

_TRAIN = ["train", "--epochs", "30", "--hidden", "16"]
_SPEC = ["--views", "2", "--steps", "40", "--probes", "2", "--noise-probes", "4"]
_SPEC += ["--compare", "none", "--checkpoint-every", "2", "--threads", "1"]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "curvscope", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=_env(),
    )


def _finish(args: list[str], log: Path, timeout: float = 240) -> str:
    proc = _start(args, log)
    assert proc.wait(timeout=timeout) == 0, log.read_text()
    return log.read_text()


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path, sig=signal.SIGKILL):
    """Send ``sig`` as soon as ``ready()`` holds; fail if the process ends first."""
    deadline = time.monotonic() + 240
    while not ready():
        assert proc.poll() is None, f"finished before the kill point:\n{log.read_text()}"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.002)
    proc.send_signal(sig)
    return proc.wait(timeout=60)


def _epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except Exception:  # not written yet (or being replaced): not ready
        return -1


def _same_state(a: Path, b: Path) -> None:
    sa, sb = (torch.load(p, weights_only=True) for p in (a, b))
    assert sa["epoch"] == sb["epoch"] and sa["history"] != []
    for key, value in sa["model_state"].items():
        assert torch.equal(value, sb["model_state"][key]), key
    assert [h["train_loss"] for h in sa["history"]] == [h["train_loss"] for h in sb["history"]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted training run."""
    root = tmp_path_factory.mktemp("reference")
    _finish([*_TRAIN, "--out", str(root / "train")], root / "log")
    return root / "train"


def test_train_killed_at_several_epochs_resumes_to_the_uninterrupted_result(reference, tmp_path):
    out = tmp_path / "train"
    staged = tmp_path / ".train.partial" / "checkpoint.pt"
    for kill_after in (2, 11, 23):
        proc = _start([*_TRAIN, "--out", str(out)], tmp_path / "log")
        _kill_when(proc, lambda e=kill_after: _epoch(staged) >= e, tmp_path / "log")
        assert not out.exists()  # nothing half-written in the final place
    text = _finish([*_TRAIN, "--out", str(out)], tmp_path / "log")
    assert "resuming the interrupted training" in text
    _same_state(out / "checkpoint.pt", reference / "checkpoint.pt")
    assert not staged.parent.exists()


def test_ctrl_c_exits_130_and_says_how_to_resume(reference, tmp_path):
    out = tmp_path / "train"
    staged = tmp_path / ".train.partial" / "checkpoint.pt"
    proc = _start([*_TRAIN, "--out", str(out)], tmp_path / "log")
    code = _kill_when(proc, lambda: _epoch(staged) >= 3, tmp_path / "log", signal.SIGINT)
    text = (tmp_path / "log").read_text()
    assert code == 130, text
    assert "rerun the same command to resume" in text and "Traceback" not in text
    _finish([*_TRAIN, "--out", str(out)], tmp_path / "log")
    _same_state(out / "checkpoint.pt", reference / "checkpoint.pt")


def test_spectrum_killed_during_each_phase_resumes_to_the_uninterrupted_result(reference, tmp_path):
    ckpt = str(reference / "checkpoint.pt")
    _finish(["spectrum", ckpt, *_SPEC, "--out", str(tmp_path / "whole")], tmp_path / "log")
    out = tmp_path / "spec"
    state = tmp_path / ".spec.partial" / "resume-state"
    for marker in ("lanczos_empirical.pt", "lanczos_augmented.pt", "noise_empirical.json"):
        proc = _start(["spectrum", ckpt, *_SPEC, "--out", str(out)], tmp_path / "log")
        _kill_when(proc, lambda m=marker: (state / m).exists(), tmp_path / "log")
        assert not out.exists()
    text = _finish(["spectrum", ckpt, *_SPEC, "--out", str(out)], tmp_path / "log")
    assert "resuming the interrupted spectra" in text
    # Equal to float32 rounding: the engine's timed choice among verified product methods
    # may differ between two processes (1e-8 relative seen on the noise estimate).
    with np.load(out / "spectra.npz") as got, np.load(tmp_path / "whole" / "spectra.npz") as want:
        assert sorted(got.files) == sorted(want.files)
        for key in want.files:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-7, err_msg=key)
    got_sum = json.loads((out / "summary.json").read_text())
    want_sum = json.loads((tmp_path / "whole" / "summary.json").read_text())
    got_noise, want_noise = (s["theorem1"]["noise_augmented"] for s in (got_sum, want_sum))
    assert got_noise.keys() == want_noise.keys()
    for key, value in want_noise.items():
        assert got_noise[key] == pytest.approx(value, rel=1e-6), key
    assert not (out / "resume-state").exists()  # resumable state is not part of the result


def test_two_writers_of_one_folder_one_refuses_and_the_result_is_whole(reference, tmp_path):
    out = tmp_path / "train"
    procs = [_start([*_TRAIN, "--out", str(out)], tmp_path / f"log{i}") for i in range(2)]
    codes = [p.wait(timeout=240) for p in procs]
    logs = [(tmp_path / f"log{i}").read_text() for i in range(2)]
    assert sorted(codes) == [0, 2], logs
    refused = logs[codes.index(2)]
    assert "being written by another" in refused or "already holds files" in refused
    _same_state(out / "checkpoint.pt", reference / "checkpoint.pt")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "history.json"]
