"""Bad flags to every command end with a one-line error and a non-zero exit, never a traceback.

Through click's CliRunner: devices, seeds, corrupt checkpoints and every ``theory`` flag.
"""

from __future__ import annotations

import os

import pytest
import torch
from click.testing import CliRunner

from curvscope import TrainConfig, train
from curvscope.cli import main

CUDA = torch.cuda.is_available()
MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    return train(TrainConfig(batch_size=64, weight_decay=0.0, epochs=1), out=out).checkpoint


def _fails_cleanly(args: list[str], match: str) -> str:
    """Run the CLI, check a clean failure whose output contains ``match``; return the output."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0, result.output
    # click exits through SystemExit; anything else escaped the command as a traceback
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert match in result.output, result.output
    return result.output


def _command(name: str, tmp_path, checkpoint) -> list[str]:
    if name == "spectrum":
        return ["spectrum", str(checkpoint), "--out", str(tmp_path / "s")]
    return [name, "--out", str(tmp_path / name)]


COMMANDS = ["train", "spectrum", "run"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("gpu", "'gpu' is not a torch device; use cpu, cuda, cuda:<index> or mps"),
        ("xla", "curvscope runs on cpu, cuda or mps, got 'xla'"),
    ],
)
def test_unknown_device_is_a_usage_error(command, device, match, tmp_path, checkpoint) -> None:
    _fails_cleanly([*_command(command, tmp_path, checkpoint), "--device", device], match)
    assert not (tmp_path / command).exists()  # refused before any work


@pytest.mark.skipif(CUDA, reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_cuda_on_a_cpu_machine(command, device, tmp_path, checkpoint) -> None:
    out = _fails_cleanly(
        [*_command(command, tmp_path, checkpoint), "--device", device],
        f"--device '{device}' asked for, but torch sees no CUDA device",
    )
    assert "use --device cpu" in out


@pytest.mark.skipif(MPS, reason="needs a machine without MPS")
def test_mps_blames_the_machine_not_the_checkpoint(tmp_path, checkpoint) -> None:
    out = _fails_cleanly(
        [*_command("spectrum", tmp_path, checkpoint), "--device", "mps"],
        "--device 'mps' asked for, but the Apple MPS device is not available on this machine",
    )
    assert "checkpoint" not in out.split("Error:")[-1]


@pytest.mark.parametrize("command", [*COMMANDS, "theory"])
@pytest.mark.parametrize(
    ("seed", "match"),
    [
        ("-1", "expected an integer in [0, 2**63 - 1] = [0, 9223372036854775807], got -1"),
        (str(2**64), f"got {2**64}; pass a non-negative seed such as 0"),
        ("1.5", "expected an integer in [0, 2**63 - 1], got '1.5'; e.g. --seed 0"),
    ],
)
def test_seeds_outside_the_range(command, seed, match, tmp_path, checkpoint) -> None:
    _fails_cleanly([*_command(command, tmp_path, checkpoint), "--seed", seed], match)


@pytest.mark.parametrize("command", ["spectrum", "run"])
def test_threads_range(command, tmp_path, checkpoint) -> None:
    _fails_cleanly(
        [*_command(command, tmp_path, checkpoint), "--threads", "0"], "not in the range 1<=x<=1024"
    )


def test_spectrum_on_random_bytes_says_not_a_checkpoint_without_weights_only(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(os.urandom(2000))
    out = _fails_cleanly(
        ["spectrum", str(path), "--steps", "2", "--probes", "1", "--views", "1"],
        "is not a readable curvscope checkpoint: torch could not load it (it has 2,000 bytes",
    )
    assert "weights_only" not in out and "pass a checkpoint.pt written by" in out


def test_spectrum_on_a_folder(tmp_path, checkpoint) -> None:
    _fails_cleanly(
        ["spectrum", str(checkpoint.parent), "--steps", "2", "--views", "1"],
        "is a folder, not a file (it holds a checkpoint.pt: pass that file)",
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--phi", "0"], "--phi: expected a finite number in [1e-06, 1e+06], got 0"),
        (["--phi", "-1"], "got -1; e.g. --phi 0.5"),
        (["--phi", "nan"], "--phi: expected a finite number in [1e-06, 1e+06], got nan"),
        (["--phi", "1e300"], "got 1e+300"),
        (["--scale", "inf"], "--scale: expected a finite number in [1e-06, 1e+06], got inf"),
        (["--eps", "nan"], "energies must be >= 0 and finite"),
        (["--eps", "1e300"], "--eps: energies must be >= 0 and finite"),
        (["--eps", ","], "expected at least one number, e.g. --eps 0.25,0.5"),
        (["--index-phis", "0.5,-2"], "--index-phis: expected a finite number in [1e-06, 1e+06]"),
        (["--eps-max", "0"], "--eps-max: expected a finite number in (0, 1e+06], got 0"),
        (["--num-eps", "100000000000"], "not in the range 2<=x<=10000"),
        (["--sample-size", "100000000"], "not in the range 0<=x<=4000"),
        (["--sample-size", "1"], "expected 0 (no sampled matrix) or a matrix size in [2, 4000]"),
        (["--model", "improved", "--phi", "3"], "needs phi <= 2.06, got 3; pass smaller values"),
    ],
)
def test_theory_refuses_every_bad_value_without_a_traceback(args, match, tmp_path) -> None:
    _fails_cleanly(["theory", "--out", str(tmp_path / "t"), *args], match)


def test_theory_out_is_a_file(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    _fails_cleanly(["theory", "--out", str(tmp_path / "f")], "is a file")


def test_theory_reports_its_own_input_error_cleanly(tmp_path, monkeypatch) -> None:
    from curvscope.cli import theory as theory_module
    from curvscope.errors import InputError

    def refuse(*args, **kwargs):
        raise InputError("phi must be positive and finite; got 'x'")

    monkeypatch.setattr(theory_module, "pennington_bahri", refuse)
    _fails_cleanly(["theory", "--out", str(tmp_path)], "Error: phi must be positive and finite")
