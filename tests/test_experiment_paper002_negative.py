"""``noise-negative-eigenvalues`` (paper 002 §4.1, fig. 2a; spec §3.6): a snapshot network
rebuilt from the saved result has the reported negative eigenvalues of an independent dense
float64 reverse-over-reverse Hessian, L − L* uses the smoothed-loss minimum, the line fit and its
standard errors match the textbook OLS formulas, the verdict follows its rule, bad configs are
refused and the CLI writes a report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_negative import NegativeResult, fit_line
from curvscope.experiments.paper002_smallnet import make_loss, smoothed_ce_minimum
from curvscope.plots.paper002_negative import negative_figures

_TINY = [
    "data_options.per_class=4",
    "hidden=4",
    "gd_steps=300",
    "lrs=0.05,0.2",
    "batch_sizes=5,20",
    "burn_in=20",
    "snapshots=1",
    "snapshot_every=10",
]


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> NegativeResult:
    study = get_study("noise-negative-eigenvalues")
    run = study.run(study.config("laptop", overrides=_TINY))
    return NegativeResult.load(run.save(tmp_path_factory.mktemp("neg") / "result"))


@pytest.mark.parametrize("index", [None, -1])
def test_rebuilt_snapshot_has_the_spectrum_of_an_independent_dense_hessian(result, index):
    net = result.rebuild_model(index)
    x, y = result.rebuild_data()
    ce = torch.nn.CrossEntropyLoss(label_smoothing=result.config["label_smoothing"])
    values = np.linalg.eigvalsh(dense_hessian(Case(net, ce, x, y)).numpy())
    point = result.minimum if index is None else result.points[index]
    scale = np.abs(values).max()
    assert point.negative_sum == pytest.approx(values[values < 0].sum(), abs=1e-10 * scale)
    assert point.lambda_min == pytest.approx(values[0], abs=1e-10 * scale)
    assert point.lambda_max == pytest.approx(values[-1], abs=1e-10 * scale)
    assert point.trace == pytest.approx(values.sum(), abs=1e-9 * scale)
    with torch.no_grad():
        loss = float(ce(net(x), y))
    assert point.loss == pytest.approx(loss, rel=1e-12)
    assert point.excess == pytest.approx(loss - smoothed_ce_minimum(0.1, 10), rel=1e-12)
    assert point.excess > 0  # L* is a lower bound of the smoothed loss
    if index is None:  # tr Σ from a loop of per-sample gradients
        grads = []
        for k in range(len(y)):
            value = ce(net(x[k : k + 1]), y[k : k + 1])
            grads.append(
                torch.cat(
                    [g.reshape(-1) for g in torch.autograd.grad(value, list(net.parameters()))]
                )
            )
        g = torch.stack(grads)
        tr_sigma = float(((g - g.mean(0)) ** 2).sum()) / len(y)  # population Σ = C at S = 1
        assert result.sigma_over_h == pytest.approx(tr_sigma / values.sum(), rel=1e-8)


def test_fit_is_ordinary_least_squares_with_textbook_errors(result):
    x = np.array([p.excess for p in result.points])
    y = np.array([p.negative_sum for p in result.points])
    n = x.size
    design = np.stack([x, np.ones(n)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    sigma2 = ((y - design @ coef) ** 2).sum() / (n - 2)
    cov = sigma2 * np.linalg.inv(design.T @ design)
    f = result.fit_excess
    assert f.slope == pytest.approx(coef[0], rel=1e-8)
    assert f.intercept == pytest.approx(coef[1], rel=1e-6, abs=1e-12)
    assert f.slope_stderr == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-6)
    assert f.intercept_stderr == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-6)
    # on the paper's axis L the slope is the same and the intercept moves by -w L*
    g = result.fit_loss
    assert g.slope == pytest.approx(f.slope, rel=1e-8)
    assert g.intercept == pytest.approx(f.intercept - f.slope * result.loss_min, rel=1e-6)
    assert len(result.points) == 4 and {p.batch_size for p in result.points} == {5, 20}
    with pytest.raises(InputError, match="at least 3 points"):
        fit_line(np.array([1.0, 2.0]), np.array([0.0, 1.0]))


def test_claim_follows_its_rule(result):
    claim = get_study("noise-negative-eigenvalues").claims(result)[0]
    f = result.fit_excess
    z = abs(f.intercept) / f.intercept_stderr
    x = [p.excess for p in result.points]
    r2, zmax = result.config["r2_agree"], result.config["z_agree"]
    assert (r2, zmax) == (0.8, 3.0)  # the defaults, fixed before any run (not tuned)
    if f.slope < 0 and f.r2 >= r2 and z <= zmax and max(x) - min(x) >= 0.5 * max(x):
        assert claim.verdict == "agrees"
    elif f.slope < 0 and f.r2 >= r2 / 2:
        assert claim.verdict == "partly"
    else:
        assert claim.verdict == "disagrees"
    assert get_study("noise-negative-eigenvalues").sections(result)
    assert set(negative_figures(result)) == {"negative"}
    assert make_loss("cross_entropy", classes=10, label_smoothing=0.1).label_smoothing == 0.1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["label_smoothing=0"], "genuine minimum"),
        (["lrs=0.1,-1"], "lrs must be positive"),
        (["batch_sizes=0"], "batch_sizes"),
        (["lrs=0.1", "batch_sizes=5", "snapshots=2"], "at least 3 points"),
    ],
)
def test_bad_configs_are_refused(overrides, match):
    with pytest.raises(InputError, match=match):
        get_study("noise-negative-eigenvalues").config("laptop", overrides=overrides)


def test_bad_sizes_are_refused_before_training():
    study = get_study("noise-negative-eigenvalues")
    with pytest.raises(InputError, match="max_dense_params"):
        study.run(study.config("laptop", overrides=["max_dense_params=100"]))
    with pytest.raises(InputError, match=r"batch_sizes \[50\] exceed"):
        study.run(study.config("laptop", overrides=[*_TINY, "batch_sizes=5,50"]))


def test_cli_writes_the_report(tmp_path: Path):
    out = tmp_path / "run"
    args = ["experiment", "run", "noise-negative-eigenvalues", "--preset", "laptop"]
    args += ["--out", str(out)]
    for item in [*_TINY, "gd_steps=50"]:
        args += ["--set", item]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert "L − L*" in html and "data:image/png;base64" in html
    assert json.loads((out / "summary.json").read_text())["num_params"] == 65 * 4 + 5 * 10
