"""`curvscope run` end to end on a reduced config, and its bad-input errors (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curvscope.cli import main

# Few epochs, a small MLP, few views and Lanczos steps: the whole job in a few seconds.
_SMALL = (
    "--epochs", "2", "--hidden", "8", "--views", "2", "--steps", "8", "--probes", "1",
    "--noise-probes", "2",
)  # fmt: skip


def _run(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def test_run_writes_every_output_and_json(tmp_path: Path) -> None:
    res = _run(*_SMALL, "--out", str(tmp_path), "--json", "--pdf")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # stdout is pure JSON; progress goes to stderr
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["num_params"] == 64 * 8 + 8 + 8 * 10 + 10 and summary["views"] == 2
    assert set(summary["sets"]) == {"empirical", "augmented", "test"}
    assert summary["theorem1"]["forward"]["noise_scale"] > 0
    expected = [
        "checkpoint.pt", "history.json", "summary.json", "result.json", "result.npz",
        "spectra.npz", "report.html", "training.png", "stem_empirical.png",
        "stem_augmented.png", "stem_test.png", "densities.png", "stem_empirical.pdf",
    ]  # fmt: skip
    for name in expected:
        assert (tmp_path / name).is_file(), name
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_run_human_output_names_the_numbers(tmp_path: Path) -> None:
    res = _run(*_SMALL, "--noise-probes", "0", "--out", str(tmp_path), "--seed", "3")
    assert res.exit_code == 0, res.output
    assert "empirical: extremes [" in res.stdout and "augmented: extremes [" in res.stdout
    assert "Theorem 1" not in res.stdout  # no noise estimate, no prediction
    assert f"report: {tmp_path / 'report.html'}" in res.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["theorem1"]["forward"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "resnet9"), "unknown model 'resnet9'"),
        (("--data", "imagenet"), "unknown dataset 'imagenet'"),
        (("--data", "cifar10", "--data-dir", "/nonexistent/cifar"), "does not exist"),
        (("--data", "cifar10"), "pass its location with"),
        (("--views", "0"), "Invalid value for '--views'"),
        (("--steps", "0"), "Invalid value for '--steps'"),
        (("--noise-probes", "1"), "1 probe gives no standard error"),
        (("--hidden", "a,b"), "expected comma-separated widths"),
        (("--device", "nodevice"), "is not a torch device"),
        (("--params", "nothing.*"), "nothing"),
        (("--data", "blobs"), "no image augmentation"),
    ],
)
def test_bad_input_gives_message_nonzero_exit_and_no_traceback(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    res = _run(*_SMALL, "--out", str(tmp_path), *args)
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert "Traceback" not in res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)


def test_python_dash_m_curvscope_lists_run_and_spectrum() -> None:
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-m", "curvscope", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    ).stdout
    assert "run" in out and "spectrum" in out and "curvscope run" in out
