"""The ``small-nets-blobs`` study (paper 003 §3): spectra against an independent dense Hessian
of the rebuilt network on the rebuilt data, the GD stop, the claims from the result, timing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.func import functional_call

from curvscope.experiments import get_study
from curvscope.experiments.paper003_blobs import (
    BlobsResult,
    blobs_num_params,
    claims,
    outliers,
    run_blobs_study,
    zero_fraction,
)
from curvscope.training import OneHotMSELoss

SMALL = [
    "widths=2,6",
    "num_samples=60",
    "max_steps=400",
    "trajectory_steps=20,30,40",
    "sweep_stds=0.5,1.5",
    "heatmap_params=18",
]


@pytest.fixture(scope="module")
def result() -> BlobsResult:
    torch.set_num_threads(1)
    config = get_study("small-nets-blobs").config("laptop", overrides=SMALL)
    return run_blobs_study(config)


def _reference_spectrum(run) -> np.ndarray:
    """eigh of torch.autograd.functional.hessian (reverse-over-reverse) of the rebuilt net."""
    net = run.rebuild_model()
    x, y = run.rebuild_data()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in net.named_parameters()])
    if run.loss == "nll":
        loss_fn, targets = torch.nn.CrossEntropyLoss(), y
    else:
        loss_fn, targets = torch.nn.MSELoss(), OneHotMSELoss(2).targets(y, torch.float64)

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        params = {n: c.view(s) for n, c, s in zip(names, parts, shapes)}
        return loss_fn(functional_call(net, params, (x,)), targets)

    dense = torch.autograd.functional.hessian(loss, theta, vectorize=False).numpy()
    assert dense.dtype == np.float64
    return np.linalg.eigh((dense + dense.T) / 2)[0]


@pytest.mark.parametrize("index", [1, 3])  # NLL P = 74 and MSE P = 74
def test_spectrum_equals_independent_dense_hessian(result: BlobsResult, index: int) -> None:
    run = result.runs[index]
    assert run.num_params == blobs_num_params(6) == 74
    want = _reference_spectrum(run)
    scale = np.abs(want).max()
    np.testing.assert_allclose(run.eigenvalues, want, atol=1e-10 * scale, rtol=0)


def test_saved_result_rebuilds_the_spectrum(result: BlobsResult, tmp_path) -> None:
    back = BlobsResult.load(result.save(tmp_path / "r"))
    run = back.sweep[-1]
    np.testing.assert_allclose(
        run.eigenvalues, _reference_spectrum(run), atol=1e-10 * np.abs(run.eigenvalues).max()
    )
    assert back.runs[0].hessian is not None and back.runs[0].hessian.shape == (18, 18)


def test_gradient_descent_stops_at_the_requested_gradient_norm() -> None:
    torch.set_num_threads(1)
    config = get_study("small-nets-blobs").config(
        overrides=[
            "widths=2",
            "losses=mse",
            "num_samples=60",
            "grad_tol=1e-3",
            "max_steps=50000",
            "trajectory_steps=",
            "sweep_stds=",
        ]
    )
    run = run_blobs_study(config).runs[0]
    assert run.stop_reason == "grad_tol" and run.grad_norm <= 1e-3
    net, (x, y) = run.rebuild_model(), run.rebuild_data()
    grads = torch.autograd.grad(run.rebuild_loss()(net(x), y), list(net.parameters()))
    norm = float(torch.sqrt(sum((g**2).sum() for g in grads)))
    assert norm == pytest.approx(run.grad_norm, rel=1e-9)
    assert norm <= 1e-3


def test_claims_are_recomputed_from_the_result(result: BlobsResult, tmp_path) -> None:
    back = BlobsResult.load(result.save(tmp_path / "r"))
    assert claims(back) == claims(result)
    rows = {c.claim.split(" ")[1]: c for c in claims(result)}
    c = result.config
    zf = [zero_fraction(p.eigenvalues, c["zero_tol"]) for p in result.trajectory]
    training = next(x for x in claims(result) if x.claim.startswith("Training"))
    want = "agrees" if all(b >= a for a, b in itertools.pairwise(zf)) and zf[-1] > zf[0] else None
    want = want or ("partly" if zf[-1] > zf[0] else "disagrees")
    assert training.verdict == want
    assert all(f"{f:.2f}" in training.ours for f in zf)
    top = np.array([[s.eigenvalues[-1], s.eigenvalues[-2]] for s in result.sweep])
    sweep = next(x for x in claims(result) if "std" in x.claim)
    grew = bool(np.all(top[-1] > top[0]))
    assert sweep.verdict in (("agrees", "partly") if grew else ("disagrees",))
    counts = [len(outliers(r.eigenvalues, c["outlier_tol"])) for r in result.runs]
    bulk = next(x for x in claims(result) if x.claim.startswith("After"))
    assert bulk.ours.endswith(", ".join(map(str, counts)))
    assert rows


def test_report_sections_and_figures(result: BlobsResult) -> None:
    from curvscope.plots.registry import figures_for

    study = get_study("small-nets-blobs")
    names = {b.name for s in study.sections(result) for b in s.blocks if hasattr(b, "name")}
    figures = figures_for("small-nets-blobs", result)
    assert names <= set(figures)
    assert {"spectra", "heatmaps", "trajectory", "sweep"} <= set(figures)
    assert len(result.summary()["grad_norm"]) == len(result.runs) + len(result.sweep)


def test_laptop_preset_with_small_budgets_runs_the_five_architectures() -> None:
    """The laptop preset's architectures at a small step budget (speed is measured in
    benchmarks, never asserted in tests)."""
    torch.set_num_threads(1)
    config = get_study("small-nets-blobs").config("laptop", overrides=["max_steps=200"])
    r = run_blobs_study(config)
    assert [run.num_params for run in r.runs[:5]] == [18, 74, 162, 282, 434]


@pytest.mark.parametrize("where", ["runs", "sweep"])
def test_padded_ensemble_run_equals_its_single_gradient_descent(result: BlobsResult, where) -> None:
    """The nets are trained together, zero-padded to the widest; each must equal the plain GD
    run of its own net: the same steps, stop reason and weights (padding is exact for ReLU)."""
    from curvscope.experiments.paper003_blobs import blobs_net
    from curvscope.training import gradient_descent

    c = result.config
    picks = [result.runs[1], result.runs[3]] if where == "runs" else [result.sweep[-1]]
    for run in picks:
        net = blobs_net(run.width, seed=run.init_seed, radius=run.radius)
        x, y = run.rebuild_data()
        d = gradient_descent(net, run.rebuild_loss(), x, y, lr=c["lr"],
                             max_steps=c["max_steps"], grad_tol=c["grad_tol"])  # fmt: skip
        assert (run.steps, run.stop_reason) == (d.steps, d.stop_reason)
        assert run.grad_norm == pytest.approx(d.grad_norm, rel=1e-8)
        for k, v in net.state_dict().items():
            np.testing.assert_allclose(run.weights[k], v.numpy(), atol=1e-10, rtol=0)


def test_dead_nets_are_detected_and_redraw_retrains_them() -> None:
    """NLL P = 18 at seed 0 dies in training (all ReLUs of a layer off on every sample): the
    run says so; with redraw_dead the net is retrained from seed 1000·j until alive."""
    from curvscope.experiments.paper003_blobs import active_units

    torch.set_num_threads(1)
    base = ["widths=2", "losses=nll", "num_samples=60", "max_steps=2000", "trajectory_steps=",
            "sweep_stds="]  # fmt: skip
    study = get_study("small-nets-blobs")
    first = run_blobs_study(study.config(overrides=base))
    run = first.runs[0]
    x, _ = run.rebuild_data()
    assert active_units(run.rebuild_model(), x) == run.active_final
    assert run.dead and 0 in run.active_final and 0 not in run.active_init
    assert "DEAD" in str(study.sections(first)[0]) and first.summary()["dead"]
    assert len(first.summary()["grad_norm"]) == 1
    redrawn = run_blobs_study(study.config(overrides=[*base, "redraw_dead=true"])).runs[0]
    assert not redrawn.dead and redrawn.init_seed % 1000 == 0 and redrawn.init_seed > 0
    with torch.no_grad():
        out = run.rebuild_model()(x)
    assert torch.allclose(out, out[:1].expand_as(out))  # dead: the same output for every input
