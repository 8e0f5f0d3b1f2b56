"""``noise-alignment`` (paper 002 eq. 35; spec §3.2-3.3): the exact H and C of a network rebuilt
from a saved result equal independent references (reverse-over-reverse Hessian; C from
per-sample gradients by a Python loop, centred, with the exact mini-batch factor), the saved CS
and CS0 equal those of the references, the Hutchinson estimate lies within 4 SE of the exact
value, CS0 is the Haar-rotation mean of CS, bad configs are refused, and the CLI writes a report.

Also covers the shared module ``paper002_smallnet`` (losses, L*, data identity)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian

from curvscope.cli import main
from curvscope.errors import CurvscopeError, InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_alignment import (
    AlignmentResult,
    alignment_values,
    estimate_alignment,
)
from curvscope.experiments.paper002_smallnet import (
    NetData,
    exact_hessian,
    exact_noise_covariance,
    smoothed_ce_minimum,
)
from curvscope.plots.paper002_alignment import alignment_figures

_TINY = [
    "data_options.per_class=4",
    "hidden=3",
    "epochs=2",
    "measure_epochs=0,2",
    "batch_size=16",
    "num_probes=64",
]


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> AlignmentResult:
    study = get_study("noise-alignment")
    run = study.run(study.config("laptop", overrides=_TINY))
    return AlignmentResult.load(run.save(tmp_path_factory.mktemp("align") / "result"))


def _reference_covariance(net, loss_fn, x, targets, batch_size: int) -> torch.Tensor:
    """(1/S)(1 − S/N)·1/(N − 1)·Σ_k (g_k − ḡ)(g_k − ḡ)ᵀ from a loop of per-sample gradients."""
    params = list(net.parameters())
    grads = []
    for k in range(x.shape[0]):
        value = loss_fn(net(x[k : k + 1]), targets[k : k + 1])
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, params)]))
    g = torch.stack(grads)
    centred = g - g.mean(0)
    n = g.shape[0]
    return (1 / batch_size) * (1 - batch_size / n) * centred.T @ centred / (n - 1)


@pytest.mark.parametrize("run", [0, 1])
def test_rebuilt_network_has_exact_h_and_c_of_the_independent_references(result, run):
    net = result.rebuild_model(run, len(result.runs[run].points) - 1)
    x, y = result.rebuild_data()
    loss = result.loss_of(run)
    targets = loss.op_targets(y)
    h_ref = dense_hessian(Case(net, loss.op, x, targets))
    c_ref = _reference_covariance(net, loss.op, x, targets, result.config["batch_size"])
    h = exact_hessian(net, loss, x, y)
    c, scale = exact_noise_covariance(net, loss, x, y, result.config["batch_size"])
    assert torch.allclose(h, h_ref, rtol=0, atol=1e-10 * float(h_ref.abs().max()))
    assert torch.allclose(c, c_ref, rtol=0, atol=1e-10 * float(c_ref.abs().max()))
    n, s = len(y), result.config["batch_size"]
    assert scale == pytest.approx((1 / s) * (1 - s / n) * n / (n - 1), rel=1e-14)
    saved = result.runs[run].points[-1].exact
    want = alignment_values(h_ref, c_ref)
    for name in ("cs", "cs0", "tr_hc", "tr_h2", "tr_c2", "tr_h", "tr_c"):
        assert getattr(saved, name) == pytest.approx(getattr(want, name), rel=1e-8), name
    # the loss of the saved point is the training loss of the rebuilt net
    with torch.no_grad():
        assert float(loss.train(net(x), y)) == pytest.approx(result.runs[run].points[-1].loss)


def test_estimate_is_within_four_standard_errors_of_the_exact_value(result):
    for run in result.runs:
        for p in run.points:
            e, s = p.exact, p.estimate
            for name in ("cs", "cs0", "tr_hc", "tr_h2", "tr_c2", "tr_h", "tr_c"):
                se = getattr(s, f"{name}_stderr")
                assert se > 0, name
                assert abs(getattr(s, name) - getattr(e, name)) < 4 * se, (run.loss, p.epoch, name)


def test_cs0_is_the_haar_average_and_cs_is_one_for_proportional_matrices():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    h, c = a @ a.T, b @ b.T
    assert alignment_values(h, 2.5 * h).cs == pytest.approx(1.0, abs=1e-14)
    # eq. 35 written out with numpy: CS = tr(A Bᵀ) / sqrt(tr(A Aᵀ) tr(B Bᵀ)); spec §3.3 CS0
    hn, cn = h.numpy(), c.numpy()
    want = np.trace(hn @ cn.T) / math.sqrt(np.trace(hn @ hn.T) * np.trace(cn @ cn.T))
    assert alignment_values(h, c).cs == pytest.approx(want, rel=1e-12)
    want0 = np.trace(hn) * np.trace(cn) / (5 * np.linalg.norm(hn) * np.linalg.norm(cn))
    assert alignment_values(h, c).cs0 == pytest.approx(want0, rel=1e-12)
    assert alignment_values(h, c).cs == pytest.approx(alignment_values(c, h).cs, rel=1e-14)
    draws = []
    for _ in range(1000):
        q, r = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))  # Haar
        draws.append(alignment_values(h, q @ c @ q.T).cs)
    values = np.array(draws)
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - alignment_values(h, c).cs0) < 4 * se
    # a dense operator estimate of a diagonal pair is exact with any probes
    d = torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))
    assert estimate_alignment(d, d * 3, num_probes=3).cs == pytest.approx(1.0, abs=1e-14)


def test_claims_and_figures_come_from_the_result(result):
    study = get_study("noise-alignment")
    claims = study.claims(result)
    assert len(claims) == len(result.runs) + 1
    for claim, run in zip(claims, result.runs):
        later = [p.exact.cs for p in run.points if p.epoch >= result.config["epochs"] / 2]
        final = run.points[-1].exact
        want = "agrees" if min(later) > 0.9 else ("partly" if final.cs > final.cs0 else "disagrees")
        assert claim.verdict == want
    cs0 = max(r.points[-1].exact.cs0 for r in result.runs)
    assert claims[-1].verdict == ("agrees" if cs0 < 0.05 else "disagrees")
    assert study.sections(result) and set(alignment_figures(result)) == {"alignment"}
    assert result.data.indices.size == result.num_samples == 40


def test_shared_pieces():
    assert smoothed_ce_minimum(0.0, 10) == 0.0
    q = np.full(10, 0.01)
    q[0] = 0.91
    assert smoothed_ce_minimum(0.1, 10) == pytest.approx(-(q * np.log(q)).sum(), rel=1e-14)
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    logits = torch.log(torch.tensor(q, dtype=torch.float64))[None]
    assert float(ce(logits, torch.tensor([0]))) == pytest.approx(smoothed_ce_minimum(0.1, 10))
    wrong = NetData("digits", {"per_class": 2}, 0, None, np.arange(20) + 1)
    with pytest.raises(CurvscopeError, match="other items than the recorded"):
        wrong.tensors()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["losses=hinge"], "losses must be"),
        (["measure_epochs=0,99"], "measure_epochs"),
        (["exact=false", "estimate=false"], "nothing to measure"),
        (["num_probes=1"], "num_probes"),
        (["lr_mse=0"], "learning rates"),
    ],
)
def test_bad_configs_are_refused(overrides, match):
    with pytest.raises(InputError, match=match):
        get_study("noise-alignment").config("laptop", overrides=overrides)


def test_bad_sizes_are_refused_before_training():
    study = get_study("noise-alignment")
    with pytest.raises(InputError, match="max_dense_params"):
        study.run(study.config("laptop", overrides=["max_dense_params=100"]))
    with pytest.raises(InputError, match="batch_size 100 exceeds"):
        study.run(study.config("laptop", overrides=[*_TINY, "batch_size=100"]))


def test_cli_writes_the_report(tmp_path: Path):
    out = tmp_path / "run"
    args = ["experiment", "run", "noise-alignment", "--preset", "laptop", "--out", str(out)]
    for item in [*_TINY, "losses=mse", "measure_epochs=2", "num_probes=4"]:
        args += ["--set", item]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert "Hessian" in html and "data:image/png;base64" in html and "CS0" in html
    assert {c["verdict"] for c in json.loads((out / "claims.json").read_text())} <= {
        "agrees",
        "partly",
        "disagrees",
    }


def test_paper_preset_runs_on_a_cifar_folder(tmp_path: Path):
    from _fake_cifar import write_fake_cifar

    write_fake_cifar(tmp_path, per_file=6)
    study = get_study("noise-alignment")
    config = study.config(
        "paper",
        overrides=[
            f"data_dir={tmp_path}",
            "hidden=2",
            "epochs=1",
            "measure_epochs=1",
            "batch_size=10",
            "num_probes=2",
        ],
    )
    result = study.run(config)
    assert result.input_dim == 49 and result.data.options["grayscale"] is True
    assert result.num_samples == 30 and result.num_params == 50 * 2 + 3 * result.classes
    assert all(0 < r.points[0].exact.cs <= 1 for r in result.runs)
    x, _ = result.rebuild_data()
    assert x.shape == (30, 1, 7, 7)
