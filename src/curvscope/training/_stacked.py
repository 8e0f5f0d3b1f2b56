"""The ensemble trainer's fast path for MLPs: each ``nn.Linear`` of the R members stacked into
one ``(R, out, in)`` weight and run as one ``torch.baddbmm`` / ``torch.bmm`` on ``(R, N, in)``
activations, elementwise activations applied to the stacked activations as they are (float64
``nn.Tanh`` on CPU through :class:`_Tanh64`, a vectorised equivalent).

``vmap`` costs a fixed overhead per operation; an MLP needs only a handful of batched matrix
products, so running them directly removes that overhead (``benchmarks/ensemble.py``).
MLPs of ``nn.Linear`` and tanh/ReLU/identity trained on MSE or cross-entropy skip autograd too:
:func:`manual_step` writes the backward out, runs the first layer of a shared input as one matrix
product for all members, and the products and tanh through numpy
(``benchmarks/results/ensemble_cpu.md``); any other MLP or loss takes the autograd step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
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


def _plain_cross_entropy(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    out: torch.Tensor,
    y: torch.Tensor,
    per_member: tuple[int, ...],
) -> bool:
    """Whether ``loss_fn`` on the stacked ``(R, N, classes)`` outputs is torch's mean
    cross-entropy on class labels, with no class weights or label smoothing (written out here)."""
    return (
        type(loss_fn) is nn.CrossEntropyLoss
        and loss_fn.reduction == "mean"
        and loss_fn.weight is None
        and loss_fn.label_smoothing == 0
        and out.dim() == 3
        and not y.is_floating_point()
        and per_member == tuple(out.shape[:2])
    )


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
    if _plain_cross_entropy(loss_fn, out, y, per_member):
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


# Activations whose derivative the hand-written backward takes from their output y:
# tanh' = 1 - y^2, relu' = [y > 0], identity' = 1.
_MANUAL_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.Tanh, nn.ReLU, nn.Identity)


@dataclass(frozen=True)
class _Layer:
    """One ``nn.Linear`` and the activations that follow it, for the hand-written backward."""

    weight: str
    bias: str | None
    activations: tuple[nn.Module, ...]


def manual_plan(ops: list[Op]) -> list[_Layer] | None:
    """``ops`` as layers for :func:`manual_step`, or ``None`` where it does not apply (an
    activation other than tanh/ReLU/identity, one before the first ``nn.Linear``, or two
    tanh/ReLU in a row: activations run in place and keep only their output)."""
    layers: list[_Layer] = []
    for op in ops:
        if isinstance(op, _Linear):
            layers.append(_Layer(op.weight, op.bias, ()))
        elif isinstance(op, _Elementwise):
            if not layers or type(op.module) not in _MANUAL_ACTIVATIONS:
                return None
            if type(op.module) is nn.Identity:
                continue
            last = layers[-1]
            if last.activations:
                return None
            layers[-1] = _Layer(last.weight, last.bias, (*last.activations, op.module))
        # a Flatten before the first Linear flattens the input; after it, samples are vectors
    return layers


def _activate_(module: nn.Module, h: torch.Tensor) -> None:
    """Apply ``module`` to ``h`` in place (``h`` dense, possibly transposed).

    float64/float32 ``tanh`` on CPU through numpy (SVML-vectorised where the CPU has AVX-512:
    ~1 ns an element against ~4 ns for torch's float64 tanh here; within 1 ulp of
    ``torch.tanh``, tested).
    """
    kind = type(module)
    if kind is nn.Tanh:
        if h.device.type == "cpu" and h.dtype in (torch.float64, torch.float32):
            a = h.numpy()
            np.tanh(a, out=a)
        else:
            h.tanh_()
    elif kind is nn.ReLU:
        h.relu_()


def _activation_backward(
    module: nn.Module, grad: torch.Tensor, y: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """``grad * f'(x)`` from the activation's output ``y``, written into ``out`` (may be
    ``grad`` itself): torch's own ``tanh_backward`` (``grad * (1 - y^2)``) and
    ``threshold_backward`` (``grad * [y > 0]``)."""
    kind = type(module)
    if kind is nn.Tanh:
        return torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out)
    if kind is nn.ReLU:
        return torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=out)
    return out.copy_(grad)


def _loss_and_grad(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    out: torch.Tensor,
    y: torch.Tensor,
    mapped: int | None,
    buffer: Callable[[str, tuple[int, ...], torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(R,)`` member losses and d(sum of them)/d(out), written out for ``nn.MSELoss()`` and
    ``nn.CrossEntropyLoss()`` (class labels, no class weights or label smoothing); ``None`` for
    any other loss.

    MSE, mean over M = N*k entries: L = sum (o - y)^2 / M, dL/do = 2 (o - y) / M.
    Cross-entropy, mean over the n_r samples not ignored: L = sum_i -log softmax(o_i)[y_i] / n_r,
    dL/do_i = (softmax(o_i) - onehot(y_i)) / n_r. The MSE gradient is written into
    ``buffer("loss", shape, like)``.
    """
    R, N = out.shape[:2]
    per_member = y.shape if mapped is not None else (R, *y.shape)
    if type(loss_fn) is nn.MSELoss and loss_fn.reduction == "mean" and per_member == out.shape:
        diff = torch.sub(out, y, out=buffer("loss", tuple(out.shape), out))
        M = diff[0].numel()
        flat = diff.view(R, 1, M)
        loss = torch.bmm(flat, flat.transpose(1, 2)).view(R).div_(M)
        return loss, diff.mul_(2.0 / M)
    if _plain_cross_entropy(loss_fn, out, y, per_member):
        labels = y.expand(R, N)
        valid = labels != loss_fn.ignore_index
        count = valid.sum(1)
        logp = torch.log_softmax(out, dim=2)
        picked = logp.gather(2, labels.clamp(min=0).unsqueeze(2)).squeeze(2)
        loss = -(picked * valid).sum(1) / count
        grad = logp.exp_()
        grad.scatter_add_(
            2, labels.clamp(min=0).unsqueeze(2), -torch.ones_like(picked).unsqueeze(2)
        )
        grad.mul_((valid.to(grad.dtype) / count.unsqueeze(1).to(grad.dtype)).unsqueeze(2))
        return loss, grad
    return None


