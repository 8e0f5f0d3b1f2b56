"""``noise-valley-paths`` (paper 002 §2.1.1, spec §3.9): a network rebuilt from the saved result
against an independent dense float64 Hessian, the replayed iterates against the recorded run,
the bisection on a real run, claims from the paths, bad configs and the CLI report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_valley import ValleyPathsResult, _Iterates, _trend
from curvscope.plots.paper002_valley import valley_path_figures
from curvscope.training import (
    Callback,
    Projection,
    TrainConfig,
    flat_parameters,
    model_loss,
    projected_path,
    train,
)

TINY = [
    "data_options.per_class=5",
    "hidden=8",
    "epochs=4",
    "start_epoch=1",
    "batch_size=10",
    "pretrain_epochs=5",
    "shuffled=30",
    "num_matvecs=12",
]


@pytest.fixture(scope="module")
def tiny() -> ValleyPathsResult:
    study = get_study("noise-valley-paths")
    return study.run(study.config("laptop", overrides=TINY))


def _dense_trace(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """tr of the reverse-over-reverse float64 Hessian (tests/oracles.py) of label-smoothed CE."""
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    return float(torch.diagonal(dense_hessian(Case(net, ce, x, y), vectorize=True)).sum())


@pytest.mark.parametrize("variant", ["clean", "random-labels"])
def test_saved_result_rebuilds_a_network_whose_trace_matches_a_dense_reference(
    tiny, variant, tmp_path
):
    back = ValleyPathsResult.load(tiny.save(tmp_path / "r"))
    v = back.path(variant)
    x, y = back.rebuild_data()
    assert x.dtype == torch.float64 and len(y) == back.num_samples == 50
    row = int(np.flatnonzero(v.path.steps == v.trace_steps[-1])[0])
    net = back.rebuild_model(variant, row)
    reference = _dense_trace(net, x, y)
    assert v.trace[-1].exact == pytest.approx(reference, rel=1e-9)
    assert abs(v.trace[-1].value - reference) < 4 * v.trace[-1].stderr
    # the rebuilt network is at the projected point: its loss is the recorded one
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.1)
    assert float(loss) == pytest.approx(v.path.losses[row], rel=1e-12)


def test_paths_follow_the_protocol(tiny):
    c = tiny.config
    for v in tiny.paths:
        spe = v.steps_per_epoch
        assert v.path.threshold == v.epoch_loss[c["start_epoch"] :].min()  # the paper's rule
        assert set(range(c["start_epoch"] * spe, c["epochs"] * spe + 1, spe)) <= set(
            v.path.steps.tolist()
        )
        assert v.path.reached.all() and (v.path.losses < v.path.threshold).all()
        unbroken = np.ones(v.path.segment_max.size, dtype=bool)
        for i, _ in v.path.breaks:
            unbroken[v.path.steps.tolist().index(i)] = False
        assert (v.path.segment_max[unbroken] < v.path.threshold).all()
        assert v.test_loss.shape == v.path.losses.shape
    bad = tiny.path("random-labels")
    assert bad.shuffled_indices.size == bad.shuffled_labels.size == 30
    assert tiny.path("clean").shuffled_indices.size == 0


def test_replayed_iterates_equal_the_recorded_run_and_feed_the_bisection(tiny, tmp_path):
    v = tiny.path("clean")
    config = TrainConfig.from_dict(v.train_config)
    seen: dict[int, list[float]] = {}

    def record(model, *, step, **_):
        seen[step] = flat_parameters(model).tolist()

    out = tmp_path / "run"
    run = train(config, out=out, progress=False, callbacks=[Callback(record, unit="step")])
    names = [n for n, _ in run.model.named_parameters()]
    iterate = _Iterates(out, v.steps_per_epoch, names)
    spe = v.steps_per_epoch
    for step in (spe + 1, spe + 3, 2 * spe, 2 * spe - 1):
        assert torch.equal(iterate(step), torch.tensor(seen[step], dtype=torch.float64)), step
    # a line test nothing passes: bisection down to single steps, every pair a break
    x, y = tiny.rebuild_data()
    full = model_loss(run.model, torch.nn.CrossEntropyLoss(label_smoothing=0.1), x, y)

    def keep(theta):
        value = float(full(theta))
        return Projection(theta, 0, value, value, 0.0, False)

    path = projected_path(iterate, [spe, 2 * spe], keep, full, threshold=0.0)
    assert path.steps.tolist() == list(range(spe, 2 * spe + 1))
    assert path.num_breaks == spe
    np.testing.assert_array_equal(path.parameters[3], np.array(seen[spe + 3]))


def test_claims_come_from_the_paths(tiny):
    study = get_study("noise-valley-paths")
    claims = study.claims(tiny)
    assert len(claims) == 4
    for k, v in enumerate(tiny.paths):
        assert claims[2 * k].verdict == ("agrees" if v.path.num_breaks == 0 else "disagrees")
        slope, se = _trend(v)
        epochs = v.trace_steps / v.steps_per_epoch
        assert slope == pytest.approx(np.polyfit(epochs, v.trace_values, 1)[0])
        expected = "agrees" if slope + 2 * se < 0 else ("partly" if slope < 0 else "disagrees")
        assert claims[2 * k + 1].verdict == expected
    assert study.headline(tiny)["clean"]["breaks"] == tiny.path("clean").path.num_breaks
    assert study.sections(tiny)
    assert set(valley_path_figures(tiny)) == {"losses", "trace"}


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("variants=clean,noisy", "variants must be a non-empty subset"),
        ("start_epoch=4", "start_epoch must be in 0..epochs-1"),
        ("num_points=1", "num_points K must be >= 2"),
        ("threshold=-1", "threshold must be a positive loss"),
        ("num_matvecs=2", "num_matvecs must be >= 6"),
        ("shuffled=0", "shuffled must be >= 1"),
        ("shuffled=5000", r"shuffled must be at most the \d+ digits training images"),
    ],
)
def test_bad_config_is_an_input_error(override, match):
    study = get_study("noise-valley-paths")
    with pytest.raises(InputError, match=match):
        study.run(study.config("laptop", overrides=[*TINY, override]))


def test_cli_run_writes_the_report(tmp_path: Path):
    args = ["experiment", "run", "noise-valley-paths", "--preset", "laptop"]
    for item in [*TINY, "variants=clean", "epochs=3", "num_matvecs=6"]:
        args += ["--set", item]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "Projected paths" in page and "data:image/png;base64," in page
