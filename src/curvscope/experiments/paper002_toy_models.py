"""The three toy models of paper 002 (§4.2, App. A.6; spec ``theory.md`` §3.8) with analytic
gradients and Hessians, and a vectorised simulator of noisy gradient descent on many chains.

Each model is a minimal valley (spec §3.1): the first ``n`` coordinates are non-degenerate with
curvatures :math:`\\lambda_i(\\hat\\theta)`, the rest :math:`\\hat\\theta` are degenerate.

- (a) :math:`L = |\\theta_3+\\theta_4|\\theta_1^2 + |\\theta_3+2\\theta_4|\\theta_2^2`,
  :math:`\\lambda_1 = 2|\\theta_3+\\theta_4|`, :math:`\\lambda_2 = 2|\\theta_3+2\\theta_4|`;
- (b) :math:`L = (4-2e^{-\\theta_3^2-\\theta_4^2})\\theta_1^2 + e^{-(\\theta_3-\\theta_4)^2}
  \\theta_2^2`, :math:`\\lambda_1 = 8-4e^{-r^2}`, :math:`\\lambda_2 = 2e^{-(\\theta_3-\\theta_4)^2}`;
- (c) :math:`L = \\tfrac12(\\theta_2^2+1)\\theta_1^2 + \\alpha\\theta_2`, :math:`\\lambda_1 =
  1+\\theta_2^2`.

Noisy GD: :math:`\\theta \\leftarrow \\theta - \\eta(\\nabla L + \\xi)` with :math:`\\xi` Gaussian
in the non-degenerate coordinates only, diagonal covariance :math:`C_{ii} = \\kappa\\lambda_i`
(``"aligned"``, SGD-like) or :math:`C_{ii} = c` (``"isotropic"``); ``"none"`` is plain GD.
Chain r draws its noise from its own generator (``numpy.random.default_rng(seed_r)``) in blocks
of steps, so a vectorised run of R chains equals R single-chain runs with the same seeds.

Example:
    >>> import numpy as np
    >>> TOY_MODELS["a"].lam(np.array([[0.0, 0.0, 2.0, 2.0]])).tolist()
    [[8.0, 12.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from curvscope.errors import InputError
from curvscope.persistence import savable

__all__ = [
    "NOISE_KINDS",
    "TOY_MODELS",
    "ChainRun",
    "ToyModel",
    "chain_generators",
    "predicted_drift",
    "simulate_chains",
    "stationary_theta_sq",
]

Noise = Literal["aligned", "isotropic", "none"]
NOISE_KINDS: tuple[str, ...] = ("aligned", "isotropic", "none")
Array = np.ndarray


@dataclass(frozen=True)
class ToyModel:
    """A toy minimal valley: ``dim`` parameters, the first ``n`` non-degenerate.

    Attributes:
        name: ``"a"``, ``"b"`` or ``"c"`` (paper 002 §4.2 / App. A.6).
        dim, n: number of parameters and of non-degenerate coordinates.
        loss_torch: the loss of one parameter vector (torch, for autodiff checks).
        lam: ``(R, dim) -> (R, n)`` the curvatures :math:`\\lambda_i(\\hat\\theta)`.
        grad: ``(R, dim) -> (R, dim)`` the exact gradient.
        hessian: ``(R, dim) -> (R, dim, dim)`` the exact Hessian.
        grad_lam: ``(R, dim) -> (R, n, dim - n)`` :math:`\\hat\\nabla\\lambda_i`.
    """

    name: str
    dim: int
    n: int
    loss_torch: Callable[[torch.Tensor], torch.Tensor]
    lam: Callable[[Array], Array]
    grad: Callable[[Array], Array]
    hessian: Callable[[Array], Array]
    grad_lam: Callable[[Array], Array]


# ---------------------------------------------------------------------- model (a)
def _a_loss(t: torch.Tensor) -> torch.Tensor:
    return (t[2] + t[3]).abs() * t[0] ** 2 + (t[2] + 2 * t[3]).abs() * t[1] ** 2


def _a_lam(t: Array) -> Array:
    return np.stack([2 * np.abs(t[:, 2] + t[:, 3]), 2 * np.abs(t[:, 2] + 2 * t[:, 3])], 1)


def _a_grad(t: Array) -> Array:
    lam = _a_lam(t)
    s1, s2 = np.sign(t[:, 2] + t[:, 3]), np.sign(t[:, 2] + 2 * t[:, 3])
    q1, q2 = s1 * t[:, 0] ** 2, s2 * t[:, 1] ** 2
    return np.stack([lam[:, 0] * t[:, 0], lam[:, 1] * t[:, 1], q1 + q2, q1 + 2 * q2], 1)


def _a_hessian(t: Array) -> Array:
    lam = _a_lam(t)
    s1, s2 = np.sign(t[:, 2] + t[:, 3]), np.sign(t[:, 2] + 2 * t[:, 3])
    h = np.zeros((t.shape[0], 4, 4))
    h[:, 0, 0], h[:, 1, 1] = lam[:, 0], lam[:, 1]
    h[:, 0, 2] = h[:, 0, 3] = h[:, 2, 0] = h[:, 3, 0] = 2 * s1 * t[:, 0]
    h[:, 1, 2] = h[:, 2, 1] = 2 * s2 * t[:, 1]
    h[:, 1, 3] = h[:, 3, 1] = 4 * s2 * t[:, 1]
    return h


def _a_grad_lam(t: Array) -> Array:
    s1, s2 = np.sign(t[:, 2] + t[:, 3]), np.sign(t[:, 2] + 2 * t[:, 3])
    return np.stack([np.stack([2 * s1, 2 * s1], 1), np.stack([2 * s2, 4 * s2], 1)], 1)


# ---------------------------------------------------------------------- model (b)
def _b_loss(t: torch.Tensor) -> torch.Tensor:
    return (4 - 2 * torch.exp(-(t[2] ** 2) - t[3] ** 2)) * t[0] ** 2 + torch.exp(
        -((t[2] - t[3]) ** 2)
    ) * t[1] ** 2


def _b_parts(t: Array) -> tuple[Array, Array, Array]:
    e1 = np.exp(-(t[:, 2] ** 2 + t[:, 3] ** 2))
    d = t[:, 2] - t[:, 3]
    return e1, d, np.exp(-d * d)


def _b_lam(t: Array) -> Array:
    e1, _, e2 = _b_parts(t)
    return np.stack([8 - 4 * e1, 2 * e2], 1)


def _b_grad_lam(t: Array) -> Array:
    e1, d, e2 = _b_parts(t)
    g1 = np.stack([8 * e1 * t[:, 2], 8 * e1 * t[:, 3]], 1)
    g2 = np.stack([-4 * d * e2, 4 * d * e2], 1)
    return np.stack([g1, g2], 1)


def _b_grad(t: Array) -> Array:
    lam, gl = _b_lam(t), _b_grad_lam(t)
    hat = 0.5 * (t[:, :1] ** 2 * gl[:, 0] + t[:, 1:2] ** 2 * gl[:, 1])
    return np.concatenate([lam * t[:, :2], hat], 1)


def _b_hessian(t: Array) -> Array:
    """L = λ1 θ1²/2 + λ2 θ2²/2: H_ii = λ_i, H_ij = θ_i ∂_j λ_i, H_jk = Σ θ_i² ∂_jk λ_i / 2."""
    e1, d, e2 = _b_parts(t)
    lam, gl = _b_lam(t), _b_grad_lam(t)
    x, y = t[:, 2], t[:, 3]
    hl1 = np.empty((t.shape[0], 2, 2))
    hl1[:, 0, 0] = 8 * e1 * (1 - 2 * x * x)
    hl1[:, 1, 1] = 8 * e1 * (1 - 2 * y * y)
    hl1[:, 0, 1] = hl1[:, 1, 0] = -16 * x * y * e1
    c = (8 * d * d - 4) * e2
    hl2 = np.stack([np.stack([c, -c], 1), np.stack([-c, c], 1)], 1)
    h = np.zeros((t.shape[0], 4, 4))
    h[:, 0, 0], h[:, 1, 1] = lam[:, 0], lam[:, 1]
    h[:, 0, 2:] = t[:, :1] * gl[:, 0]
    h[:, 1, 2:] = t[:, 1:2] * gl[:, 1]
    h[:, 2:, 0], h[:, 2:, 1] = h[:, 0, 2:], h[:, 1, 2:]
    h[:, 2:, 2:] = 0.5 * (t[:, 0, None, None] ** 2 * hl1 + t[:, 1, None, None] ** 2 * hl2)
    return h


# ---------------------------------------------------------------------- model (c)
def toy_c_model(alpha: float) -> ToyModel:
    """Model (c) with tilt ``alpha``: :math:`L = \\tfrac12(\\theta_2^2+1)\\theta_1^2 +
    \\alpha\\theta_2` (App. A.6)."""

    def loss(t: torch.Tensor) -> torch.Tensor:
        return 0.5 * (t[1] ** 2 + 1) * t[0] ** 2 + alpha * t[1]

    def lam(t: Array) -> Array:
        return (1 + t[:, 1:2] ** 2).copy()

    def grad(t: Array) -> Array:
        return np.stack([(1 + t[:, 1] ** 2) * t[:, 0], t[:, 0] ** 2 * t[:, 1] + alpha], 1)

    def hessian(t: Array) -> Array:
        h = np.empty((t.shape[0], 2, 2))
        h[:, 0, 0] = 1 + t[:, 1] ** 2
        h[:, 0, 1] = h[:, 1, 0] = 2 * t[:, 0] * t[:, 1]
        h[:, 1, 1] = t[:, 0] ** 2
        return h

    def grad_lam(t: Array) -> Array:
        return (2 * t[:, 1])[:, None, None].copy()

    return ToyModel("c", 2, 1, loss, lam, grad, hessian, grad_lam)


TOY_MODELS: dict[str, ToyModel] = {
    "a": ToyModel("a", 4, 2, _a_loss, _a_lam, _a_grad, _a_hessian, _a_grad_lam),
    "b": ToyModel("b", 4, 2, _b_loss, _b_lam, _b_grad, _b_hessian, _b_grad_lam),
    "c": toy_c_model(1e-4),
}


# ---------------------------------------------------------------------- theory
def _noise_cov(lam: Array, noise: str, scale: float) -> Array:
    if noise == "aligned":
        return scale * lam
    if noise == "isotropic":
        return np.full_like(lam, scale)
    if noise == "none":
        return np.zeros_like(lam)
    raise InputError(f"noise must be one of {', '.join(NOISE_KINDS)}; got {noise!r}")


def stationary_theta_sq(lam: Array, eta: float, cov: Array) -> Array:
    """The stationary :math:`\\langle\\theta_i^2\\rangle = \\eta C_{ii} / (\\lambda_i(2 -
    \\eta\\lambda_i))` of noisy GD on a fixed quadratic (spec §3.4, exact for the AR(1) step)."""
    return eta * cov / (lam * (2 - eta * lam))


def predicted_drift(
    model: ToyModel, theta: Array, *, eta: float, noise: str, scale: float
) -> tuple[Array, Array]:
    """Expected one-step change of T and of log Det at each chain's valley position.

    .. math:: \\langle\\Delta\\hat\\theta\\rangle = -\\tfrac{\\eta}{2}\\sum_j \\langle\\theta_j^2
        \\rangle \\hat\\nabla\\lambda_j, \\quad \\Delta T = \\hat\\nabla T\\cdot\\langle\\Delta
        \\hat\\theta\\rangle, \\quad \\Delta\\log\\mathrm{Det} = \\sum_i \\hat\\nabla\\lambda_i/
        \\lambda_i\\cdot\\langle\\Delta\\hat\\theta\\rangle

    with the eta-exact :func:`stationary_theta_sq` (spec §3.4-3.5; Theorem 1 and 2 to leading
    order). Returns ``(dT, dlogDet)``, each ``(R,)``.
    """
    lam, gl = model.lam(theta), model.grad_lam(theta)
    sq = stationary_theta_sq(lam, eta, _noise_cov(lam, noise, scale))
    drift = -(eta / 2) * np.einsum("rj,rjk->rk", sq, gl)
    grad_t = gl.sum(1)
    grad_logdet = np.einsum("rj,rjk->rk", 1 / lam, gl)
    return np.einsum("rk,rk->r", grad_t, drift), np.einsum("rk,rk->r", grad_logdet, drift)


# ---------------------------------------------------------------------- simulation
@savable
@dataclass(frozen=True)
class ChainRun:
    """What :func:`simulate_chains` returns.

    Attributes:
        theta: ``(R, dim)`` the last iterate of every chain.
        record_steps: ``(m,)`` the steps at which ``records`` were taken (0 and the last
            included).
        records: ``(m, R, q)`` the observer's values at ``record_steps``.
        accumulated: ``(R, q2)`` the sum of the accumulator over steps ``accumulate_from`` ..
            ``steps - 1`` (evaluated before each step), or ``(R, 0)``.
    """

    theta: Array
    record_steps: Array
    records: Array
    accumulated: Array


def chain_generators(seed: int, stream: int, chains: int) -> list[np.random.Generator]:
    """One generator per chain, ``default_rng([seed, stream, r])``: chain r of stream ``stream``
    gets the same noise in a vectorised run and alone."""
    return [np.random.default_rng([seed, stream, r]) for r in range(chains)]


def simulate_chains(
    model: ToyModel,
    theta0: Array,
    generators: Sequence[np.random.Generator],
    *,
    eta: float,
    noise: Noise,
    scale: float,
    steps: int,
    observe: Callable[[Array], Array] | None = None,
    record_every: int = 0,
    accumulate: Callable[[Array], Array] | None = None,
    accumulate_from: int = 0,
    block: int = 512,
) -> ChainRun:
    """Noisy GD on ``len(generators)`` chains at once (numpy, float64).

    .. math:: \\theta_{t+1} = \\theta_t - \\eta(\\nabla L(\\theta_t) + \\xi_t), \\quad
        \\xi_{t,i} = \\sqrt{C_{ii}(\\theta_t)}\\, z_{t,i}\\ (i \\le n), \\ \\xi_{t,i} = 0\\ (i > n)

    Generators are consumed in place (a later call continues their streams).

    Args:
        model: the toy model; theta0: ``(R, dim)`` starts (one row per generator).
        eta, noise, scale: the step, ``"aligned"`` (:math:`C = \\kappa\\lambda`, ``scale`` =
            κ), ``"isotropic"`` (:math:`C = c`, ``scale`` = c) or ``"none"``.
        steps: number of steps.
        observe, record_every: ``observe(theta) -> (R, q)`` recorded every ``record_every``
            steps (0: only at the start and the end).
        accumulate, accumulate_from: ``accumulate(theta) -> (R, q2)`` summed over steps.
        block: steps of noise drawn per generator call.
    """
    theta = np.array(theta0, dtype=np.float64, copy=True)
    chains = len(generators)
    if theta.shape != (chains, model.dim):
        raise InputError(
            f"theta0 must have shape (chains, {model.dim}) = ({chains}, {model.dim}); got "
            f"{theta.shape}"
        )
    if not (eta > 0) or steps < 0:
        raise InputError(f"eta must be > 0 and steps >= 0; got eta={eta}, steps={steps}")
    _noise_cov(np.zeros(1), noise, scale)  # validates the kind
    n = model.n
    record_steps, records = [], []
    total = np.zeros((chains, 0)) if accumulate is None else 0.0
    for start in range(0, steps, block):
        size = min(block, steps - start)
        if noise != "none":
            z = np.stack([g.standard_normal((size, n)) for g in generators], axis=1)
        for i in range(size):
            t = start + i
            if observe is not None and (t == 0 or (record_every and t % record_every == 0)):
                record_steps.append(t)
                records.append(np.array(observe(theta), copy=True))  # never a view of theta
            if accumulate is not None and t >= accumulate_from:
                total = total + accumulate(theta)
            g = model.grad(theta)
            if noise != "none":
                cov = _noise_cov(model.lam(theta), noise, scale)
                g[:, :n] += np.sqrt(cov) * z[i]
            theta -= eta * g
    if observe is not None:
        if not record_steps or record_steps[-1] != steps:
            record_steps.append(steps)
            records.append(np.array(observe(theta), copy=True))  # never a view of theta
    out = np.stack(records) if records else np.zeros((0, chains, 0))
    acc = total if isinstance(total, np.ndarray) else np.zeros((chains, 0))
    return ChainRun(theta, np.array(record_steps, dtype=np.int64), out, acc)