# batched products through torch (not numpy) when torch runs more than one thread
_BMM_THREADED = True


def _matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """The (batched) product ``a @ b`` (into ``out`` if given; views of any strides).

    On CPU in float32/float64 through ``numpy.matmul``, zero-copy: its BLAS loop over the batch
    (OpenBLAS small-matrix kernels) runs these R small products ~1.5x faster than
    ``torch.bmm`` here (64 x (64x30 @ 30x16) float64: ~110 us against ~165 us, one thread), and
    the first layer's ``g^T X`` (R*h x N @ N x d) ~2.5x faster than ``torch.mm``, which makes
    the transposed product slow (``benchmarks/results/ensemble_cpu.md``). numpy's loop runs on
    one thread: with more than one torch thread the batched products go to ``torch.matmul``,
    which splits the batch over the threads (~87 us at 2 threads against ~107 us for numpy in
    a microbenchmark; ``_BMM_THREADED = False`` keeps numpy).
    """
    threaded = a.dim() == 3 and torch.get_num_threads() > 1 and _BMM_THREADED
    if (
        not threaded
        and a.device.type == "cpu"
        and a.dtype in (torch.float64, torch.float32)
        and a.dtype == b.dtype
    ):
        if out is None:
            return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    if out is None:
        return torch.matmul(a, b)
    return torch.matmul(a, b, out=out) if out.is_contiguous() else out.copy_(torch.matmul(a, b))


