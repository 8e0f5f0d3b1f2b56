"""Critical points of many networks at once: full-batch GD to a loss level, then
Levenberg-Marquardt descent on :math:`J_g = \\|\\nabla L\\|^2` and exact dense Hessians, all
vectorised over R runs (paper 001 sec. 6.4, spec theory.md §2.8).

The runs are given as one batched objective ``loss(theta) -> (R,)`` of flat weights
``theta`` of shape ``(R, P)`` in which run r's loss depends on row r alone (stacked weights,
batched matrix products), so the gradient of the summed losses is every run's own gradient and
one batched double backward gives every run's Hessian. Each function equals a loop of the
single-run :func:`~curvscope.training.gradient_descent` / :func:`~curvscope.training.grad_norm_descent`
(same stopping rules, same damping schedule) to rounding: ``tests/test_experiment_paper001_critical.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from curvscope.errors import InputError

__all__ = [
    "EnsembleDescent",
    "ensemble_grad_norm_descent",
    "ensemble_gradient_descent",
    "ensemble_hessians",
]

BatchedLoss = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EnsembleDescent:
    """The outcome of a batched descent (one entry per run).

    Attributes:
        theta: ``(R, P)`` final weights (the last accepted iterate of each run).
        loss: ``(R,)`` L at ``theta``; ``jg``: ``(R,)`` :math:`\\|\\nabla L\\|^2` at ``theta``.
        steps: ``(R,)`` accepted steps of each run.
        stop: ``(R,)`` codes: 0 the tolerance was reached (``loss_tol`` for GD, ``tol`` on
            :math:`J_g` for LM), 1 the step cap, 2 stalled (LM found no decreasing step),
            3 non-finite (the run diverged: discard it).
    """

    theta: torch.Tensor
    loss: torch.Tensor
    jg: torch.Tensor
    steps: torch.Tensor
    stop: torch.Tensor


STOP_NAMES = ("tol", "max_steps", "stalled", "non_finite")


def _bind(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], idx: torch.Tensor
) -> BatchedLoss:
    """``loss_fn`` restricted to the runs ``idx``."""
    return lambda th: loss_fn(th, idx)


def _loss_grad(loss_fn: BatchedLoss, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    th = theta.detach().requires_grad_(True)
    loss = loss_fn(th)
    # run r's loss depends on row r alone: d(sum)/d(theta_r) = dL_r/d(theta_r)
    (g,) = torch.autograd.grad(loss.sum(), th)
    return loss.detach(), g.detach()


def ensemble_gradient_descent(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    *,
    lr: float,
    max_steps: int,
    loss_tol: torch.Tensor,
) -> EnsembleDescent:
    """GD :math:`\\theta_r \\leftarrow \\theta_r - \\eta \\nabla L_r` for every run until
    :math:`L_r \\le` ``loss_tol[r]`` or ``max_steps`` steps (spec 2.8 (i), the level
    :math:`u L_0`). A run that stops is frozen; the others go on.

    Args:
        loss_fn: ``loss_fn(theta_active, index)`` -> ``(len(index),)`` losses of the runs
            ``index`` at weights ``theta_active`` (so the data of stopped runs is not touched).
        theta: ``(R, P)`` initial weights; lr, max_steps: step size and cap.
        loss_tol: ``(R,)`` levels.
    """
    theta = theta.detach().clone()
    R = theta.shape[0]
    steps = torch.zeros(R, dtype=torch.int64)
    stop = torch.full((R,), -1, dtype=torch.int64)
    loss = torch.full((R,), float("nan"), dtype=theta.dtype)
    active = torch.arange(R)
    step = 0
    while active.numel():
        idx = active
        value, g = _loss_grad(_bind(loss_fn, idx), theta[idx])
        loss[idx] = value
        finite = torch.isfinite(value) & torch.isfinite(g).all(1)
        reached = value <= loss_tol[idx]
        code = torch.where(~finite, 3, torch.where(reached, 0, 1 if step >= max_steps else -1))
        stop[idx] = code
        go = code < 0
        theta[idx[go]] = theta[idx[go]] - lr * g[go]
        steps[idx[go]] += 1
        active = idx[go]
        step += 1
    _, jg = _jg(_bind(loss_fn, torch.arange(R)), theta)
    return EnsembleDescent(theta, loss, jg, steps, stop)


def _jg(loss_fn: BatchedLoss, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    value, g = _loss_grad(loss_fn, theta)
    return value, (g * g).sum(1)


def ensemble_hessians(loss_fn: BatchedLoss, theta: torch.Tensor) -> torch.Tensor:
    """``(R, P, P)``: every run's exact Hessian of L by reverse-over-reverse autodiff (one
    batched double backward over the P unit vectors, ``is_grads_batched``), symmetrised."""
    th = theta.detach().requires_grad_(True)
    R, P = th.shape
    (g,) = torch.autograd.grad(loss_fn(th).sum(), th, create_graph=True)
    eye = torch.eye(P, dtype=th.dtype, device=th.device).unsqueeze(1).expand(P, R, P)
    (rows,) = torch.autograd.grad(g, th, eye, is_grads_batched=True)
    hess = rows.transpose(0, 1)
    return (hess + hess.transpose(1, 2)) / 2


def ensemble_grad_norm_descent(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    *,
    tol: float,
    max_steps: int,
    damping: float = 1e-6,
    hessian_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> EnsembleDescent:
    """Levenberg-Marquardt descent on :math:`J_g = \\|\\nabla L\\|^2` for every run (the
    batched ``method="newton"`` of :func:`~curvscope.training.grad_norm_descent`).

    .. math:: d = -(H^2 + \\mu I)^{-1} H \\nabla L = -V\\,\\frac{\\Lambda}{\\Lambda^2 + \\mu} V^T \\nabla L

    with the exact Hessian :math:`H = V \\Lambda V^T` of each run; the trial is accepted when it
    lowers :math:`J_g`, then :math:`\\mu \\leftarrow \\max(\\mu/10, 10^{-30}\\lambda_{max}^2)`,
    else :math:`\\mu \\leftarrow 8\\mu` and retry (a run whose :math:`\\mu` passes
    :math:`10^{20}\\lambda_{max}^2` has stalled). :math:`\\mu` starts at
    ``damping`` :math:`\\cdot \\lambda_{max}^2`. It is the Gauss-Newton method for
    :math:`J_g` (the direction always lowers it to first order), and Newton's method on
    :math:`\\nabla L = 0` once :math:`\\mu` is small. A run stops once :math:`J_g \\le` ``tol``.

    Args:
        loss_fn: as in :func:`ensemble_gradient_descent`.
        theta: ``(R, P)`` starting weights (finite).
        tol, max_steps, damping: the :math:`J_g` tolerance, the accepted-step cap, the initial
            relative damping.
        hessian_fn: ``hessian_fn(theta_active, index)`` -> ``(len(index), P, P)`` exact
            Hessians (a closed form for a known architecture); ``None``:
            :func:`ensemble_hessians` of ``loss_fn``.
    """
    if not tol > 0 or max_steps < 1 or not damping > 0:
        raise InputError(
            f"tol and damping must be > 0 and max_steps >= 1; got tol={tol!r}, "
            f"damping={damping!r}, max_steps={max_steps!r}"
        )
    theta = theta.detach().clone()
    R = theta.shape[0]
    steps = torch.zeros(R, dtype=torch.int64)
    stop = torch.full((R,), -1, dtype=torch.int64)
    loss = torch.full((R,), float("nan"), dtype=theta.dtype)
    jg = torch.full((R,), float("nan"), dtype=theta.dtype)
    mu = torch.full((R,), float("nan"), dtype=theta.dtype)
    active = torch.arange(R)
    step = 0
    while active.numel():
        idx = active
        value, j = _jg(_bind(loss_fn, idx), theta[idx])
        loss[idx], jg[idx] = value, j
        finite = torch.isfinite(value) & torch.isfinite(j)
        code = torch.where(~finite, 3, torch.where(j <= tol, 0, 1 if step >= max_steps else -1))
        stop[idx] = code
        idx, j = idx[code < 0], j[code < 0]
        if not idx.numel():
            break
        th = theta[idx]
        _, g = _loss_grad(_bind(loss_fn, idx), th)
        if hessian_fn is None:
            hess = ensemble_hessians(_bind(loss_fn, idx), th)
        else:
            hess = hessian_fn(th, idx)
        lam, vecs = torch.linalg.eigh(hess)
        coef = (vecs.transpose(1, 2) @ g.unsqueeze(2)).squeeze(2)
        scale = lam.abs().amax(1) ** 2
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        m = mu[idx]
        m = torch.where(torch.isnan(m), damping * scale, m)
        accepted = torch.zeros(idx.numel(), dtype=torch.bool)
        pending = m < 1e20 * scale
        while pending.any():
            p = pending.nonzero().squeeze(1)
            trial = th[p] - (
                vecs[p] @ (lam[p] * coef[p] / (lam[p] ** 2 + m[p, None])).unsqueeze(2)
            ).squeeze(2)
            _, jt = _jg(_bind(loss_fn, idx[p]), trial)
            ok = jt < j[p]
            good = p[ok]
            th[good] = trial[ok]
            accepted[good] = True
            m[good] = torch.maximum(m[good] / 10, 1e-30 * scale[good])
            bad = p[~ok]
            m[bad] = m[bad] * 8
            pending = torch.zeros_like(pending)
            pending[bad] = m[bad] < 1e20 * scale[bad]
        theta[idx[accepted]] = th[accepted]
        mu[idx] = m
        steps[idx[accepted]] += 1
        stop[idx[~accepted]] = 2
        active = idx[accepted]
        step += 1
    return EnsembleDescent(theta, loss, jg, steps, stop)
