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

SMALL = ["members=4", "steps=150", "num_samples=60", "first_seed=7", "chunk=3"]


@pytest.fixture(scope="module")
def result() -> FluctuationResult:
    torch.set_num_threads(1)
    config = get_study("small-nets-init-fluctuation").config("laptop", overrides=SMALL)
    return run_fluctuation_study(config)


def test_members_equal_single_runs(result: FluctuationResult) -> None:
    x, y = result.rebuild_data()
    c = result.config
    assert result.num_params == blobs_num_params(6) == 74
    assert result.training_path == "stacked"
    for r, seed in enumerate(result.seeds):
        net = blobs_net(result.width, seed=seed, radius=result.radius)
        start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert abs(float(start.norm()) - result.radius) < 1e-12
        opt = torch.optim.SGD(net.parameters(), lr=c["lr"])
        for _ in range(c["steps"]):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        single = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy()
        np.testing.assert_allclose(result.weights[r], single, atol=1e-12, rtol=0)
        rebuilt = result.rebuild_initial(r)
        assert all(
            torch.equal(a, b)
            for a, b in zip(
                rebuilt.parameters(), blobs_net(6, seed=seed, radius=result.radius).parameters()
            )
        )


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
