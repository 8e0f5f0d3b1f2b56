"""The ``critical-points`` study (paper 001 §6.4): the closed-form Hessian against an
independent reverse-over-reverse Hessian, the loss convention, the batched descents against a
loop of the single-run trainers, J_g convergence with the exact index, the fits on planted data,
the rebuild of a saved run, bad configs and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper001_critical import (
    CriticalPointsResult,
    _h0_scale,
    _jg_gd,
    fit_index_energy,
)
from curvscope.experiments.paper001_critical_nets import (
    PaperLoss,
    batched_hessians,
    batched_loss,
    build_net,
    draw_run,
    flat_to_state,
)
from curvscope.experiments.registry import VERDICTS
from curvscope.training import grad_norm_descent, gradient_descent
from curvscope.training.critical_ensemble import (
    ensemble_grad_norm_descent,
    ensemble_gradient_descent,
    ensemble_hessians,
)

_TINY = [
    "n=3",
    "phis=0.5,0.75",
    "runs_per_phi=24",
    "chunk=16",
    "max_gd_steps=300",
    "jg_max_steps=40",
    "fit_alpha_max=0.5",
    "min_runs_per_index=2",
]


@pytest.fixture(scope="module")
def tiny() -> CriticalPointsResult:
    study = get_study("critical-points")
    return study.run(study.config("laptop", overrides=_TINY))


def _oracle_hessian(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Reverse-over-reverse Hessian of the paper's loss in the module's parameter order."""
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in net.named_parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(flat, [math.prod(s) for s in shapes])
        params = {k: c.view(s) for k, c, s in zip(names, chunks, shapes, strict=True)}
        return PaperLoss()(functional_call(net, params, (x,)), y)

    return hessian(loss, theta)


def _runs(n: int, m: int, seeds: list[int], scale: float = 1.0):
    draws = [draw_run(s, n, m) for s in seeds]
    x = torch.stack([d[0] for d in draws])
    y = torch.stack([d[1] for d in draws])
    theta = torch.stack([d[2] for d in draws]) * scale
    u = torch.tensor([d[3] for d in draws], dtype=torch.float64)
    return x, y, theta, u


def test_closed_form_hessian_equals_reverse_over_reverse_oracle():
    n, m = 3, 7
    x, y, theta, _ = _runs(n, m, [1, 2, 3], scale=2.5)  # large weights: tanh far from linear
    mine = batched_hessians(theta, x, y)
    autodiff = ensemble_hessians(lambda t: batched_loss(t, x, y), theta)
    for r in range(3):
        net = build_net(n)
        net.load_state_dict(flat_to_state(theta[r], n))
        ref = _oracle_hessian(net, x[r], y[r])
        scale = float(ref.abs().max())
        assert torch.allclose(mine[r], ref, rtol=0, atol=1e-12 * scale)
        assert torch.allclose(autodiff[r], ref, rtol=0, atol=1e-12 * scale)
        # H0 = J^T J / m: its trace / P is the reported MP scale s
        jac = jacobian(lambda t, r=r: batched_loss_free_outputs(t, x[r], n), theta[r])
        tr_h0 = float((jac**2).sum()) / m
        assert math.isclose(
            float(_h0_scale(theta[r : r + 1], x[r : r + 1], n)), tr_h0 / (2 * n * n), rel_tol=1e-12
        )


def batched_loss_free_outputs(theta: torch.Tensor, x: torch.Tensor, n: int) -> torch.Tensor:
    net = build_net(n)
    params = {"0.weight": theta[: n * n].view(n, n), "2.weight": theta[n * n :].view(n, n)}
    return functional_call(net, params, (x,)).reshape(-1)


def test_loss_convention_mse_is_twice_the_energy():
    n, m = 4, 9
    x, y, theta, _ = _runs(n, m, [5])
    net = build_net(n)
    net.load_state_dict(flat_to_state(theta[0], n))
    with torch.no_grad():
        paper = float(PaperLoss()(net(x[0]), y[0]))
        mse = float(torch.nn.MSELoss()(net(x[0]), y[0]))
    eps = paper / n
    assert math.isclose(mse, 2 * eps, rel_tol=1e-13)
    assert math.isclose(float(batched_loss(theta, x, y)[0]), paper, rel_tol=1e-13)


