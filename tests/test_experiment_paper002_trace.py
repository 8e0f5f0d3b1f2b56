"""``noise-trace-dynamics`` (paper 002 thm 1): the reported traces against an independent dense
float64 Hessian of a network rebuilt from the saved result, Hutch++ within its standard error of
the exact trace, claims recomputed from the runs, bad configs, and the CLI report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_smallnet import smoothed_ce_minimum
from curvscope.experiments.paper002_trace import TraceDynamicsResult, _stats, rate_exponent
from curvscope.plots.paper002_trace import trace_dynamics_figures

TINY = [
    "data_options.per_class=5",
    "hidden=8",
    "warmup_epochs=20",
    "threshold_excess=0.3",
    "lrs=0.1,0.2,0.4",
    "batch_size=10",
    "num_steps=20",
    "record_every=10",
    "seeds=1,2",
    "num_matvecs=12",
]


@pytest.fixture(scope="module")
def tiny() -> TraceDynamicsResult:
    study = get_study("noise-trace-dynamics")
    return study.run(study.config("laptop", overrides=TINY))


def _dense_trace(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """tr of the reverse-over-reverse float64 Hessian (tests/oracles.py) of label-smoothed CE."""
    ce = torch.nn.CrossEntropyLoss(label_smoothing=eps)
    return float(torch.diagonal(dense_hessian(Case(net, ce, x, y), vectorize=True)).sum())


def test_saved_result_rebuilds_a_network_whose_trace_matches_a_dense_reference(tiny, tmp_path):
    back = TraceDynamicsResult.load(tiny.save(tmp_path / "r"))
    x, y = back.rebuild_data()
    assert x.dtype == torch.float64 and len(y) == back.num_samples == 50
    run = back.runs[-1]
    reference = _dense_trace(back.rebuild_model(run.final_state), x, y, 0.1)
    assert run.exact[-1] == pytest.approx(reference, rel=1e-9)
    assert abs(run.trace[-1] - reference) < 4 * run.trace_stderr[-1]
    # an intermediate projected point: its loss and its Hutch++ trace are the reported ones
    k = run.steps.size // 2
    middle = back.rebuild_point(len(back.runs) - 1, k)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(middle(x), y, label_smoothing=0.1)
    assert float(loss) == pytest.approx(run.projected_loss[k], rel=1e-12)
    assert abs(run.trace[k] - _dense_trace(middle, x, y, 0.1)) < 4 * run.trace_stderr[k]
    np.testing.assert_array_equal(run.projected[-1], np.concatenate(
        [v.reshape(-1) for v in run.final_state.values()]))  # fmt: skip
    with torch.no_grad():  # θ₀ rebuilt: its loss is the recorded one
        loss = torch.nn.functional.cross_entropy(back.rebuild_model()(x), y, label_smoothing=0.1)
    assert float(loss) == pytest.approx(back.start_loss, rel=1e-12)


def test_hutchpp_is_within_four_standard_errors_of_the_exact_trace(tiny):
    checked = 0
    for run in tiny.runs:
        for k in np.flatnonzero(np.isfinite(run.exact)):
            assert abs(run.trace[k] - run.exact[k]) < 4 * run.trace_stderr[k], (run.kind, k)
            checked += 1
    assert checked == 2 * len(tiny.runs)


def test_projected_points_are_below_the_threshold_and_gd_runs_agree(tiny):
    assert tiny.threshold == pytest.approx(smoothed_ce_minimum(0.1, 10) + 0.3)
    assert tiny.start_loss < tiny.threshold
    # the paper's level: the smallest loss any recorded iterate met; every point projected below
    assert tiny.level == min(run.loss.min() for run in tiny.runs)
    assert any(run.projection_steps.sum() > 0 for run in tiny.runs)
    for run in tiny.runs:
        assert (run.projected_loss < tiny.level).all() and run.steps.tolist() == [0, 10, 20]
        assert run.trace[0] == pytest.approx(run.exact[0], abs=4 * run.trace_stderr[0])
    for lr in (0.1, 0.2, 0.4):
        gd = tiny.select("gd", lr)
        assert len(gd) == 2 and np.array_equal(gd[0].loss, gd[1].loss)  # GD ignores the seed
        sgd = tiny.select("sgd", lr)
        assert not np.array_equal(sgd[0].loss, sgd[1].loss)
        # the same probes for SGD and GD of one seed, and at every point of a run
        assert sgd[0].trace[0] == pytest.approx(gd[0].trace[0], rel=1e-12)


def test_claims_and_summary_come_from_the_runs(tiny):
    study = get_study("noise-trace-dynamics")
    claims = study.claims(tiny)
    lrs = tiny.config["lrs"]
    sgd = [_stats(tiny, "sgd", lr) for lr in lrs]
    gd = [_stats(tiny, "gd", lr) for lr in lrs]
    lower = [s[0] + 2 * s[1] < 0 for s in sgd]
    expected = (
        "agrees"
        if all(lower) and all(s[0] < g[0] for s, g in zip(sgd, gd))
        else ("partly" if any(lower) else "disagrees")
    )
    assert claims[0].verdict == expected
    changes = [r.trace[-1] - r.trace[0] for r in tiny.select("sgd", 0.1)]
    assert sgd[0][0] == pytest.approx(np.mean(changes))
    p, p_se = rate_exponent(tiny)
    rates = [-s[2] for s in sgd]
    if min(rates) > 0:
        (want, _), cov = np.polyfit(np.log(lrs), np.log(rates), 1, cov=True)
        assert p == pytest.approx(want) and p_se == pytest.approx(math.sqrt(cov[0, 0]))
        rule = "agrees" if abs(p - 2) <= 2 * p_se else ("partly" if p > 0 else "disagrees")
    else:  # some mean SGD slope is not negative: no exponent to fit
        assert math.isnan(p)
        rule = "not comparable"
    assert claims[1].verdict == rule
    summary = study.headline(tiny)
    assert summary["by_lr"]["0.1"]["sgd"]["change"] == sgd[0][0]
    assert study.sections(tiny)
    assert set(trace_dynamics_figures(tiny)) == {"trace", "rate"}


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("lrs=-0.1", "lrs must be positive"),
        ("record_every=50", "record_every must be in 1..num_steps"),
        ("batch_size=50", "batch_size must be below the number of samples N = 50"),
        ("threshold_excess=0", "threshold_excess must be > 0"),
        ("num_matvecs=3", "num_matvecs must be >= 6"),
    ],
)
def test_bad_config_is_an_input_error(override, match):
    study = get_study("noise-trace-dynamics")
    with pytest.raises(InputError, match=match):
        study.run(study.config("laptop", overrides=[*TINY, override]))


def test_cli_run_writes_the_report(tmp_path: Path):
    args = ["experiment", "run", "noise-trace-dynamics", "--preset", "laptop"]
    for item in [
        *TINY[:-3],
        "lrs=0.2",
        "seeds=1,2",
        "num_matvecs=6",
        "num_steps=10",
        "record_every=5",
    ]:
        args += ["--set", item]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "Trace under SGD vs GD" in page and "data:image/png;base64," in page


@pytest.mark.parametrize(("batch", "momentum"), [(4, 0.0), (4, 0.9), (10, 0.5)])
def test_sgd_path_is_torch_sgd_on_epoch_shuffled_batches(batch, momentum):
    """_paper002.sgd_path against torch.optim.SGD fed the same permutations (batch 10 = N: GD)."""
    from curvscope.experiments._paper002 import sgd_path

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(10, generator=gen, dtype=torch.float64)

    def loss_of(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return ((torch.tanh(x[idx] @ theta) - y[idx]) ** 2).mean()

    start = torch.randn(3, generator=gen, dtype=torch.float64)
    steps, lr = 11, 0.3
    path = sgd_path(loss_of, start, 10, lr=lr, momentum=momentum, batch=batch, steps=steps,
                    seed=5, every=1)  # fmt: skip
    ref = torch.nn.Parameter(start.clone())
    opt = torch.optim.SGD([ref], lr=lr, momentum=momentum)
    order, stream, per_epoch = torch.arange(10), torch.Generator().manual_seed(5), 10 // batch
    for step in range(steps):
        if step % per_epoch == 0 and batch < 10:
            order = torch.randperm(10, generator=stream)
        k = step % per_epoch
        opt.zero_grad()
        loss_of(ref, order[k * batch : (k + 1) * batch]).backward()
        opt.step()
        assert path[step + 1][0] == step + 1
        torch.testing.assert_close(path[step + 1][1], ref.detach(), rtol=0, atol=1e-14)
    if batch == 10:  # full batch: the seed does not matter
        other = sgd_path(loss_of, start, 10, lr=lr, momentum=momentum, batch=batch,
                         steps=steps, seed=6, every=steps)  # fmt: skip
        assert torch.equal(other[-1][1], path[-1][1])
