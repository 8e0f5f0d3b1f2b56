"""The paper-001 ``hessian-decomposition`` study (paper001_decomposition): H, H0 and H1 of the
bias-free ReLU nets against independent dense float64 references (reverse-over-reverse Hessian,
J^T H_loss J from a dense Jacobian, the closed form of H1), H = H0 + H1 to 1e-10, a network
rebuilt from the saved result, the KS / gap-fit helpers on planted data, the null directions,
claims recomputed from the result, bad configs, and the CLI writing report.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian
from torch.autograd.functional import hessian, jacobian

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper001_decomposition import (
    DecompositionResult,
    dense_matrices,
    fit_gap_scale,
    ks_to_law,
    null_directions,
    restrict,
)
from curvscope.plots.paper001_decomposition import decomposition_figures
from curvscope.rmt import marchenko_pastur, semicircle

_TINY = [
    "ae_hidden=4",
    "ae_samples=40",
    "max_steps=300",
    "noise_hidden=4",
    "noise_phis=0.25",
    "noise_eps=2.0",
    "init_hidden=4",
    "init_samples=64",
    "gap_phis=0.125,0.25",
    "gap_runs=2",
    "num_rotations=2",
]


@pytest.fixture(scope="module")
def run() -> DecompositionResult:
    study = get_study("hessian-decomposition")
    return study.run(study.config("laptop", overrides=_TINY))


@pytest.fixture(scope="module")
def reloaded(run, tmp_path_factory) -> DecompositionResult:
    return DecompositionResult.load(run.save(tmp_path_factory.mktemp("decomp") / "r"))


# ---------------------------------------------------------------------- independent references
def _paper_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L = (1/(2m)) sum e^2, written here without the study's PaperLoss."""
    return ((outputs - targets) ** 2).sum() / (2 * outputs.shape[0])


