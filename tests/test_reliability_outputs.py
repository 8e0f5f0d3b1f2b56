"""Reliability: output folders are written whole or not at all, never overwritten silently,
never shared by two writers; JSON is strict; non-finite curvature stops with a clear error;
work that would fail after training is refused before it (issue: reliability)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from curvscope._outputs import OutputFolder, json_text
from curvscope.cli import main
from curvscope.errors import InputError

_TRAIN = ("train", "--epochs", "2", "--hidden", "8")
_SPEC = ("--views", "2", "--steps", "6", "--probes", "1", "--noise-probes", "0")


def _cli(*args: str):
    return CliRunner().invoke(main, [*args])


def _strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-JSON token {token} in output")

    return json.loads(text, parse_constant=refuse)


def _clean_error(res, code: int, match: str) -> None:
    assert res.exit_code == code, (res.exit_code, res.output)
    assert isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    assert match in res.output, res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    res = _cli(*_TRAIN, "--out", str(out))
    assert res.exit_code == 0, res.output
    return out / "checkpoint.pt"


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# ---------------------------------------------------------------------- never overwritten
def test_existing_run_is_refused_and_left_untouched(trained, tmp_path):
    before = _listing(trained.parent)
    res = _cli(*_TRAIN, "--seed", "1", "--out", str(trained.parent))
    _clean_error(res, 2, "already holds files")
    assert "--force" in res.output
    assert _listing(trained.parent) == before


def test_force_replaces_the_folder_whole(tmp_path, trained):
    out = tmp_path / "spec"
    assert _cli("spectrum", str(trained), *_SPEC, "--out", str(out)).exit_code == 0
    assert (out / "stem_test.png").exists()
    (out / "stale-note.txt").write_text("from an older run")
    res = _cli("spectrum", str(trained), *_SPEC, "--compare", "none", "--force", "--out", str(out))
    assert res.exit_code == 0, res.output
    # nothing of the old run survives: no test figure from it, no foreign file
    assert not (out / "stem_test.png").exists() and not (out / "stale-note.txt").exists()
    assert set(_strict_json((out / "summary.json").read_text())["sets"]) == {
        "empirical",
        "augmented",
    }
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no staging, lock or old folders left beside it


def test_spectrum_refuses_to_replace_the_folder_holding_its_checkpoint(trained):
    res = _cli("spectrum", str(trained), *_SPEC, "--force", "--out", str(trained.parent))
    _clean_error(res, 2, "contains the checkpoint being read")
    assert trained.exists()


# ---------------------------------------------------------------------- bad output paths
def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    _clean_error(_cli(*_TRAIN, "--out", str(target)), 2, "is a file")
    _clean_error(_cli(*_TRAIN, "--out", str(target / "sub")), 2, "is a file")
    assert target.read_text() == "x"


def test_unwritable_output_folder_is_refused_before_work(tmp_path, monkeypatch):
    # Tests run as root (CI too), where chmod cannot make a folder read-only: simulate it.
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode)
    )
    res = _cli(*_TRAIN, "--out", str(tmp_path / "run"))
    _clean_error(res, 2, "permission denied")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- one writer at a time
def test_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    out = tmp_path / "run"
    with OutputFolder(out, settings={"command": "other"}):
        res = _cli(*_TRAIN, "--out", str(out))
        _clean_error(res, 2, "being written by another curvscope process")
    assert not out.exists()


def test_partial_run_of_other_settings_is_refused_then_discarded_with_force(tmp_path):
    out = tmp_path / "run"
    staging = tmp_path / ".run.partial"
    with OutputFolder(out, settings={"command": "train", "lr": 1.0}) as folder:
        (folder.staging / "checkpoint.pt").write_bytes(b"work in progress")
    assert staging.is_dir()  # an interrupted run keeps its work
    res = _cli(*_TRAIN, "--out", str(out))
    _clean_error(res, 2, "holds an interrupted run with other settings")
    assert "--force" in res.output and (staging / "checkpoint.pt").exists()
    res = _cli(*_TRAIN, "--force", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert not staging.exists() and (out / "checkpoint.pt").exists()


def test_failure_before_any_work_leaves_nothing(tmp_path):
    res = _cli(*_TRAIN, "--model", "resnet9", "--out", str(tmp_path / "run"))
    _clean_error(res, 2, "unknown model")
    assert list(tmp_path.iterdir()) == []


def test_output_folder_api_refuses_with_input_errors(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("x")
    with pytest.raises(InputError, match="already holds files"):
        OutputFolder(tmp_path / "full", settings={}).__enter__()
    with OutputFolder(tmp_path / "new", settings={"a": 1}) as folder:
        (folder.staging / "f").write_text("y")
        folder.commit()
    assert (tmp_path / "new" / "f").read_text() == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "new"]


# ---------------------------------------------------------------------- strict JSON, no NaN
def test_json_text_writes_null_for_nan_and_infinity():
    text = json_text({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5]})
    assert _strict_json(text) == {"a": None, "b": [None, None, 1.5]}


def test_regression_training_prints_no_nan_accuracy(tmp_path):
    out = tmp_path / "random"
    res = _cli("train", "--data", "random", "--epochs", "2", "--hidden", "8", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "nan" not in res.output.lower() and "acc" not in res.output
    history = _strict_json((out / "history.json").read_text())
    assert history[-1]["test_accuracy"] is None and history[-1]["test_loss"] > 0


def test_huge_weights_stop_with_a_clear_error_and_no_output(trained, tmp_path):
    payload = torch.load(trained, weights_only=True)
    payload["model_state"] = {k: v * 1e20 for k, v in payload["model_state"].items()}
    huge = tmp_path / "huge.pt"
    torch.save(payload, huge)
    out = tmp_path / "spec"
    res = _cli("spectrum", str(huge), *_SPEC, "--out", str(out))
    _clean_error(res, 1, "Check the checkpoint's weights")
    assert not out.exists()


def test_non_finite_weights_stop_with_a_clear_error(trained, tmp_path):
    payload = torch.load(trained, weights_only=True)
    name = next(iter(payload["model_state"]))
    payload["model_state"][name][0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(payload, bad)
    res = _cli("spectrum", str(bad), *_SPEC, "--out", str(tmp_path / "spec"))
    _clean_error(res, 1, "are not finite")


def test_spectrum_summary_json_is_strict(trained, tmp_path):
    res = _cli("spectrum", str(trained), *_SPEC, "--json", "--out", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    _strict_json((tmp_path / "s" / "summary.json").read_text())
    _strict_json((tmp_path / "s" / "result.json").read_text())


# ---------------------------------------------------------------------- check first
def test_run_on_data_without_augmentation_fails_before_training(tmp_path):
    res = _cli("run", "--data", "blobs", "--epochs", "1", *_SPEC, "--out", str(tmp_path / "r"))
    _clean_error(res, 2, "has no image augmentation")
    assert "trained" not in res.output and list(tmp_path.iterdir()) == []


def test_run_refuses_a_basis_that_does_not_fit_before_training(tmp_path):
    res = _cli(
        "run", "--epochs", "1", "--probes", "100000", "--steps", "2000", "--out", str(tmp_path)
    )
    _clean_error(res, 1, "Lanczos basis")
    assert "GiB" in res.output and "fewer probes" in res.output
    assert "trained" not in res.output


def test_spectrum_refuses_views_whose_noise_split_does_not_fit(trained, tmp_path):
    res = _cli(
        "spectrum",
        str(trained),
        *_SPEC,
        "--views",
        "1000000000",
        "--noise-probes",
        "2",
        "--out",
        str(tmp_path / "s"),
    )
    _clean_error(res, 1, "the noise split of N*K")
    assert "TiB" in res.output and "--noise-probes 0" in res.output


def test_theory_folder_is_refused_then_replaced_whole_with_force(tmp_path):
    out = tmp_path / "figs"
    args = ("theory", "--phi", "0.5", "--eps", "0.1", "--num-eps", "5", "--out", str(out))
    assert _cli(*args).exit_code == 0
    (out / "stale.png").write_bytes(b"old")
    _clean_error(_cli(*args), 2, "already holds files")
    assert (out / "stale.png").exists()
    res = _cli(*args, "--force", "--json")
    assert res.exit_code == 0, res.output
    assert not (out / "stale.png").exists() and (out / "densities.png").exists()
    files = _strict_json(res.output)["files"]
    assert all(Path(p).parent == out and Path(p).exists() for p in files.values())


def test_an_error_after_a_progress_bar_starts_its_own_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "curvscope", *_TRAIN, "--lr", "1e6", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    # the bar is cleared (\r) before the message; what a terminal shows last is the message
    last = proc.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("Error: the training loss became"), proc.stderr
    assert "Traceback" not in proc.stderr
