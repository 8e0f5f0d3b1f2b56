"""Full-batch training to convergence: gradient descent on L with a gradient-norm or loss stop
(papers 001 and 003), and descent on :math:`J_g = \\|\\nabla L\\|^2` towards critical points
(paper 001 sec. 6.4, spec sec. 2.8)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call

from curvscope.errors import InputError, NonFiniteError
from curvscope.persistence import savable
from curvscope.training.loop import Callback

__all__ = ["DescentResult", "grad_norm_descent", "gradient_descent"]

StopReason = Literal["grad_tol", "loss_tol", "max_steps", "stalled"]


@savable
@dataclass(frozen=True)
class DescentResult:
    """The outcome of :func:`gradient_descent` or :func:`grad_norm_descent`.

    Attributes:
        steps: accepted steps taken.
        loss: L at the final weights (the model is left there).
        grad_norm: :math:`\\|\\nabla L\\|` at the final weights.
        stop_reason: ``"grad_tol"`` (gradient small enough), ``"loss_tol"`` (loss level
            reached), ``"max_steps"`` (the step cap) or ``"stalled"`` (J_g descent could not
            decrease J_g any more).
        method: ``"gd"`` (on L), ``"jg_gd"`` or ``"jg_newton"`` (on J_g).
        history: records ``{"step", "loss", "grad_norm"}`` every ``record_every`` steps (and
            the last), plus the callbacks' records (``"name"`` key).
        num_hvps: Hessian-vector products used (J_g descent; 0 for GD on L).
    """

    steps: int
    loss: float
    grad_norm: float
    stop_reason: StopReason
    method: str
    history: list[dict[str, Any]] = field(repr=False)
    num_hvps: int = 0

    @property
    def converged(self) -> bool:
        """Whether a tolerance (not the step cap or a stall) ended the run."""
        return self.stop_reason in ("grad_tol", "loss_tol")


class _Objective:
    """L(theta) of a model on a full batch, with theta one flat vector (operator order)."""

    def __init__(self, model: nn.Module, loss_fn: Callable, inputs: Any, targets: Any) -> None:
        self.model, self.loss_fn, self.inputs, self.targets = model, loss_fn, inputs, targets
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not self.named:
            raise InputError("the model has no trainable parameters; nothing to descend on")
        self.shapes = [p.shape for _, p in self.named]
        self.sizes = [p.numel() for _, p in self.named]

    def theta(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for _, p in self.named])

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, self.sizes)
        params = {n: c.view(s) for (n, _), c, s in zip(self.named, chunks, self.shapes)}
        return self.loss_fn(functional_call(self.model, params, (self.inputs,)), self.targets)

    def store(self, theta: torch.Tensor) -> None:
        with torch.no_grad():
            for (_, p), c in zip(self.named, torch.split(theta, self.sizes)):
                p.copy_(c.view_as(p))


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    bad = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
    if bad or not value > 0 or (not integer and not math.isfinite(value)):
        kind = "an integer >= 1" if integer else "a finite number > 0"
        raise InputError(f"{name} must be {kind}, got {value!r}")


def gradient_descent(
    model: nn.Module,
    loss_fn: Callable,
    inputs: Any,
    targets: Any,
    *,
    lr: float,
    max_steps: int,
    grad_tol: float = 0.0,
    loss_tol: float | None = None,
    record_every: int = 1,
    callbacks: Sequence[Callback] = (),
) -> DescentResult:
    """Full-batch gradient descent :math:`\\theta \\leftarrow \\theta - \\eta \\nabla L(\\theta)`
    until :math:`\\|\\nabla L\\| \\le` ``grad_tol``, :math:`L \\le` ``loss_tol`` or
    ``max_steps`` steps ("GD to convergence" of papers 001 and 003).

    The model's trainable parameters are updated in place and left at the last iterate.
    Callbacks with ``unit="step"`` run every ``every`` steps (their records go into the
    history); ``unit="epoch"`` ones are treated the same (one full batch is one epoch).

    Args:
        model, loss_fn: the network and a mean-over-samples loss ``loss_fn(model(x), y)``.
        inputs, targets: the whole training set.
        lr: the step size eta.
        max_steps: the step cap.
        grad_tol: stop once the gradient norm is at most this.
        loss_tol: stop once the loss is at most this (e.g. ``u * L_0``, spec 2.8 (i)).
        record_every: history interval in steps.
        callbacks: measurements during training.

    Example:
        >>> import torch
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Linear(3, 1).double()
        >>> x, y = torch.randn(20, 3).double(), torch.randn(20, 1).double()
        >>> r = gradient_descent(net, torch.nn.MSELoss(), x, y, lr=0.3, max_steps=5000,
        ...                      grad_tol=1e-10)
        >>> r.stop_reason
        'grad_tol'
    """
    _check_positive("lr", lr)
    _check_positive("max_steps", max_steps, integer=True)
    _check_positive("record_every", record_every, integer=True)
    if loss_tol is not None and not isinstance(loss_tol, (int, float)):
        raise InputError(f"loss_tol must be a number or None, got {loss_tol!r}")
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise InputError("the model has no trainable parameters; nothing to descend on")
    history: list[dict[str, Any]] = []
    step = 0
    while True:
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params)
        value = float(loss.detach())
        norm = float(torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)))
        if not (math.isfinite(value) and math.isfinite(norm)):
            raise NonFiniteError(
                f"gradient descent diverged: loss {value}, gradient norm {norm} at step {step} "
                f"(lr {lr:g}); lower lr"
            )
        reason: StopReason | None = None
        if norm <= grad_tol:
            reason = "grad_tol"
        elif loss_tol is not None and value <= loss_tol:
            reason = "loss_tol"
        elif step >= max_steps:
            reason = "max_steps"
        if step % record_every == 0 or reason is not None:
            history.append({"step": step, "loss": value, "grad_norm": norm})
        for cb in callbacks:
            if step % cb.every == 0:
                record = cb._run(model, epoch=step, step=step, loss=value, device=params[0].device)
                if record is not None:
                    history.append(record)
        if reason is not None:
            return DescentResult(step, value, norm, reason, "gd", history)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
        step += 1


def grad_norm_descent(
    model: nn.Module,
    loss_fn: Callable,
    inputs: Any,
    targets: Any,
    *,
    tol: float = 1e-10,
    max_steps: int = 100,
    method: Literal["newton", "gd"] = "newton",
    lr: float = 1.0,
    damping: float = 1e-6,
    record_every: int = 1,
) -> DescentResult:
    r"""Descend on :math:`J_g(\theta) = \|\nabla L(\theta)\|^2` until :math:`J_g \le` ``tol``.

    .. math:: \nabla J_g = 2 H \nabla L \quad \text{(one Hessian-vector product)}

    Minimising :math:`J_g` is attracted to critical points of any index (minima and saddles),
    which is how paper 001 (sec. 6.4) samples them. Two methods:

    - ``"newton"`` (default): Levenberg-Marquardt on the residual :math:`\nabla L`, the
      Gauss-Newton method for :math:`J_g`:
      :math:`d = -(H^2 + \mu I)^{-1} H \nabla L` with the exact Hessian built from P
      Hessian-vector products and eigendecomposed; :math:`\mu` shrinks after a step that
      lowers :math:`J_g` and grows (retrying the step) after one that does not. Near a
      non-degenerate critical point it is Newton's method on :math:`\nabla L = 0` and
      converges quadratically, so :math:`J_g < 10^{-10}` in float64 takes a handful of steps.
      For P up to a few thousand (it holds the dense P x P Hessian).
    - ``"gd"``: the paper's plain gradient descent :math:`\theta \leftarrow \theta - t \cdot 2H\nabla L`
      with an Armijo backtracking line search starting from ``lr``. Faithful but slow:
      :math:`J_g` squares the Hessian's condition number (spec 2.8 measured a median
      :math:`J_g \approx 10^{-4}` after 16k Adam steps), so use it where fidelity matters.

    Run in float64: :math:`J_g` below ~1e-10 is at the float32 rounding floor. The model is
    left at the last accepted iterate.

    Args:
        model, loss_fn, inputs, targets: as in :func:`gradient_descent`.
        tol: stop once :math:`J_g \le` ``tol``.
        max_steps: accepted-step cap.
        method: ``"newton"`` or ``"gd"``.
        lr: initial trial step of the ``"gd"`` line search.
        damping: initial :math:`\mu` of ``"newton"``, relative to :math:`\lambda_{max}^2`.
        record_every: history interval in steps.

    Returns:
        A :class:`DescentResult`; ``stop_reason`` ``"grad_tol"`` when :math:`J_g \le` ``tol``.
    """
    _check_positive("tol", tol)
    _check_positive("max_steps", max_steps, integer=True)
    _check_positive("lr", lr)
    _check_positive("damping", damping)
    _check_positive("record_every", record_every, integer=True)
    if method not in ("newton", "gd"):
        raise InputError(f"method must be 'newton' or 'gd', got {method!r}")
    obj = _Objective(model, loss_fn, inputs, targets)
    theta = obj.theta()
    hvps = 0

    def grad_graph(th: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        th = th.detach().requires_grad_(True)
        loss = obj.loss(th)
        (g,) = torch.autograd.grad(loss, th, create_graph=True)
        return th, loss, g

    def jg(th: torch.Tensor) -> float:
        th = th.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(obj.loss(th), th)
        return float(g @ g)

    history: list[dict[str, Any]] = []
    mu: float | None = None
    step = 0
    reason: StopReason
    while True:
        th, loss, g = grad_graph(theta)
        value, j = float(loss.detach()), float(g.detach() @ g.detach())
        if not (math.isfinite(value) and math.isfinite(j)):
            raise NonFiniteError(
                f"J_g descent reached a non-finite loss {value} or J_g {j} at step {step}; "
                "start from finite weights (discard runs whose first GD phase diverged)"
            )
        if j <= tol:
            reason = "grad_tol"
        elif step >= max_steps:
            reason = "max_steps"
        else:
            reason = "stalled"  # provisional; cleared when a step is accepted
        if step % record_every == 0 or reason != "stalled":
            history.append({"step": step, "loss": value, "grad_norm": math.sqrt(j)})
        if reason != "stalled":
            break
        gd = g.detach()
        accepted = False
        if method == "newton":
            eye = torch.eye(th.numel(), dtype=th.dtype, device=th.device)
            rows = [torch.autograd.grad(g, th, e, retain_graph=True)[0] for e in eye]
            hvps += th.numel()
            hess = torch.stack(rows)
            lam, vecs = torch.linalg.eigh((hess + hess.T) / 2)
            coef = vecs.T @ gd
            scale = float(lam.abs().max()) ** 2 or 1.0
            mu = damping * scale if mu is None else mu
            while mu < 1e20 * scale:
                trial = theta - vecs @ (lam * coef / (lam**2 + mu))
                if jg(trial) < j:
                    theta, mu, accepted = trial.detach(), max(mu / 10, 1e-30 * scale), True
                    break
                mu *= 8
        else:
            (direction,) = torch.autograd.grad(g, th, 2 * gd)
            hvps += 1
            slope = float(direction @ direction)
            t = lr
            while t > 1e-30:
                trial = theta - t * direction
                if jg(trial) <= j - 1e-4 * t * slope:
                    theta, accepted = trial.detach(), True
                    break
                t /= 2
        if not accepted:
            history.append({"step": step, "loss": value, "grad_norm": math.sqrt(j)})
            break
        step += 1
    obj.store(theta)
    return DescentResult(step, value, math.sqrt(j), reason, f"jg_{method}", history, num_hvps=hvps)
