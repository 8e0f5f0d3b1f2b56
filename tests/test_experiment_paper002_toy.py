"""The paper-002 toy models (modules paper002_toy_models and paper002_toy): analytic gradients,
Hessians and curvatures against autodiff of the toy losses, the predicted constants against an
independent computation, vectorised chains against single chains with the same seeds, the
study's numbers and verdicts recomputed from its result, bad configs, and a CLI run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.autograd.functional import hessian, jacobian

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_toy import (
    ToyModelsConfig,
    ToyModelsResult,
    rate_verdicts,
    run_toy_models,
    sign_verdict,
    theta2_verdict,
)
from curvscope.experiments.paper002_toy_models import (
    TOY_MODELS,
    chain_generators,
    predicted_drift,
    simulate_chains,
    stationary_theta_sq,
    toy_c_model,
)
from curvscope.plots.paper002_toy import toy_models_figures

#: A tiny config: seconds, still many chains.
TINY = [
    "a_etas=0.005,0.01,0.02",
    "a_chains=300",
    "a_burn_in=200",
    "a_steps=300",
    "b_chains=600",
    "b_steps=200",
    "c_chains=16",
    "c_burn_in=2000",
    "c_steps=2000",
    "c_record_every=500",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as ``curvscope experiment run`` uses (4x4 autodiff Hessians are tiny)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _points(model_name: str, count: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    dim = TOY_MODELS[model_name].dim
    pts = rng.normal(size=(count, dim))
    if model_name == "a":  # away from the kinks of |.|
        pts[:, 2:] = rng.uniform(0.5, 2.0, size=(count, 2)) * rng.choice([-1, 1], (count, 1))
    return pts


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_analytic_gradient_and_hessian_equal_autodiff(name):
    model = TOY_MODELS[name]
    pts = _points(name)
    grads, hess = model.grad(pts), model.hessian(pts)
    for i, p in enumerate(pts):
        t = torch.tensor(p, dtype=torch.float64)
        ref_h = hessian(model.loss_torch, t).numpy()
        ref_g = jacobian(model.loss_torch, t).numpy()
        np.testing.assert_allclose(hess[i], ref_h, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grads[i], ref_g, rtol=1e-12, atol=1e-12)


def _autodiff_lam(model, thetahat: torch.Tensor) -> torch.Tensor:
    """λ_i = ∂²L/∂θ_i² on the valley floor (θ_i = 0 for i ≤ n), by reverse-over-reverse."""
    n = model.n
    full = torch.cat([torch.zeros(n, dtype=torch.float64), thetahat])
    h = hessian(model.loss_torch, full, create_graph=True)
    return torch.diagonal(h)[:n]


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_curvatures_and_their_gradients_equal_autodiff(name):
    model = TOY_MODELS[name]
    for p in _points(name, 3):
        hat = torch.tensor(p[model.n :], dtype=torch.float64)
        ref_lam = _autodiff_lam(model, hat).detach().numpy()
        ref_grad = jacobian(lambda h: _autodiff_lam(model, h), hat).numpy()  # (n, dim - n)
        np.testing.assert_allclose(model.lam(p[None])[0], ref_lam, rtol=1e-12)
        np.testing.assert_allclose(model.grad_lam(p[None])[0], ref_grad, rtol=1e-11, atol=1e-12)


def test_predicted_constants_match_an_independent_computation():
    model = TOY_MODELS["a"]
    hat = torch.tensor([2.0, 2.0], dtype=torch.float64)
    grad_t = jacobian(lambda h: _autodiff_lam(model, h).sum(), hat)
    assert float(grad_t @ grad_t) == pytest.approx(52.0, rel=1e-12)  # spec §3.8: ‖∇̂T‖² = 52
    # leading order of predicted_drift: -(η²κ/4)‖∇̂T‖² = -13 η²κ as η -> 0
    theta = np.array([[0.0, 0.0, 2.0, 2.0]])
    eta = 1e-7
    d_t, _ = predicted_drift(model, theta, eta=eta, noise="aligned", scale=0.5)
    assert d_t[0] / eta**2 == pytest.approx(-13 * 0.5, rel=1e-5)
    # eta-exact: -(η/2) Σ_j ηκ/(2 - ηλ_j) ∇̂T·∇̂λ_j with ∇̂T·∇̂λ = (20, 32) and λ = (8, 12)
    eta, kappa = 0.02, 1.0
    d_t, _ = predicted_drift(model, theta, eta=eta, noise="aligned", scale=kappa)
    want = -(eta / 2) * (20 * eta * kappa / (2 - 8 * eta) + 32 * eta * kappa / (2 - 12 * eta))
    assert d_t[0] == pytest.approx(want, rel=1e-12)
    # model (b), isotropic: the drift from the spec's hand-written gradients (check_theory.py)
    b = TOY_MODELS["b"]
    th = np.array([[0.0, 0.0, 0.5, -0.5]])
    x, y = 0.5, -0.5
    r2e, dd = math.exp(-(x * x + y * y)), x - y
    l1, l2 = 8 - 4 * r2e, 2 * math.exp(-dd * dd)
    gl1 = np.array([8 * r2e * x, 8 * r2e * y])
    gl2 = np.array([-4 * dd * math.exp(-dd * dd), 4 * dd * math.exp(-dd * dd)])
    s1, s2 = 0.01 / (l1 * (2 - 0.01 * l1)), 0.01 / (l2 * (2 - 0.01 * l2))
    drift = -(0.01 / 2) * (s1 * gl1 + s2 * gl2)
    d_t, d_d = predicted_drift(b, th, eta=0.01, noise="isotropic", scale=1.0)
    assert d_t[0] == pytest.approx((gl1 + gl2) @ drift, rel=1e-12)
    assert d_d[0] == pytest.approx((gl1 / l1 + gl2 / l2) @ drift, rel=1e-12)
    # stationary variance of the AR(1) step θ' = (1 - ηλ)θ - η√C z: η²C / (1 - (1 - ηλ)²)
    assert stationary_theta_sq(np.array([3.0]), 0.1, np.array([2.0]))[0] == pytest.approx(
        0.01 * 2.0 / (1 - 0.7**2), rel=1e-12
    )


@pytest.mark.parametrize(
    ("name", "noise"), [("a", "aligned"), ("b", "isotropic"), ("b", "none"), ("c", "aligned")]
)
def test_vectorised_chains_equal_single_chains_with_the_same_seeds(name, noise):
    model = TOY_MODELS[name]
    R, steps = 5, 130
    start = _points(name, R) * 0.1
    if name == "a":
        start[:, 2:] = 2.0
    kwargs = dict(eta=0.01, noise=noise, scale=0.7, steps=steps, record_every=40, block=32,
                  observe=lambda th: model.lam(th), accumulate=lambda th: th[:, :1] ** 2,
                  accumulate_from=50)  # fmt: skip
    together = simulate_chains(model, start, chain_generators(4, 9, R), **kwargs)
    for r in range(R):
        alone = simulate_chains(
            model, start[r : r + 1], [np.random.default_rng([4, 9, r])], **kwargs
        )
        np.testing.assert_allclose(alone.theta[0], together.theta[r], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(alone.records[:, 0], together.records[:, r], rtol=1e-12)
        np.testing.assert_allclose(alone.accumulated[0], together.accumulated[r], rtol=1e-12)
    np.testing.assert_array_equal(together.record_steps, [0, 40, 80, 120, 130])


def test_noise_has_the_designed_covariance():
    """One step from θ1 = θ2 = 0 on model (b): the update's covariance is η²C, C = κλ or c."""
    model = TOY_MODELS["b"]
    R = 8000
    start = np.zeros((R, 4))
    start[:, 2:] = (0.5, -0.5)
    lam = model.lam(start[:1])[0]
    for noise, cov in (("aligned", 0.3 * lam), ("isotropic", np.array([0.3, 0.3]))):
        run = simulate_chains(model, start, chain_generators(1, 2, R), eta=0.1, noise=noise,
                              scale=0.3, steps=1)  # fmt: skip
        var = run.theta[:, :2].var(axis=0) / 0.1**2
        np.testing.assert_allclose(var, cov, rtol=4 * math.sqrt(2 / R))
        np.testing.assert_array_equal(run.theta[:, 2:], start[:, 2:])  # no noise on θ̂