def test_draw_run_is_seeded_standard_normal():
    a = draw_run(11, 16, 2000)
    b = draw_run(11, 16, 2000)
    assert all(torch.equal(p, q) for p, q in zip(a[:3], b[:3], strict=True)) and a[3] == b[3]
    assert abs(float(a[0].mean())) < 0.02 and abs(float(a[0].std()) - 1) < 0.02
    assert abs(float(a[2].std()) * 4 - 1) < 0.1 and 0 < a[3] < 1


def test_ensemble_equals_a_loop_of_single_runs():
    n, m = 3, 8
    seeds = [0, 1, 2, 3]
    x, y, theta, u = _runs(n, m, seeds)
    loss0 = batched_loss(theta, x, y)

    def loss_fn(th, idx):
        return batched_loss(th, x[idx], y[idx])

    gd = ensemble_gradient_descent(loss_fn, theta, lr=0.3, max_steps=300, loss_tol=u * loss0)
    lm = ensemble_grad_norm_descent(loss_fn, gd.theta, tol=1e-10, max_steps=40)
    for r in range(len(seeds)):
        net = build_net(n)
        net.load_state_dict(flat_to_state(theta[r], n))
        single = gradient_descent(
            net, PaperLoss(), x[r], y[r], lr=0.3, max_steps=300, loss_tol=float(u[r] * loss0[r])
        )
        assert single.steps == int(gd.steps[r])
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert torch.allclose(flat, gd.theta[r], rtol=0, atol=1e-12)
        d = grad_norm_descent(net, PaperLoss(), x[r], y[r], tol=1e-10, max_steps=40)
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert d.steps == int(lm.steps[r])
        assert torch.allclose(flat, lm.theta[r], rtol=0, atol=1e-9)
        assert (d.stop_reason == "grad_tol") == (int(lm.stop[r]) == 0)


def test_jg_descent_reaches_the_threshold_with_the_exact_index(tiny):
    threshold = tiny.config["jg_threshold"]
    for runs in tiny.runs:
        assert runs.num_kept >= len(runs.seeds) // 2
        assert np.all(runs.jg[runs.kept] < threshold)
        assert np.all(runs.index[~runs.kept] == -1)
        # the per-index table and the fits come from the kept runs
        assert runs.counts.sum() == runs.num_kept
        for k, mean in zip(runs.index_values, runs.mean_eps, strict=True):
            assert math.isclose(mean, runs.eps[runs.kept & (runs.index == k)].mean())


def test_a_saved_run_rebuilds_and_its_index_is_the_oracle_spectrum(tiny, tmp_path):
    back = CriticalPointsResult.load(tiny.save(tmp_path / "result"))
    tol = back.config["zero_tol"]
    for i, runs in enumerate(back.runs):
        kept = np.flatnonzero(runs.kept)
        # the saddle of highest index and one minimum (or the lowest index) of this phi
        picks = {int(kept[np.argmax(runs.index[kept])]), int(kept[np.argmin(runs.index[kept])])}
        for r in picks:
            x, y = back.rebuild_data(i, r)
            net = back.rebuild_model(i, r)
            assert x.shape == (runs.m, back.n)
            lam = np.linalg.eigvalsh(_oracle_hessian(net, x, y).numpy())
            top = np.abs(lam).max()
            assert int((lam < -tol * top).sum()) == runs.index[r]
            assert int((np.abs(lam) <= tol * top).sum()) == runs.num_zero[r]
            with torch.no_grad():
                eps = float(PaperLoss()(net(x), y)) / back.n
            assert math.isclose(eps, runs.eps[r], rel_tol=1e-12)
            grads = torch.autograd.grad(PaperLoss()(net(x), y), list(net.parameters()))
            assert sum(float((g**2).sum()) for g in grads) < back.config["jg_threshold"]


