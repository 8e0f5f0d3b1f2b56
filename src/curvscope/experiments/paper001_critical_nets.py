"""The networks and data of the ``critical-points`` study (paper 001 sec. 6.4, spec §2.1, §2.8):
single-hidden-layer tanh nets without biases, :math:`\\hat y = W_2 \\tanh(W_1 x)`, on iid
N(0, 1) inputs and targets, with the paper's loss

.. math:: L = \\frac{1}{2m} \\sum_{i,\\mu} e_{i\\mu}^2, \\quad \\epsilon = L / n_{out}
   \\quad (\\texttt{nn.MSELoss} = 2\\epsilon),

many runs at once: flat weights ``theta`` of shape ``(R, P)`` (``W1`` row-major, then ``W2``:
the order of ``nn.Sequential(Linear, Tanh, Linear).named_parameters()``), data ``(R, m, n)``.
Everything a run needs is drawn from its own seed (:func:`draw_run`), so a saved seed rebuilds
the run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "PaperLoss",
    "batched_hessians",
    "batched_loss",
    "build_net",
    "draw_run",
    "flat_to_state",
]


class PaperLoss(nn.Module):
    """Paper 001's loss :math:`L = \\frac{1}{2m}\\sum_{i\\mu} (\\hat y_{i\\mu} - y_{i\\mu})^2`
    (eq. 2, spec §2.1): sum over outputs, mean over the m samples, halved; ``L = n_out·ε``."""

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((out - target) ** 2).sum() / out.shape[0]


def draw_run(
    seed: int, n: int, m: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Inputs ``x`` ``(m, n)`` and targets ``y`` ``(m, n)`` iid N(0, 1), initial flat weights
    ``(2n²,)`` iid :math:`N(0, 1/n)` (variance 1/fan-in) and the level fraction ``u ~ U(0, 1)``,
    in that order from ``torch.Generator().manual_seed(seed)`` (CPU, never the global RNG)."""
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(m, n, generator=gen, dtype=dtype)
    y = torch.randn(m, n, generator=gen, dtype=dtype)
    theta = torch.randn(2 * n * n, generator=gen, dtype=dtype) / math.sqrt(n)
    u = float(torch.rand((), generator=gen, dtype=dtype))
    return x, y, theta, u


def _split(theta: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    R = theta.shape[0]
    return theta[:, : n * n].view(R, n, n), theta[:, n * n :].view(R, n, n)


def batched_loss(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(R,)``: L of each run, ``theta`` ``(R, 2n²)``, ``x``, ``y`` ``(R, m, n)``."""
    n, m = x.shape[2], x.shape[1]
    w1, w2 = _split(theta, n)
    out = torch.bmm(torch.tanh(torch.bmm(x, w1.transpose(1, 2))), w2.transpose(1, 2))
    return 0.5 * ((out - y) ** 2).sum((1, 2)) / m


def batched_hessians(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(R, P, P)``: the exact Hessian of L for each run in closed form.

    With :math:`a = W_1 x_\\mu`, :math:`h = \\tanh a`, :math:`h' = 1 - h^2`,
    :math:`h'' = -2 h h'`, :math:`e = W_2 h - y`, :math:`G = W_2^T W_2`, :math:`s = (W_2^T e) h''`:

    .. math::
        \\partial^2 L / \\partial W_{1,kl} \\partial W_{1,qp} &= \\tfrac1m \\textstyle\\sum_\\mu x_{l\\mu} x_{p\\mu}
            [G_{kq} h'_{k\\mu} h'_{q\\mu} + \\delta_{kq} s_{k\\mu}] \\\\
        \\partial^2 L / \\partial W_{2,ik} \\partial W_{1,qp} &= \\tfrac1m \\textstyle\\sum_\\mu
            [W_{2,iq} h'_{q\\mu} x_{p\\mu} h_{k\\mu} + \\delta_{kq} e_{i\\mu} h'_{k\\mu} x_{p\\mu}] \\\\
        \\partial^2 L / \\partial W_{2,ik} \\partial W_{2,jq} &= \\tfrac1m \\delta_{ij} \\textstyle\\sum_\\mu h_{k\\mu} h_{q\\mu}

    The first term of each block is the Gauss-Newton part :math:`H_0`, the rest :math:`H_1`
    (spec §2.1). Cost :math:`O(n^4 m)` a run instead of P Hessian-vector products; checked
    against reverse-over-reverse autodiff in the tests.
    """
    R, m, n = x.shape
    w1, w2 = _split(theta, n)
    h = torch.tanh(torch.bmm(x, w1.transpose(1, 2)))  # (R, m, n1)
    d1 = 1 - h * h
    d2 = -2 * h * d1
    e = torch.bmm(h, w2.transpose(1, 2)) - y  # (R, m, n2)
    gram = torch.bmm(w2.transpose(1, 2), w2)  # (R, n1, n1)
    s = torch.bmm(e, w2) * d2  # (R, m, n1)
    z = (d1.unsqueeze(3) * x.unsqueeze(2)).reshape(R, m, n * n)  # h'_k x_l
    h11 = torch.bmm(z.transpose(1, 2), z).view(R, n, n, n, n) / m  # [k, l, q, p]
    h11 = h11 * gram[:, :, None, :, None]
    diag = torch.einsum("ruk,rul,rup->rklp", s, x, x) / m
    idx = torch.arange(n)
    h11[:, idx, :, idx, :] += diag.permute(1, 0, 2, 3)
    # block (W2_ik, W1_qp)
    c = torch.einsum("ruk,ruq,rup->rkqp", h, d1, x) / m
    h21 = w2[:, :, None, :, None] * c[:, None, :, :, :]  # [i, k, q, p]
    dterm = torch.einsum("rui,ruk,rup->rikp", e, d1, x) / m
    h21[:, :, idx, idx, :] += dterm
    hh = torch.bmm(h.transpose(1, 2), h) / m  # (R, n1, n1)
    h22 = torch.einsum("ij,rkq->rikjq", torch.eye(n, dtype=x.dtype), hh)
    nn2 = n * n
    out = torch.empty(R, 2 * nn2, 2 * nn2, dtype=x.dtype)
    out[:, :nn2, :nn2] = h11.reshape(R, nn2, nn2)
    out[:, nn2:, :nn2] = h21.reshape(R, nn2, nn2)
    out[:, :nn2, nn2:] = h21.reshape(R, nn2, nn2).transpose(1, 2)
    out[:, nn2:, nn2:] = h22.reshape(R, nn2, nn2)
    return out


def build_net(n: int) -> nn.Sequential:
    """The float64 module of one run: ``Linear(n, n, bias=False), Tanh, Linear(n, n, bias=False)``."""
    return nn.Sequential(
        nn.Linear(n, n, bias=False), nn.Tanh(), nn.Linear(n, n, bias=False)
    ).double()


def flat_to_state(theta: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """The state dict of :func:`build_net` holding the flat weights ``theta`` ``(2n²,)``."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    return {
        "0.weight": theta[: n * n].view(n, n).clone(),
        "2.weight": theta[n * n :].view(n, n).clone(),
    }
