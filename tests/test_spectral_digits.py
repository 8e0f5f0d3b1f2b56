"""Real model: the Hessian of a 64-16-10 MLP on sklearn's digits (P = 1210).

HessianOperator is not on main yet, so products come from a small reverse-over-reverse HVP
operator defined here; the oracle is the dense float64 Hessian from
torch.autograd.functional.hessian (reverse-over-reverse, never jacfwd-of-jacrev).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from curvscope.operators.base import SymmetricOperator
from curvscope.spectral import exact_spectrum, slq, top_eigenpairs


def _digits_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Size]]:
    x, y = load_digits(return_X_y=True)
    x = torch.as_tensor(x[:300] / 16.0, dtype=torch.float64)
    y = torch.as_tensor(y[:300])
    gen = torch.Generator().manual_seed(0)
    shapes = [torch.Size((16, 64)), torch.Size((16,)), torch.Size((10, 16)), torch.Size((10,))]
    flat = torch.cat(
        [torch.randn(s, generator=gen, dtype=torch.float64).flatten() * 0.3 for s in shapes]
    )
    return x, y, flat, shapes


def _loss(
    flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, shapes: list[torch.Size]
) -> torch.Tensor:
    parts, start = [], 0
    for s in shapes:
        parts.append(flat[start : start + s.numel()].reshape(s))
        start += s.numel()
    w1, b1, w2, b2 = parts
    return torch.nn.functional.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)


class _HVP(SymmetricOperator):
    """Hessian-vector products by double backward (reverse-over-reverse), column by column."""

    def __init__(self) -> None:
        self.x, self.y, self.flat, self.shapes = _digits_problem()

    shape = property(lambda self: (self.flat.numel(), self.flat.numel()))
    dtype = property(lambda self: torch.float64)
    device = property(lambda self: torch.device("cpu"))

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        flat = self.flat.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(
            _loss(flat, self.x, self.y, self.shapes), flat, create_graph=True
        )
        cols = [torch.autograd.grad(grad, flat, v, retain_graph=True)[0] for v in block.T]
        return torch.stack(cols, dim=1)


@pytest.fixture(scope="module")
def digits() -> tuple[_HVP, np.ndarray]:
    op = _HVP()
    dense = torch.autograd.functional.hessian(
        lambda p: _loss(p, op.x, op.y, op.shapes), op.flat
    ).numpy()
    return op, np.linalg.eigvalsh((dense + dense.T) / 2)


def test_exact_spectrum_of_hvp_operator_matches_dense_hessian(digits) -> None:
    op, lam = digits
    exact = exact_spectrum(op, block_size=128)
    assert exact.size == 1210
    assert exact.asymmetry < 1e-10
    np.testing.assert_allclose(exact.eigenvalues, lam, atol=1e-10 * np.abs(lam).max())
    assert lam[0] < 0  # an untrained net: the Hessian is indefinite


def test_slq_extremes_agree_with_exact(digits) -> None:
    op, lam = digits
    density = slq(op, num_steps=60, num_probes=2, seed=1)
    lo, hi = density.extremal
    assert hi == pytest.approx(lam[-1], rel=1e-8)
    assert lo == pytest.approx(lam[0], rel=1e-3)
    # The Ritz values lie inside the spectrum (Cauchy interlacing).
    assert lam[0] - 1e-12 <= lo and hi <= lam[-1] + 1e-12


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_top_eigenpairs_of_hessian_agree_with_exact(digits, which: str) -> None:
    op, lam = digits
    result = top_eigenpairs(op, 3, which=which, seed=0)
    truth = lam[::-1][:3] if which == "largest" else lam[:3]
    np.testing.assert_allclose(result.values, truth, rtol=1e-6, atol=1e-9 * np.abs(lam).max())
    assert result.converged.all()


@pytest.fixture(scope="module")
def digits_hessian_operator():
    """curvscope's HessianOperator of a 64-16-10 tanh MLP on 300 digits (float64)."""
    from torch import nn

    from curvscope.operators import HessianOperator

    x, y = load_digits(return_X_y=True)
    inputs = torch.as_tensor(x[:300] / 16.0, dtype=torch.float64)
    targets = torch.as_tensor(y[:300])
    gen = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (inputs, targets))
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        w1, b1 = theta[:1024].reshape(16, 64), theta[1024:1040]
        w2, b2 = theta[1040:1200].reshape(10, 16), theta[1200:]
        out = torch.tanh(inputs @ w1.T + b1) @ w2.T + b2
        return nn.functional.cross_entropy(out, targets)

    dense = torch.autograd.functional.hessian(loss_of, flat).numpy()  # reverse-over-reverse
    return op, np.linalg.eigvalsh((dense + dense.T) / 2)


def test_hessian_operator_exact_slq_and_top_k_agree(digits_hessian_operator) -> None:
    op, lam = digits_hessian_operator
    assert op.shape == (1210, 1210)
    exact = exact_spectrum(op, block_size=256)
    np.testing.assert_allclose(exact.eigenvalues, lam, atol=1e-9 * np.abs(lam).max())
    density = slq(op, num_steps=60, seed=2)
    assert density.extremal[1] == pytest.approx(exact.eigenvalues[-1], rel=1e-8)
    assert density.extremal[0] == pytest.approx(exact.eigenvalues[0], rel=1e-3)
    for which, truth in (
        ("largest", exact.eigenvalues[::-1][:3]),
        ("smallest", exact.eigenvalues[:3]),
    ):
        result = top_eigenpairs(op, 3, which=which)
        np.testing.assert_allclose(result.values, truth, rtol=1e-6, atol=1e-9 * np.abs(lam).max())
        assert result.converged.all()
