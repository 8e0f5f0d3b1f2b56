"""`--data-option key=value` on `train` and `run`: typed values, passed into the dataset."""

from __future__ import annotations

import json
import re

import pytest
from _fake_mnist import write_fake_mnist
from click.testing import CliRunner

from curvscope.cli import main
from curvscope.cli._options import parse_option_value
from curvscope.training import load_checkpoint


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("-3", -3),
        ("2.5", 2.5),
        ("1e-3", 1e-3),
        ("true", True),
        ("False", False),
        ("none", None),
        ("zca", "zca"),
        ("teacher", "teacher"),
    ],
)
def test_values_are_read_as_int_float_bool_none_or_text(text: str, value: object) -> None:
    got = parse_option_value(text)
    assert got == value and type(got) is type(value)


def test_train_passes_data_options_into_the_config_and_the_data(tmp_path) -> None:
    args = ["train", "--data", "blobs", "--epochs", "1", "--out", str(tmp_path / "b")]
    opts = ["--data-option", "std=2.0", "--data-option", "num_samples=60"]
    res = CliRunner().invoke(main, [*args, *opts, "--data-option", "per_class=20", "--json"])
    assert res.exit_code == 0, res.output
    cfg = load_checkpoint(tmp_path / "b" / "checkpoint.pt").config
    assert cfg.data_options == {"std": 2.0, "num_samples": 60, "per_class": 20}
    write_fake_mnist(tmp_path / "mnist")
    mnist = ["train", "--data", "mnist", "--data-dir", str(tmp_path / "mnist"), "--epochs", "1"]
    opts = [
        "--data-option",
        "per_class=2",
        "--data-option",
        "size=7",
        "--data-option",
        "whiten=zca",
    ]
    res = CliRunner().invoke(
        main, [*mnist, *opts, "--no-augment", "--out", str(tmp_path / "m"), "--json"]
    )
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(tmp_path / "m" / "checkpoint.pt")
    assert ckpt.config.data_options == {"per_class": 2, "size": 7, "whiten": "zca"}
    summary = json.loads(res.output[res.output.index("{") :])
    assert summary["num_parameters"] == 49 * 32 + 32 + 33 * 10  # MLP 49-32-10 on 7x7 images


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["--data", "blobs", "--data-option", "size=4"],
            "dataset 'blobs' has no option 'size'; "
            "its options are num_samples, per_class, per_class_seed, std, whiten",
        ),
        (["--data-option", "per_class"], "expected key=value .* got 'per_class'"),
        (["--data-option", "size=4", "--data-option", "size=2"], "size is given twice"),
    ],
)
def test_bad_data_options_are_usage_errors_naming_the_options(
    tmp_path, command: str, args: list[str], match: str
) -> None:
    res = CliRunner().invoke(main, [command, *args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert re.search(match, " ".join(res.output.split())), res.output
    assert not (tmp_path / "o").exists()
