"""Noise estimators (b) per-sample Frobenius and (c) quadratic form of theory.md §1.4 beside
(a) split-half, on a planted case with a known sigma^2 and on a tiny network against dense
per-sample Hessians; the spectrum of D against the semicircle (Assumption 1)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from curvscope import DenseOperator, HessianOperator
from curvscope.errors import InputError
from curvscope.experiments.noise import (
    HalfDifferenceOperator,
    noise_spectrum_check,
    per_sample_noise,
    split_half_noise,
)
from curvscope.spectral import draw_probes, make_generator, slq

SIGMA = 1.0


def _planted(p: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``H_i = A + Delta_i``: A fixed (rank 3), Delta_i symmetric with iid +-sigma entries on
    and above the diagonal, so every element has variance sigma^2 (spec test
    ``000.theorem1.PN_form+estimators``)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(p, 3, generator=g, dtype=torch.float64)
    a = z @ torch.diag(torch.tensor([5.0, 3.0, -2.0], dtype=torch.float64)) @ z.T / p
    signs = torch.randint(0, 2, (n, p, p), generator=g, dtype=torch.float64) * 2 - 1
    upper = torch.triu(signs)
    delta = SIGMA * (upper + upper.triu(1).transpose(1, 2))
    return a, a + delta


def test_planted_fluctuations_all_three_estimators_find_sigma2() -> None:
    p, n = 300, 200
    _, hs = _planted(p, n, seed=0)
    est = per_sample_noise((DenseOperator(h) for h in hs), num_data=n, num_probes=8, seed=1)
    truth_b = SIGMA**2  # mean element variance
    truth_c = SIGMA**2 * (1 - 1 / (2 * p))  # Var(u^T Delta u)/2 with sum u^4 = 1/P
    assert abs(est.sigma2_frobenius - truth_b) < 4 * est.sigma2_frobenius_stderr
    assert abs(est.sigma2_quadratic - truth_c) < 4 * est.sigma2_quadratic_stderr
    assert est.sigma2_frobenius_stderr < 0.05 and est.sigma2_quadratic_stderr < 0.15
    assert est.ratio == pytest.approx(est.sigma2_quadratic / est.sigma2_frobenius)
    assert est.s2_frobenius == pytest.approx(p / n * est.sigma2_frobenius)
    # (a): the halves' means; s^2 = (P/N) sigma^2 for the N = n samples
    half_a, half_b = hs[: n // 2].mean(0), hs[n // 2 :].mean(0)
    split = split_half_noise(
        DenseOperator(half_a),
        DenseOperator(half_b),
        num_data=n,
        half_size=n // 2,
        num_probes=64,
        seed=2,
    )
    assert abs(split.s2 - p / n * SIGMA**2) < 4 * split.s2_stderr
    print(
        f"sigma2 (b) {est.sigma2_frobenius:.4f} ± {est.sigma2_frobenius_stderr:.4f}, "
        f"(c) {est.sigma2_quadratic:.4f} ± {est.sigma2_quadratic_stderr:.4f} vs 1; "
        f"s2 (a) {split.s2:.4f} ± {split.s2_stderr:.4f} vs {p / n}"
    )


def test_planted_half_difference_follows_the_semicircle() -> None:
    p, n = 300, 200
    _, hs = _planted(p, n, seed=3)
    op = HalfDifferenceOperator(
        DenseOperator(hs[: n // 2].mean(0)), DenseOperator(hs[n // 2 :].mean(0))
    )
    s = math.sqrt(p * SIGMA**2 / n)  # s_D: element variance sigma^2/n of D, times P
    check = noise_spectrum_check(slq(op, num_steps=40, num_probes=6, seed=0), scale=s)
    assert abs(check.m2 - s**2) < 4 * check.m2_stderr + 0.02 * s**2
    assert abs(check.m4 - 2 * s**4) < 4 * check.m4_stderr + 0.05 * s**4
    assert abs(check.kurtosis - 2) < 4 * check.kurtosis_stderr + 0.05
    # extremes within the O(P^{-2/3}) edge fluctuation of +-2s
    assert check.largest == pytest.approx(2 * s, rel=0.08)
    assert check.smallest == pytest.approx(-2 * s, rel=0.08)
    print(
        f"D: m2 {check.m2:.4f} vs {s**2:.4f}, m4/m2^2 {check.kurtosis:.3f} vs 2, "
        f"extremes {check.smallest:.3f}, {check.largest:.3f} vs ±{2 * s:.3f}"
    )


def test_low_rank_fluctuations_fail_the_kurtosis_check() -> None:
    """D = (P/2) e_1 e_1^T (rank one) is far from GOE: m4/m2^2 = P, not 2 (exact for
    Rademacher probes, whose weight on e_1 is always 1/P)."""
    p = 50
    spike = torch.zeros(p, p, dtype=torch.float64)
    spike[0, 0] = p
    op = HalfDifferenceOperator(DenseOperator(spike), DenseOperator(torch.zeros_like(spike)))
    check = noise_spectrum_check(slq(op, num_steps=5, num_probes=3, seed=0), scale=1.0)
    assert check.kurtosis == pytest.approx(p, rel=1e-9)


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    return model, x, y


def _dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = theta[i : i + shape.numel()].reshape(shape)
            i += shape.numel()
        out = torch.func.functional_call(model, params, (x,))
        return nn.functional.mse_loss(out, y)

    return torch.autograd.functional.hessian(loss, flat)  # reverse-over-reverse


def test_tiny_network_matches_dense_per_sample_hessians() -> None:
    model, x, y = _tiny()
    loss_fn = nn.MSELoss()
    ops = [
        HessianOperator(model, loss_fn, [(x[i : i + 1], y[i : i + 1])], dtype=torch.float64)
        for i in range(len(x))
    ]
    est = per_sample_noise(ops, num_data=100, num_probes=4, seed=7)
    hs = torch.stack([_dense_hessian(model, x[i : i + 1], y[i : i + 1]) for i in range(len(x))])
    p, n = hs.shape[1], hs.shape[0]
    v = draw_probes(p, 4, generator=make_generator(7))
    hv = hs @ v  # (n, P, k)
    dev = hv - hv.mean(0)
    frob = float((dev**2).sum()) / (4 * (n - 1) * p**2)
    forms = torch.einsum("pk,ipk->ki", v, hv) / p
    quad = float(forms.var(dim=1, correction=1).mean() / 2)
    assert est.sigma2_frobenius == pytest.approx(frob, rel=1e-10)
    assert est.sigma2_quadratic == pytest.approx(quad, rel=1e-10)
    assert est.num_params == p and est.q == pytest.approx(p / 100)
    # and (b) estimates the exact mean element variance of these Hessians within 4 stderr
    exact = float(hs.var(dim=0, correction=1).mean())
    assert abs(est.sigma2_frobenius - exact) < 4 * est.sigma2_frobenius_stderr


def test_per_sample_noise_refuses_too_few_samples() -> None:
    op = DenseOperator(torch.eye(3))
    with pytest.raises(InputError, match="at least 3 per-sample operators"):
        per_sample_noise([op, op], num_data=5)
