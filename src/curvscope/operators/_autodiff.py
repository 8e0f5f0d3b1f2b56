"""The product kernels: Hessian-vector and J^T Lambda J products for a block of k columns.

Two families, each with one reverse-only *reference* method that torch 2.13's forward-mode bugs
cannot reach, and faster candidates that the engine verifies against it on the user's model:

- Hessian of a scalar ``phi(theta)`` (the batch loss, or the residual functional):
  ``rev-rev`` (one forward and one create_graph backward, then k backward passes through the
  retained graph; the reference), ``rev-rev-batched`` (the k backward passes as one vmapped pass,
  ``is_grads_batched``), ``fwd-rev`` (``vmap`` over ``jvp(grad(phi))``).
- Gauss-Newton type ``J^T Lambda J`` with ``J = d outputs / d theta`` and ``Lambda`` acting in output
  space: ``rev`` (J v by the double-vjp trick, J^T w by vjp, through one retained graph; the
  reference), ``rev-batched`` (the same, vmapped), ``fwd`` (``vmap(jvp)`` then ``vmap(vjp)``).

A *state* holds what a method needs from one batch and can be cached: for the reverse methods it
is the retained autograd graph, so a cached batch costs only the k backward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from curvscope.operators._data import Batch

__all__ = [
    "BATCHED_TWINS",
    "GGN_METHODS",
    "HESSIAN_METHODS",
    "GraphState",
    "HessianState",
    "OutputOp",
    "OutputState",
    "ggn_apply",
    "ggn_prepare",
    "hessian_apply",
    "hessian_prepare",
]

HESSIAN_METHODS = ("rev-rev", "rev-rev-batched", "fwd-rev")
GGN_METHODS = ("rev", "rev-batched", "fwd")
#: vmapped twins of the loop methods: the same work plus vmap's overhead when k = 1.
BATCHED_TWINS = frozenset({"rev-rev-batched", "rev-batched"})

Params = tuple[torch.Tensor, ...]
Block = tuple[torch.Tensor, ...]  # per parameter: (k, *shape)


@dataclass(kw_only=True)
class GraphState:
    """What one batch contributes to every later product (possibly with a retained graph).

    One subclass per product family holds what its methods need; the engine sets ``batch`` when
    it keeps the state in its cache (a fully cached pass reads its batches from there).
    """

    method: str
    leaves: Params
    batch: Batch | None = None
    #: set by the engine when this is the state's last ``apply`` (a batch prepared afresh, not
    #: kept in the cache): the last backward pass then frees the graph as it runs
    #: (``retain_graph=False``, as PyHessian's product does) instead of holding the forward's
    #: and the first backward's saved tensors until the state is dropped. On PreResNet-110
    #: (256 samples in batches of 128, 2-core CPU, ``benchmarks/last_use.py``) the peak resident
    #: memory fell from 8.1-8.2 to 6.7-7.2 GB and a fresh product took 15.8 s, not 18.7 s.
    last_use: bool = False


@dataclass(kw_only=True)
class HessianState(GraphState):
    """The Hessian family: ``fn`` for ``fwd-rev``; ``grads`` (create_graph) for reverse methods."""

    fn: Callable[[Params], torch.Tensor] | None = None
    grads: Params = ()
    value: torch.Tensor | None = None


OutputOp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(outputs, JV of shape (k, *outputs.shape)) -> W of the same shape, then J^T W is returned."""


@dataclass(kw_only=True)
class OutputState(GraphState):
    """The ``J^T Lambda J`` family.

    ``outputs`` of the batch (with their graph for reverse methods); ``fn`` and ``vjp_fn`` for
    ``fwd``; ``dummy`` and ``jt_dummy`` (the graph of ``u -> J^T u``) for reverse methods. The
    operator adds ``output_op`` (its :math:`\\Lambda`) or, for the gradient covariance, the output
    residuals ``residual``.
    """

    outputs: torch.Tensor
    fn: Callable[[Params], torch.Tensor] | None = None
    vjp_fn: Callable[..., Any] | None = None
    dummy: torch.Tensor | None = None
    jt_dummy: Params = ()
    output_op: OutputOp | None = None
    residual: torch.Tensor | None = None


def _leaves(params: Params) -> Params:
    return tuple(p.detach().requires_grad_(True) for p in params)


def _grad(
    outputs: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
    grad_outputs: Sequence[torch.Tensor],
    *,
    batched: bool = False,
    create_graph: bool = False,
    retain_graph: bool = True,
) -> tuple[torch.Tensor, ...]:
    """``torch.autograd.grad`` that skips outputs without a graph and returns zeros for unused
    inputs; ``retain_graph=False`` only on a graph's last use (:attr:`GraphState.last_use`)."""
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if not pairs:
        shape_of = (
            (lambda t: (grad_outputs[0].shape[0], *t.shape)) if batched else (lambda t: t.shape)
        )
        return tuple(torch.zeros(shape_of(t), dtype=t.dtype, device=t.device) for t in inputs)
    outs, gouts = zip(*pairs)
    grads = torch.autograd.grad(
        outs,
        inputs,
        grad_outputs=gouts,
        retain_graph=retain_graph,
        create_graph=create_graph,
        allow_unused=True,
        is_grads_batched=batched,
    )
    result = []
    for g, t in zip(grads, inputs):
        if g is None:
            shape = (grad_outputs[0].shape[0], *t.shape) if batched else t.shape
            g = torch.zeros(shape, dtype=t.dtype, device=t.device)
        result.append(g)
    return tuple(result)