@pytest.fixture(scope="module")
def tiny() -> ToyModelsResult:
    study = get_study("noise-toy-models")
    return study.run(study.config("laptop", overrides=TINY))


def test_numbers_and_verdicts_come_from_the_result(tiny, tmp_path):
    a, b, c = tiny.trace_rate, tiny.signs, tiny.theta2
    assert a.leading == pytest.approx(-13.0)
    assert a.rate.shape == (3,) and np.all(a.rate_se > 0)
    # stationary <θ_i²>(2 - ηλ_i)/(ηκ) = 1 after burn-in (spec §3.4), within Monte-Carlo error
    np.testing.assert_allclose(a.theta_sq_ratio, 1.0, atol=0.05)
    assert np.all(a.branch_left == 0)
    # the measured rate agrees with the eta-exact prediction within 4 SE even at this size
    assert np.all(np.abs(a.rate - a.exact) <= 4 * a.diff_se)
    assert c.predicted == pytest.approx(-0.02)
    assert c.gd_slope == pytest.approx(-c.eta * c.alpha, rel=1e-3)
    sig = tiny.config["sigmas"]
    study = get_study("noise-toy-models")
    claims = study.claims(tiny)
    lead, exact = rate_verdicts(a, sig)
    assert [cl.verdict for cl in claims[:4]] == [
        lead,
        exact,
        sign_verdict(b, sig),
        theta2_verdict(c, sig),
    ]
    # the four signs hold already at this size
    assert b.d_trace[0] < 0 < b.d_logdet[0] and b.d_logdet[1] < 0 < b.d_trace[1]
    assert study.sections(tiny)
    assert set(toy_models_figures(tiny)) == {"trace_rate", "signs", "theta2"}
    back = ToyModelsResult.load(tiny.save(tmp_path / "r"))
    np.testing.assert_array_equal(back.trace_rate.rate, a.rate)
    assert back.theta2.mean == c.mean


