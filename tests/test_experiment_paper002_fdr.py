"""``noise-fdr`` (paper 002 App. A.5; spec §3.7): the top eigenpair that defines the projector,
for a network rebuilt from the saved result, equals that of an independent dense float64
reverse-over-reverse Hessian; the ratios are recomputed from the saved per-iteration records;
the (1 + μ) prefactor makes FDR hold for torch's SGD with momentum on a stationary noisy
quadratic (and the paper's (1 − μ) does not); bad configs are refused; the CLI writes a report."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_fdr import FDRConfig, FDRResult, fdr_ratio
from curvscope.plots.paper002_fdr import fdr_figures

_TINY = [
    "data_options.per_class=3",
    "channels=2,1",
    "epochs=3",
    "batch_size=5",
    "blocks=3",
    "eig_tol=1e-12",
]


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> FDRResult:
    study = get_study("noise-fdr")
    run = study.run(study.config("laptop", overrides=_TINY))
    return FDRResult.load(run.save(tmp_path_factory.mktemp("fdr") / "result"))


def test_rebuilt_network_has_the_top_eigenpair_of_an_independent_dense_hessian(result):
    window = len(result.window_states) - 1
    net = result.rebuild_model(window)
    x, y = result.rebuild_data()
    values, vectors = np.linalg.eigh(dense_hessian(Case(net, result.loss().op, x, y)).numpy())
    assert result.num_params == 1 * 2 * 9 + 2 + 2 * 1 * 9 + 1 + 1 * 10 * 9 + 10
    assert result.top_values[window] == pytest.approx(values[-1], rel=1e-8)
    overlap = abs(float(vectors[:, -1] @ result.top_vectors[window]))
    assert overlap == pytest.approx(1.0, abs=1e-8)
    with torch.no_grad():
        assert float(result.loss().train(net(x), y)) == pytest.approx(result.epoch_loss[window])


def test_ratios_are_recomputed_from_the_saved_records(result):
    bounds = result.window_bounds
    assert bounds[0] == 0 and bounds[-1] == result.left_full.size == 3 * (30 // 5)
    for e, (a, z) in enumerate(itertools.pairwise(bounds)):
        full = result.left_full[a:z].mean() / (result.prefactor * result.right_full[a:z].mean())
        top = result.left_top[a:z].mean() / (result.prefactor * result.right_top[a:z].mean())
        assert result.ratio_full[e] == pytest.approx(full, rel=1e-12)
        assert result.ratio_top[e] == pytest.approx(top, rel=1e-12)
    c = result.config
    assert result.prefactor == pytest.approx(
        c["lr"] * (1 + c["momentum"]) / (2 * (1 - c["dampening"]))
    )
    full, top = result.tail()
    claim = get_study("noise-fdr").claims(result)[0]
    want = "agrees" if top < 1e-2 <= full else ("partly" if top < full else "disagrees")
    assert claim.verdict == want
    assert get_study("noise-fdr").sections(result) and set(fdr_figures(result)) == {"fdr"}


@pytest.mark.parametrize("dampening", [0.0, 0.3])
def test_fdr_with_the_one_plus_mu_prefactor_holds_at_stationarity(dampening):
    """Independent chains of torch SGD with momentum on L = θᵀAθ/2 with gradient noise."""
    gen = torch.Generator().manual_seed(0)
    chains, lr, mu = 4000, 0.05, 0.9
    a = torch.tensor([1.0, 0.3, 3.0], dtype=torch.float64)
    theta = torch.zeros(chains, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=lr, momentum=mu, dampening=dampening)
    left = torch.zeros(chains, dtype=torch.float64)
    right = torch.zeros(chains, dtype=torch.float64)
    burn, steps = 600, 600
    for t in range(burn + steps):
        noise = torch.randn(chains, 3, generator=gen, dtype=torch.float64)
        grad = theta.detach() * a + noise
        if t >= burn:
            left += (theta.detach() * grad).sum(1)
        theta.grad = grad
        opt.step()
        if t >= burn:
            buf = opt.state[theta]["momentum_buffer"]
            right += (buf**2).sum(1)
    o_l, o_r = left / steps, right / steps
    pref = lr * (1 + mu) / (2 * (1 - dampening))
    ratio, _ = fdr_ratio(o_l.numpy(), o_r.numpy(), pref, blocks=20)
    per_chain = (o_l / (pref * o_r.mean())).numpy()  # chains independent: SE of the mean
    se = per_chain.std(ddof=1) / np.sqrt(chains)
    assert abs(ratio - 1) < 4 * se + 1e-3  # + O(1/steps) bias of window edges
    wrong = lr * (1 - mu) / (2 * (1 - dampening))  # the paper's printed FDR' prefactor
    assert abs(float(o_l.mean() / (wrong * o_r.mean())) - 1) > 10


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["channels=15"], "channels must be two"),
        (["momentum=1"], "momentum"),
        (["blocks=1"], "blocks"),
    ],
)
def test_bad_configs_are_refused(overrides, match):
    with pytest.raises(InputError, match=match):
        get_study("noise-fdr").config("laptop", overrides=overrides)


def test_bad_inputs_are_refused_before_training():
    study = get_study("noise-fdr")
    with pytest.raises(
        InputError, match=r"batch_size must be at most the 30 training samples; got"
    ):
        study.run(study.config("laptop", overrides=[*_TINY, "batch_size=31"]))
    with pytest.raises(InputError, match="image inputs"):
        study.run(FDRConfig(data="blobs", data_options={"num_samples": 20}))


def test_cli_writes_the_report(tmp_path: Path):
    out = tmp_path / "run"
    args = ["experiment", "run", "noise-fdr", "--preset", "laptop", "--out", str(out)]
    for item in [*_TINY, "epochs=2", "eig_tol=1e-6"]:
        args += ["--set", item]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert "top-1" in html and "data:image/png;base64" in html


def test_paper_preset_runs_on_a_cifar_folder(tmp_path: Path):
    from _fake_cifar import write_fake_cifar

    write_fake_cifar(tmp_path, per_file=6)
    study = get_study("noise-fdr")
    config = study.config(
        "paper",
        overrides=[f"data_dir={tmp_path}", "channels=2,1", "epochs=1", "batch_size=5", "blocks=2"],
    )
    assert "per_class" not in config.data_options
    result = study.run(config)
    assert result.input_shape == (3, 32, 32) and result.num_samples == 30
    assert result.window_bounds.tolist() == [0, 6]
