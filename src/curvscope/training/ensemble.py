"""An ensemble trainer: R networks of one architecture trained at once in one vectorised
computation (``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``, or, for MLPs,
each layer's weights stacked and run as one batched matrix product: ``_stacked.py``).

Each member has its own seed (initial weights and, for SGD, its shuffles) and optionally its own
data; the result equals a loop of R single runs with the same seeds (checked to 1e-12 in float64
by ``tests/test_training_ensemble.py``) and is more than 10x faster for small nets on a CPU
(``benchmarks/ensemble.py``): one batched pass replaces R small ones whose cost is overhead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from curvscope.errors import InputError, NonFiniteError
from curvscope.persistence import savable
from curvscope.training._stacked import member_threads, member_workers, stacked_plan, stacked_step

__all__ = ["EnsembleResult", "ensemble_order", "train_ensemble"]


def ensemble_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The sample order of member ``seed`` in ``epoch`` (SGD): a permutation from
    ``(seed, epoch)`` alone, as :func:`~curvscope.training.train` draws its orders."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, epoch, 0x7A1]).generate_state(1)
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(state[0])))


@savable
@dataclass(frozen=True)
class EnsembleResult:
    """The outcome of :func:`train_ensemble`.

    Attributes:
        parameters: name -> the R members' final weights stacked on a leading axis.
        losses: ``(R, steps)`` loss of each member before each step (full batch for GD, the
            minibatch for SGD).
        seeds: the members' seeds, in order.
        steps: steps taken by every member.
        path: how the members were run: ``"stacked"`` (MLP weights stacked, batched matrix
            products) or ``"vmap"`` (any model, ``torch.func.vmap``).
        member_steps: with ``grad_tol``, the GD steps each member took before it stopped
            (``None`` without ``grad_tol``: every member took ``steps``).
        grad_norms: with ``grad_tol``, ``(R,)`` each member's ‖∇L‖ at its final weights.
        stop_reasons: with ``grad_tol``, ``"grad_tol"`` or ``"max_steps"`` per member.
    """

    parameters: dict[str, torch.Tensor] = field(repr=False)
    losses: torch.Tensor = field(repr=False)
    seeds: tuple[int, ...]
    steps: int
    path: Literal["stacked", "vmap"] = "vmap"
    member_steps: tuple[int, ...] | None = None
    grad_norms: torch.Tensor | None = field(default=None, repr=False)
    stop_reasons: tuple[str, ...] | None = None

    def member(self, factory: Callable[[int], nn.Module], r: int) -> nn.Module:
        """Member ``r`` as a module: ``factory(seeds[r])`` with the trained weights loaded."""
        model = factory(self.seeds[r])
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.parameters:
                    p.copy_(self.parameters[name][r])
        return model


def train_ensemble(
    factory: Callable[[int], nn.Module],
    seeds: Sequence[int],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lr: float,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    momentum: float = 0.0,
    per_member_data: bool = False,
    path: Literal["auto", "stacked", "vmap"] = "auto",
    grad_tol: float | None = None,
    record_every: int = 1,
) -> EnsembleResult:
    """Train ``len(seeds)`` networks ``factory(seed)`` at once with (momentum) GD or SGD.

    Full-batch GD (``batch_size=None``): ``steps`` steps on the whole data. SGD
    (``batch_size=B``): ``epochs`` epochs; member r visits its samples in the order
    :func:`ensemble_order` ``(seeds[r], epoch, N)`` in batches of B (the last one ragged).
    The update is torch's SGD without weight decay:
    :math:`b \\leftarrow \\mu b + g,\\ \\theta \\leftarrow \\theta - \\eta b`.

    Args:
        factory: builds a member from its seed (it must seed its own initialisation, e.g.
            ``lambda s: ModelSpec(...).build(seed=s)``); every member has the same architecture.
        seeds: one per member.
        inputs, targets: ``(N, ...)`` shared by all members, or ``(R, N, ...)`` with
            ``per_member_data=True`` (each member its own data set, equal shapes).
        loss_fn: a mean-over-samples loss usable under ``vmap`` (``nn.MSELoss()``,
            ``nn.CrossEntropyLoss()``, ...).
        lr, momentum: the SGD step size and momentum.
        steps: GD steps (full batch only).
        epochs: SGD epochs (with ``batch_size``).
        batch_size: ``None`` for full-batch GD.
        per_member_data: whether ``inputs``/``targets`` carry a leading member axis.
        path: ``"auto"`` runs an MLP (``nn.Sequential`` or curvscope's ``MLP`` of
            ``nn.Linear``, ``nn.Flatten`` and elementwise activations) on the fast
            ``"stacked"`` path, any other model on the ``"vmap"`` path; both equal the loop of
            single runs. ``"stacked"`` raises where it does not apply. The result says which.
        grad_tol: full-batch GD only: member r stops (its weights frozen, no further update) at
            the first step t with :math:`\\|\\nabla L_r(\\theta_t)\\| \\le` ``grad_tol``, or at
            t = ``steps`` (then ``steps`` is a cap), exactly as
            :func:`~curvscope.training.gradient_descent` with ``max_steps=steps``; stopped
            members leave the batch, so the cost falls as they finish. The result holds each
            member's steps, final gradient norm and stop reason.
        record_every: keep the losses of every ``record_every``-th step only (a stopped
            member's loss stays its final loss).

    Models must not update buffers in their forward pass (no BatchNorm in train mode) nor
    draw random numbers (no dropout): ``vmap`` runs them once for all members.

    Example:
        >>> import torch
        >>> def net(seed):
        ...     torch.manual_seed(seed)
        ...     return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
        ...                                torch.nn.Linear(4, 1)).double()
        >>> x, y = torch.randn(10, 3).double(), torch.randn(10, 1).double()
        >>> r = train_ensemble(net, range(4), x, y, loss_fn=torch.nn.MSELoss(), lr=0.1, steps=20)
        >>> r.losses.shape, r.path
        (torch.Size([4, 20]), 'stacked')
    """
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InputError(f"seeds must be a non-empty sequence of integers, got {seeds!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise InputError(f"momentum must be in [0, 1), got {momentum!r}")
    full_batch = batch_size is None
    count, what = (steps, "steps") if full_batch else (epochs, "epochs")
    other = epochs if full_batch else steps
    if other is not None or isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(
            f"give {what} (an integer >= 1) and not "
            f"{'epochs' if full_batch else 'steps'}: full-batch GD (batch_size=None) runs "
            f"`steps` steps, SGD (batch_size=B) runs `epochs` epochs; got steps={steps!r}, "
            f"epochs={epochs!r}, batch_size={batch_size!r}"
        )
    if not full_batch and (not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}")
    R = len(seeds)
    lead = 1 if per_member_data else 0
    if per_member_data and (inputs.shape[0] != R or targets.shape[0] != R):
        raise InputError(
            f"per_member_data=True needs inputs and targets of shape (R, N, ...) with R = "
            f"{R} seeds, got {tuple(inputs.shape)} and {tuple(targets.shape)}; stack one data "
            "set per member, or pass shared (N, ...) data with per_member_data=False"
        )
    n = inputs.shape[lead]
    if targets.shape[lead] != n:
        raise InputError(
            f"inputs hold {n} samples but targets {targets.shape[lead]}; pass one target per input"
        )
    if grad_tol is not None and not (
        full_batch
        and isinstance(grad_tol, (int, float))
        and math.isfinite(grad_tol)
        and grad_tol >= 0
    ):
        raise InputError(
            f"grad_tol must be a finite number >= 0 with full-batch GD (batch_size=None), got "
            f"grad_tol={grad_tol!r}, batch_size={batch_size!r}"
        )
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise InputError(f"record_every must be an integer >= 1, got {record_every!r}")
    if path not in ("auto", "stacked", "vmap"):
        raise InputError(f"path must be 'auto', 'stacked' or 'vmap', got {path!r}")
    models = [factory(s) for s in seeds]
    ops = stacked_plan(models[0], inputs.dim() - lead - 1)
    if path == "stacked" and isinstance(ops, str):
        raise InputError(f"path='stacked' does not apply: {ops}; use path='auto' or 'vmap'")
    params, buffers = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    names = list(params)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_of(p: dict[str, Any], b: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> Any:
        return loss_fn(functional_call(base, (p, b), (x,)), y)

    def vmap_step(
        p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, mapped: int | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        # vmap for the forward pass only, then one reverse pass of the summed losses: member r's
        # loss depends on member r's weights alone, so d(sum)/d(theta_r) = dL_r/d(theta_r)
        # exactly, at the cost of one batched backward (no per-call torch.func.grad overhead).
        leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        loss = vmap(loss_of, in_dims=(0, 0, mapped, mapped))(leaves, buffers, x, y)
        grads = torch.autograd.grad(loss.sum(), [leaves[k] for k in names])
        return list(grads), loss.detach()

    used: Literal["stacked", "vmap"] = "vmap"
    workers = 1
    if path != "vmap" and not isinstance(ops, str):
        used, workers = "stacked", member_workers(ops, params, inputs)
    run = _descend_to_tol if grad_tol is not None else _fixed_steps
    options = _RunOptions(
        names, per_member_data, lr, momentum, count, batch_size, n, grad_tol, record_every, used
    )
    if workers == 1:
        step_fn = vmap_step if used == "vmap" else stacked_step(ops, loss_fn, names)
        result, _ = run(step_fn, params, seeds, inputs, targets, buffers, options)
    else:
        # Members are independent: each slice is a whole run on its own thread, with its own
        # step function and buffers (no exchange between steps); the slices together equal
        # the unsplit run exactly. Weights were drawn above, on this thread, in seed order.
        cuts = [R * c // workers for c in range(workers + 1)]

        def part(c: int) -> tuple[EnsembleResult, torch.Tensor]:
            sl = slice(cuts[c], cuts[c + 1])
            own = (lambda t: t[sl]) if per_member_data else (lambda t: t)
            return run(
                stacked_step(ops, loss_fn, names),
                {k: v[sl] for k, v in params.items()},
                seeds[sl], own(inputs), own(targets), {}, options,
            )  # fmt: skip

        with member_threads(workers) as pool:
            assert pool is not None  # workers > 1
            jobs = [pool.submit(part, c) for c in range(1, workers)]
            parts = [part(0)] + [job.result() for job in jobs]  # slice 0 on this thread
        result = _joined(parts)
    if grad_tol is None and not torch.isfinite(result.losses[:, -1]).all():
        bad = [seeds[r] for r in range(R) if not torch.isfinite(result.losses[r, -1])]
        raise NonFiniteError(
            f"the loss of members with seeds {bad[:5]} became non-finite; lower lr"
        )
    return result


@dataclass(frozen=True)
class _RunOptions:
    """What every slice of an ensemble run shares (see :func:`train_ensemble`)."""

    names: list[str]
    per_member_data: bool
    lr: float
    momentum: float
    count: int  # GD steps (the cap with grad_tol) or SGD epochs
    batch_size: int | None
    n: int  # samples per member
    grad_tol: float | None
    record_every: int
    used: Literal["stacked", "vmap"]


def _joined(parts: list[tuple[EnsembleResult, torch.Tensor]]) -> EnsembleResult:
    """One result from the results of consecutive slices of the members.

    With ``grad_tol`` a slice stops recording once its own members have all stopped; the
    unsplit run would go on recording their final losses (a stopped member's loss stays its
    final loss), so the shorter histories are continued with each slice's final losses.
    """
    results = [r for r, _ in parts]
    width = max(r.losses.shape[1] for r in results)
    losses = torch.cat(
        [
            torch.cat([r.losses, last.unsqueeze(1).expand(-1, width - r.losses.shape[1])], 1)
            for r, last in parts
        ]
    )
    first = results[0]
    return EnsembleResult(
        {k: torch.cat([r.parameters[k] for r in results]) for k in first.parameters},
        losses,
        tuple(s for r in results for s in r.seeds),
        max(r.steps for r in results),
        first.path,
        member_steps=None
        if first.member_steps is None
        else tuple(s for r in results for s in r.member_steps or ()),
        grad_norms=None
        if first.grad_norms is None
        else torch.cat([r.grad_norms for r in results if r.grad_norms is not None]),
        stop_reasons=None
        if first.stop_reasons is None
        else tuple(s for r in results for s in r.stop_reasons or ()),
    )


def _fixed_steps(
    step_fn: Callable[..., tuple[list[torch.Tensor], torch.Tensor]],
    params: dict[str, torch.Tensor],
    seeds: tuple[int, ...],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    buffers: dict[str, torch.Tensor],
    o: _RunOptions,
) -> tuple[EnsembleResult, torch.Tensor]:
    """``count`` GD steps, or ``count`` SGD epochs, for the members ``seeds`` (weights
    ``params``, updated in place); returns the result and the members' last losses."""
    R = len(seeds)
    if o.batch_size is None:
        plan: list[torch.Tensor | None] = [None] * o.count
    else:
        plan = []
        for epoch in range(o.count):
            orders = torch.stack([ensemble_order(s, epoch, o.n) for s in seeds])
            plan += [orders[:, i : i + o.batch_size] for i in range(0, o.n, o.batch_size)]
    bufs: list[torch.Tensor] | None = None
    losses = []
    rows = torch.arange(R).unsqueeze(1)
    loss = torch.empty(0)
    for t, idx in enumerate(plan):
        if idx is None:
            x, y, mapped = inputs, targets, 0 if o.per_member_data else None
        else:
            x = inputs[rows, idx] if o.per_member_data else inputs[idx]
            y = targets[rows, idx] if o.per_member_data else targets[idx]
            mapped = 0
        g, loss = step_fn(params, x, y, mapped)
        if t % o.record_every == 0:
            losses.append(loss)
        if o.momentum:
            if bufs is None:
                bufs = [t.clone() for t in g]
            else:
                bufs = [b.mul_(o.momentum).add_(t) for b, t in zip(bufs, g)]
            g = bufs
        for k, t_ in zip(o.names, g):  # in place: the ensemble's own stacked copies
            params[k].add_(t_, alpha=-o.lr)
    history = torch.stack(losses, dim=1)
    return EnsembleResult(params, history, seeds, len(plan), o.used), loss


