"""The ensemble trainer's fast path for MLPs: each ``nn.Linear`` of the R members stacked into
one ``(R, out, in)`` weight and run as one ``torch.baddbmm`` / ``torch.bmm`` on ``(R, N, in)``
activations, elementwise activations applied to the stacked activations as they are (float64
``nn.Tanh`` on CPU through :class:`_Tanh64`, a vectorised equivalent).

``vmap`` costs a fixed overhead per operation; an MLP needs only a handful of batched matrix
products, so running them directly removes that overhead (``benchmarks/ensemble.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import vmap

from curvscope.models.mlp import MLP

# Activations that act on each entry alone (no parameters, no buffers, no randomness): applying
# them to the stacked (R, N, h) activations gives each member exactly its own result.
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.Tanh,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.LogSigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Hardtanh,
    nn.Hardsigmoid,
    nn.Hardswish,
)


@dataclass(frozen=True)
class _Linear:
    weight: str
    bias: str | None


@dataclass(frozen=True)
class _Flatten:
    pass


@dataclass(frozen=True)
class _Elementwise:
    module: nn.Module


Op = _Linear | _Flatten | _Elementwise


class _Tanh64(torch.autograd.Function):
    """``tanh`` for float64 CPU tensors from ``torch.expm1``, which is vectorised where
    float64 ``torch.tanh`` is not (~4 ns vs ~1.3 ns an element here).

    ``tanh(x) = -t / (2 + t)`` with ``t = expm1(-2x)``: within 3 ulps (relative) of
    ``torch.tanh`` everywhere, no cancellation near 0. The backward is
    torch's own (``tanh_backward``: ``grad * (1 - y**2)`` from the output ``y``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # tanh(+-20) rounds to +-1 in float64; the clamp keeps expm1 finite for x < -355
        t = torch.mul(x, -2).clamp_(-40.0, 40.0).expm1_()
        y = t.div_(torch.rsub(t, -2))  # -t / (2 + t)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def _elementwise(module: nn.Module, h: torch.Tensor) -> torch.Tensor:
    if type(module) is nn.Tanh and h.dtype == torch.float64 and h.device.type == "cpu":
        return _Tanh64.apply(h)
    return module(h)


def stacked_plan(model: nn.Module, sample_ndim: int) -> list[Op] | str:
    """The layers of ``model`` as stacked operations, or why the fast path does not apply.

    Applies to an ``nn.Sequential`` (nested ones too) or a curvscope :class:`MLP` made of
    ``nn.Linear``, ``nn.Flatten()`` and the activations in :data:`ELEMENTWISE`, with no buffers,
    no hooks and every parameter trainable, on samples that are vectors (or flattened first).
    Exact types only: a subclass may override ``forward``.
    """
    ops: list[Op] = []

    def walk(module: nn.Module, prefix: str) -> str | None:
        if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
            return f"{prefix or 'the model'} has hooks"
        kind = type(module)
        if kind is MLP:
            return walk(module.net, f"{prefix}net.")
        if kind is nn.Sequential:
            for name, child in module.named_children():
                reason = walk(child, f"{prefix}{name}.")
                if reason:
                    return reason
            return None
        if kind is nn.Linear:
            ops.append(
                _Linear(f"{prefix}weight", f"{prefix}bias" if module.bias is not None else None)
            )
            return None
        if kind is nn.Flatten and module.start_dim == 1 and module.end_dim == -1:
            ops.append(_Flatten())
            return None
        if kind in ELEMENTWISE:
            ops.append(_Elementwise(module))
            return None
        return f"{prefix.rstrip('.') or 'the model'} is a {kind.__name__}"

    reason = walk(model, "")
    if reason:
        return f"{reason}; the stacked path takes nn.Sequential/MLP of nn.Linear, nn.Flatten and elementwise activations"
    if any(True for _ in model.buffers()):
        return "the model has buffers"
    if not all(p.requires_grad for p in model.parameters()):
        return "the model has frozen parameters"
    if not any(isinstance(op, _Linear) for op in ops):
        return "the model has no nn.Linear layer"
    ndim = sample_ndim
    for op in ops:
        if isinstance(op, _Flatten):
            ndim = 1
        elif isinstance(op, _Linear) and ndim != 1:
            return f"a sample has {ndim} dimensions at an nn.Linear layer (needs 1; flatten first)"
    return ops