def _stack_columns(columns: Sequence[Block]) -> Block:
    """Per-column results (one tensor per parameter each) as per-parameter ``(k, ...)`` tensors.

    One column (the common Lanczos case) becomes a view, without a copy."""
    if len(columns) == 1:
        return tuple(c.unsqueeze(0) for c in columns[0])
    return tuple(torch.stack(parts) for parts in zip(*columns))


# ---------------------------------------------------------------------- Hessian of a scalar
def hessian_prepare(
    method: str, scalar_fn: Callable[[Params], torch.Tensor], params: Params
) -> HessianState:
    """Build what ``method`` needs; for reverse methods, the create_graph gradient of ``scalar_fn``."""
    if method == "fwd-rev":
        return HessianState(method=method, leaves=tuple(p.detach() for p in params), fn=scalar_fn)
    leaves = _leaves(params)
    with torch.enable_grad():
        value = scalar_fn(leaves)
        grads = torch.autograd.grad(value, leaves, create_graph=True, allow_unused=True)
    grads = tuple(torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves))
    return HessianState(method=method, leaves=leaves, grads=grads, value=value.detach())


def hessian_apply(state: HessianState, block: Block) -> Block:
    """``H @ V`` for the scalar of ``state``; ``block`` and the result are per-parameter ``(k, ...)``."""
    if state.method == "fwd-rev":
        fn = state.fn
        assert fn is not None  # set by hessian_prepare for fwd-rev
        primals = state.leaves

        def hvp(*tangent: torch.Tensor) -> Block:
            grad_fn = torch.func.grad(lambda ps: fn(ps))
            return torch.func.jvp(grad_fn, (primals,), (tuple(tangent),))[1]

        with torch.enable_grad():
            return tuple(torch.func.vmap(hvp)(*block))
    grads, last = state.grads, state.last_use
    with torch.enable_grad():
        if state.method == "rev-rev-batched":
            return _grad(grads, state.leaves, block, batched=True, retain_graph=not last)
        k = block[0].shape[0]
        columns = [
            _grad(
                grads, state.leaves, [v[j] for v in block], retain_graph=not (last and j == k - 1)
            )
            for j in range(k)
        ]
    return _stack_columns(columns)


# ---------------------------------------------------------------------- J^T Lambda J


def ggn_prepare(
    method: str, model_fn: Callable[[Params], torch.Tensor], params: Params
) -> OutputState:
    """Forward pass (and, for reverse methods, the graph of ``u -> J^T u`` for the double-vjp trick)."""
    if method == "fwd":
        leaves = tuple(p.detach() for p in params)
        with torch.enable_grad():
            outputs, vjp_fn = torch.func.vjp(model_fn, leaves)
        return OutputState(
            method=method, leaves=leaves, outputs=outputs.detach(), fn=model_fn, vjp_fn=vjp_fn
        )
    leaves = _leaves(params)
    with torch.enable_grad():
        outputs = model_fn(leaves)
        dummy = torch.zeros_like(outputs, requires_grad=True)
        jt_dummy = _grad([outputs], leaves, [dummy], create_graph=True)
    return OutputState(
        method=method, leaves=leaves, outputs=outputs, dummy=dummy, jt_dummy=jt_dummy
    )


def ggn_outputs(state: OutputState) -> torch.Tensor:
    return state.outputs.detach()


def ggn_apply(state: OutputState, block: Block, output_op: OutputOp) -> Block:
    """``J^T Lambda J V`` where ``output_op(outputs, JV)`` applies Lambda to ``JV`` (k, *out)."""
    outputs = ggn_outputs(state)
    if state.method == "fwd":
        fn, vjp_fn, primals = state.fn, state.vjp_fn, state.leaves
        assert fn is not None and vjp_fn is not None  # set by ggn_prepare for fwd

        def jvp(*tangent: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(fn, (primals,), (tuple(tangent),))[1]

        with torch.enable_grad():
            jv = torch.func.vmap(jvp)(*block)
            w = output_op(outputs, jv)
            return tuple(torch.func.vmap(vjp_fn)(w)[0])
    dummy, jt_dummy, last = state.dummy, state.jt_dummy, state.last_use
    assert dummy is not None  # set by ggn_prepare for reverse methods
    batched = state.method == "rev-batched"
    k = block[0].shape[0]
    # on the last use, the J v pass frees the graph of u -> J^T u (it never enters the forward
    # graph, which leads to the parameters, not to the dummy), then the J^T w pass the forward's
    with torch.enable_grad():
        if batched:
            (jv,) = _grad(jt_dummy, [dummy], block, batched=True, retain_graph=not last)
        else:
            jv = torch.stack(
                [
                    _grad(
                        jt_dummy,
                        [dummy],
                        [v[j] for v in block],
                        retain_graph=not (last and j == k - 1),
                    )[0]
                    for j in range(k)
                ]
            )
        w = output_op(outputs, jv)
        if batched:
            return _grad([state.outputs], state.leaves, [w], batched=True, retain_graph=not last)
        columns = [
            _grad([state.outputs], state.leaves, [w[j]], retain_graph=not (last and j == k - 1))
            for j in range(k)
        ]
    return _stack_columns(columns)


def graph_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` and return its result with the bytes of the tensors autograd saved meanwhile.

    Counts each storage once (``saved_tensors_hooks``); this is what a cached batch keeps alive.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        except (
            RuntimeError,
            NotImplementedError,
        ):  # tensors without storage (e.g. functorch wrappers)
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, sum(storages.values())