def manual_step(
    layers: list[_Layer], loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> Callable[
    [dict[str, torch.Tensor], torch.Tensor, torch.Tensor, int | None],
    tuple[dict[str, torch.Tensor], torch.Tensor] | None,
]:
    """Every member's loss and gradient with a hand-written backward (no autograd); ``None``
    from the step where the loss is not one :func:`_loss_and_grad` writes out.

    Forward, per layer l (``a_0`` the input): ``z_l = a_{l-1} W_l^T + b_l``, ``a_l = f_l(z_l)``.
    Backward from ``g = dL/d(out)``: ``g <- g * f_l'`` (from ``a_l``), ``dW_l = g^T a_{l-1}``,
    ``db_l = sum_n g``, ``g <- g W_l``. With an input shared by all members the first layer is
    one matrix product for all R members: ``X (N, d) @ [W_1^T for all r] (d, R*h)`` forward and
    ``X^T @ g (N, R*h)`` for its weight gradient; its activations stay in that (N, R, h) layout
    and the next layer reads them as an (R, N, h) view. Intermediate arrays live in buffers
    kept from step to step (fresh ~1 MB allocations cost page faults); the gradients and losses
    returned are new tensors.
    """
    cache: dict[str, torch.Tensor] = {}

    def buffer(key: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        t = cache.get(key)
        if t is None or t.shape != shape or t.dtype != like.dtype or t.device != like.device:
            t = cache[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return t

    def step(
        p: dict[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        mapped: int | None,
        out: dict[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        shared = mapped is None
        h = (x.flatten(1) if shared else x.flatten(2)).detach()
        inputs: list[torch.Tensor] = []
        outputs: list[torch.Tensor | None] = []
        for i, layer in enumerate(layers):
            w = p[layer.weight].detach()
            R, o, d = w.shape
            inputs.append(h)
            if i == 0 and shared:
                wt = w.reshape(R * o, d).t()
                z = _matmul(h, wt, out=buffer(f"z{i}", (h.shape[0], R * o), h))
                if layer.bias is not None:
                    z.add_(p[layer.bias].detach().reshape(R * o))
                dense, h = z, z.view(-1, R, o).transpose(0, 1)  # (R, N, o) view of (N, R, o)
            else:
                z = buffer(f"z{i}", (R, h.shape[1], o), h)
                h = dense = _matmul(h, w.transpose(1, 2), out=z)
                if layer.bias is not None:
                    h.add_(p[layer.bias].detach().unsqueeze(1))
            for module in layer.activations:
                _activate_(module, dense)
            outputs.append(h if layer.activations else None)
        lg = _loss_and_grad(loss_fn, h, y, mapped, buffer)
        if lg is None:
            return None
        loss, g = lg
        grads: dict[str, torch.Tensor] = {}

        def into(name: str) -> torch.Tensor | None:
            return None if out is None else out[name]

        for i in range(len(layers) - 1, -1, -1):
            layer, a_in, a_out = layers[i], inputs[i], outputs[i]
            w = p[layer.weight].detach()
            R, o, d = w.shape
            for module in layer.activations:  # at most one (manual_plan)
                g = _activation_backward(module, g, a_out, g)  # g is ours: in place
            if i == 0 and shared:
                # g is (R, N, o), an (N, R, o) buffer when layer 2 wrote it so: one product
                # g^T X (R*o, d), already the (R, o, d) layout of the weights
                flat = g.transpose(0, 1).reshape(-1, R * o)
                dw = into(layer.weight)
                grads[layer.weight] = _matmul(
                    flat.t(), a_in, out=None if dw is None else dw.view(R * o, d)
                ).view(R, o, d)
                if layer.bias is not None:
                    db = into(layer.bias)
                    grads[layer.bias] = torch.sum(
                        flat, 0, out=None if db is None else db.view(R * o)
                    ).view(R, o)
                continue
            grads[layer.weight] = _matmul(g.transpose(1, 2), a_in, out=into(layer.weight))
            if layer.bias is not None:
                grads[layer.bias] = torch.sum(g, 1, out=into(layer.bias))
            if i == 1 and shared:
                # write g W into the (N, R, d) layout of the first layer's activations
                buf = buffer(f"g{i}", (a_in.shape[1], R, d), g)
                g = _matmul(g, w, out=buf.transpose(0, 1))
            elif i > 0:
                g = _matmul(g, w, out=buffer(f"g{i}", (R, g.shape[1], d), g))
        if out is not None:
            loss = out["loss"].copy_(loss)
        return grads, loss

    return step


def member_workers(ops: list[Op], params: dict[str, torch.Tensor], x: torch.Tensor) -> int:
    """How many threads to split the members over: one per torch thread (at most one per 8
    members) where the hand-written step applies on CPU and a step has work enough for the
    slices to overlap (>= :data:`PARALLEL_FLOPS`); else 1.

    A step's work is ``6 N sum_r |W_r|`` (forward, and two products per layer backward).
    """
    threads = torch.get_num_threads()
    first = next(iter(params.values()))
    if threads <= 1 or first.device.type != "cpu" or manual_plan(ops) is None:
        return 1
    R = first.shape[0]
    N = x.shape[-2] if x.dim() >= 2 else 1
    flops = 6 * N * sum(v[0].numel() for v in params.values())
    return max(1, min(threads, R // 8)) if flops * R >= PARALLEL_FLOPS else 1


#: the smallest step (floating-point operations, all members) split over threads. Measured on
#: the 2-core CPU (R = 64, float64, N = 64, 200 GD steps, each slice a whole run on its own
#: thread): steps of 23.6 MFLOP (tanh 16-30-16) ran 1.4-1.5x faster on two slices, 12.6 MFLOP
#: (16-16-16) 1.18x, 6.3 MFLOP (16-8-16) no faster and 4 MFLOP (8-16-1) 1.3x slower (each
#: slice's Python holds the GIL between its kernels)
PARALLEL_FLOPS = 10e6


@contextmanager
def member_threads(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    """Threads for :func:`~curvscope.training.train_ensemble` to train ``workers`` slices of
    the members at once, each slice a whole run of its own (no hand-off between steps).

    Inside, torch and the BLAS numpy calls run one thread each (restored on exit): each
    slice is one thread's work, and nested thread teams on the same cores would oversubscribe
    them. The matrix products and ``np.tanh`` release the GIL, so the slices overlap.
    """
    if workers <= 1:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers - 1) as pool:
            yield pool
    finally:
        torch.set_num_threads(before)


def stacked_step(
    ops: list[Op],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    names: list[str],
) -> Callable[
    [dict[str, torch.Tensor], torch.Tensor, torch.Tensor, int | None],
    tuple[list[torch.Tensor], torch.Tensor],
]:
    """A step function for the ensemble trainer: every member's loss and gradient.

    With the hand-written backward the gradients are written into arrays kept from step to
    step (the caller uses them before the next step; the losses are new tensors). A loss the
    hand-written step does not write out is found on the first step; from then on every step
    goes straight to autograd. One step function serves one run: slices of the members trained
    on threads (:func:`member_threads`) each build their own.
    """
    layers = manual_plan(ops)
    manuals = [manual_step(layers, loss_fn)] if layers is not None else []
    kept: dict[str, torch.Tensor] = {}

    def outputs(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for k in names:
            if k not in kept or kept[k].shape != p[k].shape or kept[k].dtype != p[k].dtype:
                kept[k] = torch.empty_like(p[k])
        like = p[names[0]]
        return {**{k: kept[k] for k in names}, "loss": like.new_empty(like.shape[0])}

    def manual(
        p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, mapped: int | None
    ) -> dict[str, torch.Tensor] | None:
        out = outputs(p)
        return out if manuals[0](p, x, y, mapped, out) is not None else None

    def step(
        p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, mapped: int | None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        if manuals:
            out = manual(p, x, y, mapped)
            if out is not None:
                return [out[k] for k in names], out["loss"]
            manuals.clear()  # not a loss written out: autograd from now on
        leaves = {k: v.detach().requires_grad_(True) for k, v in p.items()}
        outs = stacked_forward(ops, leaves, x, shared=mapped is None)
        loss = member_losses(loss_fn, outs, y, mapped)
        # member r's loss depends on member r's weights alone: d(sum)/d(theta_r) = dL_r/d(theta_r)
        grads = torch.autograd.grad(loss.sum(), [leaves[k] for k in names])
        return list(grads), loss.detach()

    return step