def stacked_forward(
    ops: list[Op], params: dict[str, torch.Tensor], x: torch.Tensor, *, shared: bool
) -> torch.Tensor:
    """The R members' outputs ``(R, N, out)`` from inputs ``(N, ...)`` (``shared``, one data
    set for all) or ``(R, N, ...)``."""
    h = x
    for op in ops:
        if isinstance(op, _Flatten):
            h = h.flatten(1 if shared else 2)
        elif isinstance(op, _Elementwise):
            h = _elementwise(op.module, h)
        else:
            w = params[op.weight].transpose(1, 2)
            if shared:
                # a copy: baddbmm on a stride-0 (expanded) batch is several times slower
                h = h.expand(w.shape[0], *h.shape).contiguous()
                shared = False
            if op.bias is None:
                h = torch.bmm(h, w)
            else:
                h = torch.baddbmm(params[op.bias].unsqueeze(1), h, w)
    return h


def member_losses(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    out: torch.Tensor,
    y: torch.Tensor,
    mapped: int | None,
) -> torch.Tensor:
    """``(R,)``: ``loss_fn(out[r], y[r])`` (``y`` when shared) for every member r.

    ``nn.MSELoss()`` and ``nn.CrossEntropyLoss()`` (class labels, no class weights or label
    smoothing) are written out on the stacked outputs; any other loss runs under ``vmap``
    (cross-entropy under ``vmap`` costs ~20 ms a call: its batching rule loops).
    """
    R, N = out.shape[:2]
    per_member = y.shape if mapped is not None else (R, *y.shape)
    if type(loss_fn) is nn.MSELoss and loss_fn.reduction == "mean" and per_member == out.shape:
        # one fused kernel each way (mse_loss and its backward) instead of sub/pow/mul chains
        errors = nn.functional.mse_loss(out, y.expand_as(out), reduction="none")
        return errors.flatten(1).mean(1)
    if (
        type(loss_fn) is nn.CrossEntropyLoss
        and loss_fn.reduction == "mean"
        and loss_fn.weight is None
        and loss_fn.label_smoothing == 0
        and out.dim() == 3
        and not y.is_floating_point()
        and per_member == (R, N)
    ):
        labels = y.expand(R, N)
        per_sample = nn.functional.cross_entropy(
            out.flatten(0, 1),
            labels.flatten(),
            reduction="none",
            ignore_index=loss_fn.ignore_index,
        ).view(R, N)
        # the mean runs over the samples not ignored, as torch's reduction="mean"
        return per_sample.sum(1) / (labels != loss_fn.ignore_index).sum(1)
    return vmap(loss_fn, in_dims=(0, mapped))(out, y)


def stacked_step(
    ops: list[Op],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    names: list[str],
) -> Callable[
    [dict[str, torch.Tensor], torch.Tensor, torch.Tensor, int | None],
    tuple[list[torch.Tensor], torch.Tensor],
]:
    """A step function for the ensemble trainer: every member's loss and gradient."""

    def step(
        p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, mapped: int | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        out = stacked_forward(ops, leaves, x, shared=mapped is None)
        loss = member_losses(loss_fn, out, y, mapped)
        # member r's loss depends on member r's weights alone: d(sum)/d(theta_r) = dL_r/d(theta_r)
        grads = torch.autograd.grad(loss.sum(), [leaves[k] for k in names])
        return list(grads), loss.detach()

    return step