def _descend_to_tol(
    step_fn: Callable[..., tuple[list[torch.Tensor], torch.Tensor]],
    params: dict[str, torch.Tensor],
    seeds: tuple[int, ...],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    buffers: dict[str, torch.Tensor],
    o: _RunOptions,
) -> tuple[EnsembleResult, torch.Tensor]:
    """Full-batch GD with per-member stopping: only the members still running are computed
    (their weights, momentum buffers and data compacted as members stop). Returns the result
    and every member's final loss."""
    assert o.grad_tol is not None
    names, per_member_data, lr, momentum = o.names, o.per_member_data, o.lr, o.momentum
    cap, grad_tol, record_every = o.count, o.grad_tol, o.record_every
    R = len(seeds)
    final = {k: v.clone() for k, v in params.items()}
    active = torch.arange(R)
    member_steps = torch.full((R,), cap, dtype=torch.long)
    norms = torch.zeros(R, dtype=torch.float64)
    reasons = ["max_steps"] * R
    last = torch.zeros(R, dtype=next(iter(params.values())).dtype)
    history: list[torch.Tensor] = []
    bufs: list[torch.Tensor] | None = None
    x, y = inputs, targets
    for t in range(cap + 1):
        if per_member_data:
            g, loss = step_fn(params, x, y, 0)
        else:
            g, loss = step_fn(params, inputs, targets, None)
        if not torch.isfinite(loss).all():
            bad = [seeds[int(active[i])] for i in torch.nonzero(~torch.isfinite(loss)).flatten()]
            raise NonFiniteError(
                f"the loss of members with seeds {bad[:5]} became non-finite at step {t}; lower lr"
            )
        norm = torch.linalg.vector_norm(torch.cat([v.flatten(1) for v in g], 1), dim=1)
        done = norm <= grad_tol
        if t == cap:
            done = torch.ones_like(done)
        stop = bool(done.any())
        if stop or t % record_every == 0:
            last[active] = loss
        if t % record_every == 0:
            history.append(last.clone())
        if stop:
            idx = active[done]
            for k in names:
                final[k][idx] = params[k][done]
            member_steps[idx] = t
            norms[idx] = norm[done].to(torch.float64)
            for i in idx.tolist():
                reasons[i] = "grad_tol" if t < cap or norms[i] <= grad_tol else "max_steps"
            keep = ~done
            active = active[keep]
            if not len(active):
                break
            params = {k: v[keep] for k, v in params.items()}
            g = [v[keep] for v in g]
            if bufs is not None:
                bufs = [b[keep] for b in bufs]
            if per_member_data:
                x, y = x[keep], y[keep]
            buffers.update({k: v[keep] for k, v in buffers.items()})
        if momentum:
            bufs = (
                [t_.clone() for t_ in g]
                if bufs is None
                else [b.mul_(momentum).add_(v) for b, v in zip(bufs, g)]
            )
            g = bufs
        for k, v in zip(names, g):
            params[k].add_(v, alpha=-lr)
    result = EnsembleResult(
        final,
        torch.stack(history, dim=1),
        seeds,
        int(member_steps.max()),
        o.used,
        member_steps=tuple(int(s) for s in member_steps),
        grad_norms=norms,
        stop_reasons=tuple(reasons),
    )
    return result, last