def test_claims_and_summary_come_from_the_result(tiny):
    study = get_study("critical-points")
    claims = study.claims(tiny)
    assert len(claims) == 4 and all(c.verdict in VERDICTS for c in claims)
    summary = json.loads(json.dumps(tiny.summary(), allow_nan=False))
    for runs in tiny.runs:
        entry = summary["phis"][f"{runs.phi:.4g}"]
        assert entry["kept"] == runs.num_kept
        assert entry["tanh_empirical"] == pytest.approx((1 - runs.phi) ** 2 / 2)


@pytest.mark.parametrize("beta", [1.5, 1.2])
def test_fits_recover_planted_parameters(beta):
    rng = np.random.default_rng(3)
    alpha = np.arange(0, 40) / 512
    eps_c, alpha0, sem = 0.12, 1.7, 1e-3
    eps = eps_c + (alpha / alpha0) ** (1 / beta) + rng.normal(0, sem, alpha.size)
    free = fit_index_energy(alpha, eps, np.full(alpha.size, sem), exponent_free=True)
    assert free.ok and free.dof == alpha.size - 3
    assert abs(free.beta - beta) < 4 * free.beta_err
    assert abs(free.eps_c - eps_c) < 4 * free.eps_c_err
    assert abs(free.alpha0 - alpha0) < 4 * free.alpha0_err
    fixed = fit_index_energy(alpha, eps, np.full(alpha.size, sem), exponent_free=False)
    if beta == 1.5:
        assert abs(fixed.eps_c - eps_c) < 4 * fixed.eps_c_err and fixed.beta == 1.5
        assert fixed.chi2 / fixed.dof < 2
    else:  # a wrong fixed exponent shows in chi^2
        assert fixed.chi2 / fixed.dof > 2
    assert not fit_index_energy(alpha[:3], eps[:3], np.ones(3), exponent_free=True).ok


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ("phis=0.5,1.5", "phis must be values in"),
        ("runs_per_phi=0", "runs_per_phi"),
        ("zero_tol=-1", "zero_tol must be"),
        ("jg_method=adam", "jg_method must be one of"),
    ],
)
def test_bad_config_is_refused(setting, match):
    study = get_study("critical-points")
    with pytest.raises(InputError, match=match):
        study.run(study.config("laptop", overrides=[setting]))


def test_paper_gd_on_jg_lowers_jg():
    n, m = 3, 8
    x, y, theta, _ = _runs(n, m, [4, 5, 6])

    def loss_fn(th, idx):
        return batched_loss(th, x[idx], y[idx])

    def jg(th):
        th = th.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(batched_loss(th, x, y).sum(), th)
        return (g**2).sum(1)

    out, steps, stop = _jg_gd(loss_fn, theta, lr=0.01, tol=1e-30, max_steps=300)
    assert torch.all(steps == 300) and torch.all(stop == 1)
    assert torch.all(jg(out) < 0.5 * jg(theta))
    # one step is theta - lr * grad J_g, grad J_g = 2 H grad L (dense oracle)
    one, _, _ = _jg_gd(loss_fn, theta, lr=0.01, tol=1e-30, max_steps=1)
    th = theta.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(batched_loss(th, x, y).sum(), th)
    step = 2 * (batched_hessians(theta, x, y) @ g.unsqueeze(2)).squeeze(2)
    assert torch.allclose(one, theta - 0.01 * step, rtol=0, atol=1e-13)


def test_cli_tiny_run_writes_the_report(tmp_path):
    out = tmp_path / "critical"
    args = ["experiment", "run", "critical-points", "--preset", "laptop", "--out", str(out)]
    for s in ["n=2", "phis=0.5", "runs_per_phi=12", "max_gd_steps=200", "jg_max_steps=20"]:
        args += ["--set", s]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text()
    assert "Index vs energy" in page and "Paper vs ours" in page and "<img" in page
