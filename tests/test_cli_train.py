"""`curvscope train`: runs, writes a checkpoint, and fails cleanly on bad input."""

from __future__ import annotations

import json

from _fake_cifar import write_fake_cifar
from click.testing import CliRunner

from curvscope.cli import main
from curvscope.training import load_checkpoint


def _run(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def test_train_digits_writes_checkpoint_and_json(tmp_path):
    res = _run("--epochs", "2", "--out", str(tmp_path), "--json", "--seed", "1")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{") :])
    assert summary["num_parameters"] == 2410 and summary["epochs"] == 2
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt", model="mlp")
    assert ckpt.config.seed == 1 and ckpt.config.augment and ckpt.config.lr == 0.2
    assert json.loads((tmp_path / "history.json").read_text()) == ckpt.history
    assert summary["test_accuracy"] == ckpt.history[-1]["test_accuracy"]


def test_no_augment_and_schedule_preset_are_recorded(tmp_path):
    res = _run("--epochs", "1", "--no-augment", "--schedule", "overfit", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    cfg = load_checkpoint(tmp_path / "checkpoint.pt").config
    assert not cfg.augment and cfg.lr == 0.001 and cfg.epochs == 1 and cfg.preset == "overfit"


def test_preresnet110_on_fake_cifar10_starts(tmp_path):
    write_fake_cifar(tmp_path / "data", per_file=2)
    res = _run(
        "--model",
        "preresnet110",
        "--data",
        "cifar10",
        "--data-dir",
        str(tmp_path / "data"),
        "--epochs",
        "1",
        "--batch-size",
        "5",
        "--out",
        str(tmp_path / "run"),
    )
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt", model="preresnet110")
    assert ckpt.num_parameters == 1_146_842 and len(ckpt.history) == 1


def test_bad_input_gives_message_and_nonzero_exit_without_traceback(tmp_path):
    cases = [
        (("--model", "resnet9"), "unknown model 'resnet9'"),
        (("--data", "imagenet"), "unknown dataset 'imagenet'"),
        (
            ("--data", "cifar10", "--model", "cnn", "--data-dir", str(tmp_path / "none")),
            "does not exist",
        ),
        (("--data", "cifar10"), "--data-dir"),
        (("--epochs", "0"), "Invalid value for '--epochs'"),
        (("--resume", str(tmp_path / "none.pt"), "--epochs", "1"), "no checkpoint at"),
    ]
    for args, message in cases:
        res = _run(*args, "--out", str(tmp_path / "out"))
        assert res.exit_code != 0, args
        assert message in res.output, (args, res.output)
        # click turned the error into a clean exit: no uncaught exception, no traceback
        assert isinstance(res.exception, SystemExit), (args, res.exception)
        assert "Traceback" not in res.output


def test_help_teaches():
    res = CliRunner().invoke(main, ["train", "--help"])
    assert res.exit_code == 0
    for flag in (
        "--no-augment",
        "--seed",
        "--device",
        "--dtype",
        "--json",
        "--out",
        "--schedule",
        "--data-dir",
        "eq. 11",
    ):
        assert flag in res.output