def test_the_run_is_reproducible_from_its_config(tiny):
    again = run_toy_models(ToyModelsConfig.from_dict(tiny.config))
    np.testing.assert_array_equal(again.trace_rate.rate, tiny.trace_rate.rate)
    np.testing.assert_array_equal(again.signs.d_logdet, tiny.signs.d_logdet)
    assert again.theta2.mean == tiny.theta2.mean


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("a_chains=1", "a_chains=1"),
        ("a_etas=0.01,0.02", "at least 3 step sizes"),
        ("a_etas=0.01,0.02,0.5", r"in \(0, 0.25\)"),
        ("a_start=-1,0", "θ3 \\+ θ4 > 0"),
        ("kappa=0", "kappa must be > 0"),
        ("c_burn_in=-1", "burn-in must be >= 0"),
    ],
)
def test_bad_config_is_an_input_error(override, match):
    with pytest.raises(InputError, match=match):
        get_study("noise-toy-models").config("laptop", overrides=[override])


def test_simulator_refuses_bad_inputs():
    model = toy_c_model(1e-4)
    gens = chain_generators(0, 0, 2)
    with pytest.raises(InputError, match=r"shape \(chains, 2\) = \(2, 2\)"):
        simulate_chains(model, np.zeros((3, 2)), gens, eta=0.1, noise="aligned", scale=1.0,
                        steps=1)  # fmt: skip
    with pytest.raises(InputError, match="noise must be one of"):
        simulate_chains(model, np.zeros((2, 2)), gens, eta=0.1, noise="pink", scale=1.0,
                        steps=1)  # fmt: skip


def test_cli_run_writes_the_report(tmp_path):
    args = ["experiment", "run", "noise-toy-models", "--preset", "laptop", "--out",
            str(tmp_path / "o")]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    page = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "Paper vs ours" in page