def _flat(net: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    w1, w2 = (p.detach() for p in net.parameters())
    return w1, w2


def _outputs(theta: torch.Tensor, x: torch.Tensor, n1: int, n0: int) -> torch.Tensor:
    w1 = theta[: n1 * n0].reshape(n1, n0)
    w2 = theta[n1 * n0 :].reshape(-1, n1)
    return torch.relu(x @ w1.T) @ w2.T


def _reference_ggn(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(1/m) J^T H_loss J with J the dense (m n_out, P) Jacobian and H_loss the output-space
    Hessian of the summed per-sample loss (the identity for the paper's loss, computed)."""
    w1, w2 = _flat(net)
    n1, n0 = w1.shape
    theta = torch.cat([w1.reshape(-1), w2.reshape(-1)])
    m = x.shape[0]
    jac = jacobian(lambda t: _outputs(t, x, n1, n0).reshape(-1), theta)
    out = _outputs(theta, x, n1, n0).detach()
    h_loss = hessian(lambda f: 0.5 * ((f - y.reshape(-1)) ** 2).sum(), out.reshape(-1))
    return (jac.T @ h_loss @ jac / m).numpy()


def _reference_h1(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Closed form: the only non-zero block of H1 = (1/m) sum e_{i mu} Hess yhat_{i mu} is
    d^2 / dW1[j,k] dW2[i,j] = (1/m) sum_mu e[mu,i] 1[z[mu,j] > 0] x[mu,k]."""
    w1, w2 = _flat(net)
    n1, n0 = w1.shape
    n2 = w2.shape[0]
    m = x.shape[0]
    active = (x @ w1.T > 0).double()
    e = torch.relu(x @ w1.T) @ w2.T - y
    block = torch.einsum("mk,mj,mi->jki", x, active, e) / m  # (n1, n0, n2)
    p1 = n1 * n0
    out = torch.zeros(p1 + n2 * n1, p1 + n2 * n1, dtype=torch.float64)
    for j in range(n1):
        for i in range(n2):
            rows = torch.arange(j * n0, (j + 1) * n0)
            out[rows, p1 + i * n1 + j] = block[j, :, i]
    return (out + out.T).numpy()


def _reference_hessian(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return dense_hessian(Case(net, _paper_loss, x, y)).numpy()


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("which", ["trained", "initial", "noise"])
def test_h_h0_h1_equal_independent_references_and_sum(run, which):
    index = run.noise[0].network if which == "noise" else getattr(run, which).network
    net, x, y = run.rebuild(index)
    mats = dense_matrices(net, x, y, ("h", "h0", "h1"))
    refs = {
        "h": _reference_hessian(net, x, y),
        "h0": _reference_ggn(net, x, y),
        "h1": _reference_h1(net, x, y),
    }
    scale = np.abs(refs["h"]).max()
    for key, ref in refs.items():
        np.testing.assert_allclose(mats[key], ref, rtol=0, atol=1e-10 * scale, err_msg=key)
    assert np.abs(mats["h"] - mats["h0"] - mats["h1"]).max() <= 1e-10 * scale
    assert run.trained.sum_error <= 1e-10 and run.initial.sum_error <= 1e-10
    if which == "initial":  # the same autoencoder before GD: same data, 0 steps
        assert run.initial.steps == 0 and run.initial.loss > run.trained.loss
        same = run.networks[index].data, run.networks[run.trained.network].data
        assert np.array_equal(same[0].indices, same[1].indices)
        np.testing.assert_allclose(run.initial.h, np.linalg.eigvalsh(refs["h"]), atol=1e-10 * scale)


def test_a_network_rebuilt_from_the_saved_result_gives_its_reported_spectra(run, reloaded):
    t = reloaded.trained
    net, x, y = reloaded.rebuild(t.network)
    assert x.dtype == torch.float64 and torch.equal(x, y)  # autoencoder on whitened inputs
    np.testing.assert_allclose(np.cov(x.numpy().T, bias=True), np.eye(16), atol=1e-3)
    ref = _reference_hessian(net, x, y)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(t.h, np.linalg.eigvalsh(ref), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(t.h, run.trained.h, rtol=0, atol=0)
    with torch.no_grad():
        assert t.loss == pytest.approx(float(_paper_loss(net(x), y)), rel=1e-12)
    # fig. 3: the noisy residuals are rebuilt from their seed
    n = reloaded.noise[0]
    net, x, y = reloaded.rebuild(n.network)
    with torch.no_grad():
        e2 = (net(x) - y) ** 2  # K iid N(0, 2 eps)² draws: mean 2 eps, SE 2 eps sqrt(2/K)
    assert abs(float(e2.mean()) - 2 * n.eps) <= 5 * 2 * n.eps * np.sqrt(2 / e2.numel())
    np.testing.assert_allclose(
        n.eigenvalues, np.linalg.eigvalsh(_reference_h1(net, x, y)), rtol=0, atol=1e-10
    )
    # fig. 5: one gap from its network
    net, x, y = reloaded.rebuild(int(reloaded.gap.networks[1, 0]))
    h0 = _reference_ggn(net, x, y)
    nulls = null_directions(reloaded.networks[int(reloaded.gap.networks[1, 0])].state)
    assert reloaded.gap.gaps[1, 0] == pytest.approx(restrict(h0, nulls)[0], rel=1e-8)


def test_null_directions_are_exact_and_removed(run):
    net, x, y = run.rebuild(run.init.network)
    h0 = _reference_ggn(net, x, y)
    nulls = null_directions(run.networks[run.init.network].state)
    assert nulls.shape == (h0.shape[0], 4)
    assert np.abs(h0 @ nulls).max() <= 1e-12 * np.abs(h0).max()
    assert np.abs(run.init.null_eigenvalues).max() <= 1e-10 * run.init.eigenvalues.max()
    assert run.init.eigenvalues.size == h0.shape[0] - 4
    # restrict() on a planted matrix: eigenvalues 1..5 off a known 2-D null space
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    planted = q @ np.diag([0, 0, 1, 2, 3, 4, 5.0]) @ q.T
    np.testing.assert_allclose(restrict(planted, q[:, :2] * 3), [1, 2, 3, 4, 5], atol=1e-12)


def test_ks_to_law_is_scipy_kstest_and_detects_a_wrong_law():
    rng = np.random.default_rng(1)
    law = semicircle(1.0)
    x = np.linalg.eigvalsh(law.sample_matrix(400, generator=rng))
    want = scipy.stats.kstest(x, law.cdf).statistic
    assert ks_to_law(x, law) == pytest.approx(want, abs=1e-12)
    assert ks_to_law(x, law) < 0.05  # a GOE of size 400 is close to its limit
    assert ks_to_law(x + 0.5, law) > 0.15
    mp = marchenko_pastur(0.25, 2.0)
    y = np.linalg.eigvalsh(mp.sample_matrix(400, generator=rng))
    assert ks_to_law(y, mp) < 0.05 and ks_to_law(y, marchenko_pastur(0.25, 1.0)) > 0.3
    with pytest.raises(InputError, match="non-empty set of finite"):
        ks_to_law([np.nan], law)


def test_gap_fit_recovers_a_planted_scale():
    phis = np.array([0.05, 0.1, 0.2, 0.4])
    s, res = fit_gap_scale(phis, 0.7 * (1 - np.sqrt(phis)) ** 2)
    assert s == pytest.approx(0.7, rel=1e-12) and np.abs(res).max() < 1e-12
    noisy = 0.7 * (1 - np.sqrt(phis)) ** 2 * np.array([1.1, 0.9, 1.0, 1.0])
    s, res = fit_gap_scale(phis, noisy)
    assert np.abs(res).max() == pytest.approx(
        np.abs(noisy / (s * (1 - np.sqrt(phis)) ** 2) - 1).max()
    )
    with pytest.raises(InputError, match=r"phis in \(0, 1\)"):
        fit_gap_scale([0.5, 1.5], [1.0, 1.0])


def test_claims_and_numbers_come_from_the_result(run):
    study = get_study("hessian-decomposition")
    claims = study.claims(run)
    f = run.trained.freeness
    ratio = np.mean(f.wasserstein) / np.mean(f.null_wasserstein)
    assert claims[0].verdict == (
        "agrees" if ratio <= 1.5 else "partly" if ratio <= 3 else "disagrees"
    )
    g = run.gap
    s, res = fit_gap_scale(g.phis, g.gaps.mean(axis=1))
    assert g.scale == s and np.array_equal(g.residuals, res)
    worst = np.abs(res).max()
    assert claims[3].verdict == (
        "agrees" if worst <= 0.15 else "partly" if worst <= 0.35 else "disagrees"
    )
    t = run.trained
    assert t.phi == pytest.approx(t.h.size / (16 * 40))
    assert t.eps == pytest.approx(t.loss / 16)
    assert t.index_all == np.mean(t.h < 0)
    assert all(c.verdict in ("agrees", "partly", "disagrees", "not comparable") for c in claims)
    assert study.sections(run)
    assert set(decomposition_figures(run)) == {
        "freeness",
        "h1_noise",
        "h0_init",
        "gap",
        "densities",
    }
    summary = study.headline(run)
    assert summary["ks_h0_mp"] == run.init.ks and json.dumps(summary)


@pytest.mark.parametrize(
    "override, match",
    [
        ("gap_phis=0.3,0.5", r"phi = 0.3 with 16 hidden units needs m = .* integer"),
        ("ae_hidden=200", r"P = 6,400 parameters, over max_dense_params"),
        ("noise_eps=-1", "noise_eps must be positive"),
        ("gap_runs=1", "gap_runs must be at least 2"),
        ("noise_phis=1.5", r"noise_phis must be .* in \(0, 1\)"),
    ],
)
def test_bad_configs_are_refused_before_any_work(override, match):
    study = get_study("hessian-decomposition")
    with pytest.raises(InputError, match=match):
        study.run(study.config("laptop", overrides=[override]))


def test_too_many_samples_for_the_data_is_refused():
    study = get_study("hessian-decomposition")
    with pytest.raises(InputError, match="samples are needed"):
        study.run(study.config("laptop", overrides=[*_TINY[:-3], "gap_phis=0.004,0.25"]))


def test_cli_writes_the_report_on_fake_cifar(tmp_path: Path):
    from _fake_cifar import write_fake_cifar

    write_fake_cifar(tmp_path / "cifar", per_file=30)  # 150 train images
    args = ["experiment", "run", "hessian-decomposition", "--preset", "laptop"]
    for item in (*_TINY, "data=cifar10", f"data_dir={tmp_path / 'cifar'}"):
        args += ["--set", item]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Free independence of H0 and H1" in page and "data:image/png;base64" in page
    claims = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert len(claims) == 5
