"""The ``small-nets-init-fluctuation`` study (paper 003 fig. 8): ensemble members equal single
runs, λ_max equals eigh of an independent dense Hessian of the rebuilt member, the claim
verdict recomputes from the (saved) result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from curvscope.experiments import get_study
from curvscope.experiments.paper003_blobs import blobs_net, blobs_num_params
from curvscope.experiments.paper003_fluctuation import (
    FluctuationResult,
    claims,
    run_fluctuation_study,
)
from curvscope.plots.registry import figures_for

SMALL = ["members=4", "max_steps=150", "grad_tol=0.06", "num_samples=60", "first_seed=7", "chunk=3"]


@pytest.fixture(scope="module")
def result() -> FluctuationResult:
    torch.set_num_threads(1)
    config = get_study("small-nets-init-fluctuation").config("laptop", overrides=SMALL)
    return run_fluctuation_study(config)


def test_members_equal_single_runs(result: FluctuationResult) -> None:
    """Each member == gradient_descent of its own init to the same gradient target and cap:
    the same steps and weights (a member that stops is frozen while the others go on)."""
    from curvscope.training import gradient_descent

    x, y = result.rebuild_data()
    c = result.config
    assert result.num_params == blobs_num_params(6) == 74
    assert result.training_path == "stacked"
    reasons = []
    for r, seed in enumerate(result.seeds):
        net = blobs_net(result.width, seed=seed, radius=result.radius)
        start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert abs(float(start.norm()) - result.radius) < 1e-12
        d = gradient_descent(net, nn.CrossEntropyLoss(), x, y, lr=c["lr"],
                             max_steps=c["max_steps"], grad_tol=c["grad_tol"])  # fmt: skip
        assert int(result.steps[r]) == d.steps
        assert abs(result.grad_norm[r] - d.grad_norm) <= 1e-10 * d.grad_norm
        reasons.append(d.stop_reason)
        single = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy()
        np.testing.assert_allclose(result.weights[r], single, atol=1e-12, rtol=0)
        rebuilt = result.rebuild_initial(r)
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                rebuilt.parameters(), blobs_net(6, seed=seed, radius=result.radius).parameters()
            )
        )
    assert set(reasons) == {"grad_tol", "max_steps"}  # the case exercises both stops
    assert result.summary()["converged"] == reasons.count("grad_tol")
    assert list(result.converged()) == [x == "grad_tol" for x in reasons]


def _reference_top(result: FluctuationResult, r: int) -> float:
    """eigh of torch.autograd.functional.hessian (reverse-over-reverse) of the rebuilt member."""
    net = result.rebuild_member(r)
    x, y = result.rebuild_data()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in net.named_parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        params = {n: c.view(s) for n, c, s in zip(names, parts, shapes)}
        return nn.CrossEntropyLoss()(functional_call(net, params, (x,)), y)

    dense = torch.autograd.functional.hessian(loss, theta, vectorize=False).numpy()
    assert dense.dtype == np.float64 and dense.shape == (74, 74)
    return float(np.linalg.eigh((dense + dense.T) / 2)[0][-1])


def test_lambda_max_equals_independent_dense_hessian(result: FluctuationResult, tmp_path) -> None:
    back = FluctuationResult.load(result.save(tmp_path / "r"))
    for r in (0, 3):
        want = _reference_top(back, r)
        assert abs(back.lambda_max[r] - want) <= 1e-10 * abs(want)


def test_claim_verdict_recomputes_from_result(result: FluctuationResult, tmp_path) -> None:
    back = FluctuationResult.load(result.save(tmp_path / "r"))
    (claim,) = claims(back)
    lam = np.asarray(back.lambda_max)
    cv = lam.std() / lam.mean()
    tol = back.config["cv_agree"]
    want = "agrees" if cv <= tol else ("partly" if cv <= 2 * tol else "disagrees")
    assert claim.verdict == want
    assert f"CV {cv:.3f}" in claim.ours
    assert back.summary()["members"] == 4
    assert "histogram" in figures_for("small-nets-init-fluctuation", back)
    # the verdict follows the stated rule on either side of the threshold
    for factor, verdict in ((1.01, "agrees"), (0.51, "partly"), (0.49, "disagrees")):
        config = {**back.config, "cv_agree": cv * factor}
        forged = FluctuationResult(**{**back.__dict__, "config": config})
        assert claims(forged)[0].verdict == verdict


def test_presets() -> None:
    study = get_study("small-nets-init-fluctuation")
    assert study.config("laptop").members == 1000
    assert study.config("paper").members == 5000


def test_a_result_of_the_fixed_step_version_still_renders(result: FluctuationResult) -> None:
    """Results saved before grad_tol (config "steps", no per-member steps) load and render."""
    config = {k: v for k, v in result.config.items() if k not in ("grad_tol", "max_steps")}
    old = FluctuationResult(
        **{**result.__dict__, "config": {**config, "steps": 150}, "steps": None}
    )
    assert get_study("small-nets-init-fluctuation").sections(old)
    assert old.summary()["converged"] == 0 and old.summary()["steps_quantiles"] == {}
