"""The paper-002 study ``noise-designed`` (module paper002_designed): the network rebuilt from a
saved result against an independent dense float64 reverse-over-reverse Hessian, the noisy step
against an independent construction, the toy subspace noise (vectorised = single chains, the
designed covariance), verdicts recomputed from the result, bad configs and a CLI run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from oracles import Case, dense_hessian
from torch import nn

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper002_designed import (
    ARMS,
    DesignedNetResult,
    DesignedNoiseConfig,
    DesignedNoiseResult,
    net_changes,
    net_seed_changes,
    run_designed_net,
    simulate_subspace_noise,
)
from curvscope.experiments.paper002_toy_models import TOY_MODELS, chain_generators
from curvscope.plots.paper002_designed import designed_figures

TINY = [
    "toy_chains=40",
    "toy_burn_in=20",
    "toy_steps=30",
    "hidden=2",
    "data_options.per_class=3",
    "pretrain_steps=300",
    "burn_in=4",
    "steps=6",
    "refresh=2",
    "k=3",
    "seeds=0,1",
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as ``curvscope experiment run`` uses: these nets are tiny, and on a
    shared machine intra-op threads only wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny() -> DesignedNoiseResult:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        study = get_study("noise-designed")
        return study.run(study.config("laptop", overrides=TINY))
    finally:
        torch.set_num_threads(before)


def _dense(result: DesignedNetResult, arm: str, seed_index: int, point: int) -> np.ndarray:
    """Reverse-over-reverse float64 Hessian (tests/oracles.py) of the rebuilt net."""
    net = result.rebuild_model(arm, seed_index, point)
    x, y = result.rebuild_data()
    return dense_hessian(Case(net, result.loss_fn(), x, y)).numpy()


@pytest.mark.parametrize(("arm", "seed_index", "point"), [("gd", 0, 0), ("isotropic", 1, -1)])
def test_reported_eigenvalues_equal_a_dense_reference_of_the_rebuilt_net(
    tiny, tmp_path, arm, seed_index, point
):  # the saved result alone rebuilds the network and its data
    back = DesignedNoiseResult.load(tiny.save(tmp_path / "r"))
    x, y = back.net.rebuild_data()
    assert x.dtype == torch.float64 and len(y) == 30
    dense = _dense(back.net, arm, seed_index, point)
    reference = np.linalg.eigvalsh(dense)[::-1][: back.net.k]
    got = back.net.eigenvalues(arm, seed_index, point)
    np.testing.assert_allclose(got, reference, rtol=1e-8, atol=1e-10 * abs(reference[0]))


def test_a_noisy_step_is_gd_plus_noise_in_the_top_k_subspace(tmp_path):
    """Step 0 -> 1 of the SGD-like arm: θ1 − (θ0 − η∇L) = −η U diag(√(κλ)) z, U the dense
    top-k eigenvectors (signs free), z the seed's first k normals."""
    study = get_study("noise-designed")
    config = study.config("laptop", overrides=[*TINY, "burn_in=0", "steps=1", "refresh=1"])
    n = run_designed_net(config)
    theta0, theta1 = n.weights("sgd-like", 1, 0), n.weights("sgd-like", 1, 1)
    net = n.rebuild_model("sgd-like", 1, 0)
    x, y = n.rebuild_data()
    grads = torch.autograd.grad(n.loss_fn()(net(x), y), list(net.parameters()))
    gd_step = theta0 - n.eta * torch.cat([g.reshape(-1) for g in grads]).numpy()
    np.testing.assert_allclose(n.weights("gd", 0, 1), gd_step, rtol=1e-12, atol=1e-14)
    values, vectors = np.linalg.eigh(_dense(n, "sgd-like", 1, 0))
    top, u = values[::-1][: n.k], vectors[:, ::-1][:, : n.k]
    noise = (gd_step - theta1) / n.eta  # = U diag(√c) z
    coords = u.T @ noise
    np.testing.assert_allclose(u @ coords, noise, atol=1e-9 * np.abs(noise).max())
    z = torch.randn(n.k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    np.testing.assert_allclose(np.abs(coords), np.sqrt(n.kappa * top) * np.abs(z.numpy()),
                               rtol=1e-7)  # fmt: skip


def test_toy_subspace_noise_vectorised_equals_single_chains():
    model = TOY_MODELS["b"]
    R = 4
    start = np.zeros((R, 4))
    start[:, 2:] = (0.5, -0.5)
    kw = dict(eta=0.01, arm="sgd-like", kappa=1.0, iso_scale=1.0, k=2, steps=25, record_every=5)
    _, together, last = simulate_subspace_noise(model, start, chain_generators(2, 3, R), **kw)
    for r in range(R):
        _, alone, one = simulate_subspace_noise(
            model, start[r : r + 1], [np.random.default_rng([2, 3, r])], **kw
        )
        np.testing.assert_allclose(alone[:, 0], together[:, r], rtol=1e-12)
        np.testing.assert_allclose(one[0], last[r], rtol=1e-12, atol=1e-15)


def test_toy_subspace_noise_has_the_designed_covariance():
    """From the minimum of toy (b) (H = diag(λ1, λ2, 0, 0)) one step's noise is η²C in (θ1,
    θ2) with C = κλ (SGD-like) or c (isotropic), and none in (θ3, θ4)."""
    model = TOY_MODELS["b"]
    R = 6000
    start = np.zeros((R, 4))
    start[:, 2:] = (0.5, -0.5)
    lam = model.lam(start[:1])[0]
    for arm, cov in (("sgd-like", 0.5 * lam), ("isotropic", np.array([2.0, 2.0]))):
        _, _, last = simulate_subspace_noise(
            model, start, chain_generators(5, 6, R), eta=0.1, arm=arm, kappa=0.5,
            iso_scale=2.0, k=2, steps=1, record_every=1,
        )  # fmt: skip
        var = (last[:, :2] ** 2).mean(0) / 0.1**2
        np.testing.assert_allclose(var, cov, rtol=4 * math.sqrt(2 / R))
        np.testing.assert_allclose(last[:, 2:], start[:, 2:], atol=1e-15)


def test_numbers_and_verdicts_come_from_the_result(tiny):
    study = get_study("noise-designed")
    claims = study.claims(tiny)
    assert len(claims) == 6
    sig = tiny.config["sigmas"]
    t = tiny.toy
    b = t.burn_in // tiny.config["toy_record_every"]
    np.testing.assert_allclose(t.d_trace, t.trace[:, -1] - t.trace[:, b], rtol=1e-10, atol=1e-14)
    dt, dd = net_changes(tiny.net)
    n = tiny.net
    b = n.burn_in // n.refresh
    want = n.noisy_eigs[0, :, -1].sum(-1) - n.noisy_eigs[0, :, b].sum(-1)
    assert dt.mean[1] == pytest.approx(want.mean())

    def verdict(diff: float, se: float) -> str:
        return "agrees" if diff <= -sig * se else ("disagrees" if diff >= sig * se else "partly")

    for claim, (change, j) in zip(claims[3:5], ((dt, 1), (dd, 2))):
        diff = change.mean[j] - change.mean[0]
        assert claim.verdict == verdict(diff, math.hypot(change.se[j], change.se[0]))
    seed_t, seed_d = net_seed_changes(n)  # paired by seed
    pair = (
        verdict(dt.mean[1] - dt.mean[2], (seed_t[0] - seed_t[1]).std(ddof=1) / math.sqrt(2)),
        verdict(dd.mean[2] - dd.mean[1], (seed_d[1] - seed_d[0]).std(ddof=1) / math.sqrt(2)),
    )
    want = (
        "agrees"
        if pair == ("agrees", "agrees")
        else ("disagrees" if "disagrees" in pair else "partly")
    )
    assert claims[5].verdict == want
    assert n.record_steps[-1] == n.burn_in + 6 and n.noisy_weights.shape[:3] == (2, 2, 6)
    assert n.eig_residual_max < 1e-6
    assert study.sections(tiny)
    assert set(designed_figures(tiny)) == {"toy", "net"}
    assert ARMS == ("gd", "sgd-like", "isotropic")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("seeds=3", "at least two distinct noise seeds"),
        ("steps=7", "multiples of refresh"),
        ("kappa=0", "kappa must be > 0"),
        ("iso_scale=-1", "iso_scale must be >= 0"),
        ("label_smoothing=1", r"label_smoothing must be in \[0, 1\)"),
        ("toy_burn_in=15", "multiples of toy_record_every"),
    ],
)
def test_bad_config_is_an_input_error(override, match):
    with pytest.raises(InputError, match=match):
        get_study("noise-designed").config("laptop", overrides=[override])


def test_a_network_too_large_for_a_dense_check_is_refused():
    config = DesignedNoiseConfig().with_overrides(["hidden=100", "max_dense_params=1000"])
    with pytest.raises(InputError, match=r"P = 7,510 .* max_dense_params"):
        get_study("noise-designed").run(config)


def test_cli_run_writes_the_report(tmp_path):
    args = ["experiment", "run", "noise-designed", "--preset", "laptop", "--out",
            str(tmp_path / "o")]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    page = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page and "Paper vs ours" in page


def test_loss_is_label_smoothed_cross_entropy(tiny):
    loss = tiny.net.loss_fn()
    assert isinstance(loss, nn.CrossEntropyLoss) and loss.label_smoothing == 0.1
