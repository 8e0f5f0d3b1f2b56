"""`curvscope spectrum CHECKPOINT`: spectra at a checkpoint's weights, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from curvscope.cli import main
from curvscope.experiments import TrueVsEmpiricalResult
from curvscope.training import TrainConfig, train

_SMALL = ("--views", "2", "--steps", "6", "--probes", "1", "--noise-probes", "2", "--threads", "1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    config = TrainConfig(
        batch_size=64, weight_decay=1e-4, epochs=1, lr=0.1, model_options={"hidden": [8]}
    )
    out = tmp_path_factory.mktemp("ckpt")
    return train(config, out=out, progress=False).checkpoint  # type: ignore[return-value]


def _spectrum(*args: str):
    return CliRunner().invoke(main, ["spectrum", *args])


def test_spectrum_on_a_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    res = _spectrum(
        str(checkpoint), *_SMALL, "--matrix", "ggn", "--params", "net.3.*", "--compare",
        "none", "--model", "mlp", "--out", str(tmp_path), "--json", "--dtype", "float64",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["matrix"] == "ggn" and summary["num_params"] == 8 * 10 + 10
    assert set(summary["sets"]) == {"empirical", "augmented"}
    # the GGN is positive semi-definite: no Ritz value below rounding
    assert summary["sets"]["empirical"]["smallest"] > -1e-10
    result = TrueVsEmpiricalResult.load(tmp_path / "result")
    assert result.config["params"] == "net.3.*" and result.config["dtype"] == "float64"
    assert result.spectra["augmented"].num_steps == 6
    assert (tmp_path / "report.html").is_file() and not (tmp_path / "stem_test.png").exists()


def test_spectrum_default_out_is_next_to_the_checkpoint(checkpoint: Path) -> None:
    res = _spectrum(str(checkpoint), *_SMALL)
    assert res.exit_code == 0, res.output
    assert (checkpoint.parent / "spectrum" / "report.html").is_file()
    assert (checkpoint.parent / "spectrum" / "stem_test.png").is_file()
    assert "test: extremes [" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "cnn"), "holds a 'mlp' model, but 'cnn' was asked for"),
        (("--views", "0"), "Invalid value for '--views'"),
        (("--steps", "0"), "Invalid value for '--steps'"),
        (("--matrix", "hess"), "Invalid value for '--matrix'"),
        (("--noise-probes", "1"), "1 probe gives no standard error"),
    ],
)
def test_bad_input_gives_message_nonzero_exit_and_no_traceback(
    checkpoint: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    res = _spectrum(str(checkpoint), *_SMALL, "--out", str(tmp_path), *args)
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)


def test_missing_or_foreign_checkpoint(tmp_path: Path) -> None:
    res = _spectrum(str(tmp_path / "missing.pt"), *_SMALL)
    assert res.exit_code != 0 and "no checkpoint at" in res.output
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    res = _spectrum(str(foreign), *_SMALL)
    assert res.exit_code != 0 and "is not a curvscope checkpoint" in res.output
    assert "Traceback" not in res.output
