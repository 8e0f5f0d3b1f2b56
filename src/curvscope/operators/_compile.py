"""Opt-in ``torch.compile`` of the curvature product, verified before use (issue 16 item 4).

**What is compiled.** ``torch.compile`` cannot compile the engine's reverse-over-reverse
product through a retained autograd graph: a compiled forward inside a ``create_graph``
backward raises "torch.compile with aot_autograd does not currently support double backward"
(torch 2.13). What compiles is a pure ``torch.func`` product of one batch,

.. math:: (\\theta, x_B, y_B, V) \\mapsto \\sum_{i \\in B} M_i V,

one graph with the forward, the backward and the k product columns (``vmap``):

- Hessian family (:class:`HessianOperator`, :class:`ResidualOperator`): reverse-over-reverse in
  ``torch.func``, ``vmap(vjp(grad(phi)))`` of the batch scalar :math:`\\phi` (the loss, or the
  residual functional). Reverse-only, so torch 2.13's forward-mode bugs (MSE's "ZeroTensors are
  immutable", nested forward mode through LayerNorm) cannot reach it.
- ``J^T Lambda J`` family (GGN, Fisher, empirical Fisher, gradient covariance): the operator's own
  ``torch.func`` method ``"fwd"`` (``vmap(jvp)``, :math:`\\Lambda`, ``vmap(vjp)``).

The compiled product recomputes each batch's forward at every product (there is no graph to
keep), so it bypasses the graph cache and the method choice while it is used.

**Guard.** Before use, the compiled product is compared with the unrewritten reverse-over-reverse
reference, the standard of :func:`curvscope.operators.verify.verify_rewrite`: in float64 on the
first 8 samples of the first batch to 1e-8 (the same function: exact up to rounding) and in the
operator's dtype on the whole first batch to :math:`\\sqrt{\\epsilon}` (the generated kernels are
numerically sound). Every later graph (``dynamic=False``: one graph per batch shape, dtype and
block width k; the last, partial batch is one more) is checked against the engine's uncompiled
product on the batch that triggers it. A compile error or a failed check falls back to the
uncompiled engine, with one warning, and the reason goes to ``report.compile``.

**Does it pay?** The first batch's product is timed compiled and uncompiled (the
reverse-over-reverse product through a kept graph when the cache may keep it, prepared afresh
with ``cache=False``); ``compile=True`` keeps the compiled product only when it is faster, and
``report.compile_timing.break_even`` says after how many products its compile seconds are
repaid. ``compile="always"`` keeps a verified compiled product even when it is slower. Compile seconds
are those of a cold start unless inductor's on-disk cache already holds the kernels (a second
process with the same model and shapes compiles in seconds). Measured on a 2-core CPU
(``python -m benchmarks.compile``): exact (float32 2.5e-6 on the small CNN), and faster than the
kept graph on the small BatchNorm CNN, faster only than a product prepared afresh on the digits
MLP.

**Limits.** Dynamo keeps at most ``recompile_limit`` (8) graphs per code object, so each
operator gets its own code object; past 8 graphs for one operator (many batch shapes) dynamo
runs the product eagerly: still exact, no longer faster. The Monte-Carlo Fisher (label draws per
batch index from a ``torch.Generator``) is not compiled.
"""

from __future__ import annotations

import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch

from curvscope.errors import InputError
from curvscope.operators._autodiff import GGN_METHODS, HESSIAN_METHODS
from curvscope.operators._data import Batch
from curvscope.operators._inputs import map_tensors

if TYPE_CHECKING:
    from curvscope.operators.curvature import CurvatureOperator

__all__ = ["CompileMode", "CompileTiming", "CompiledProduct", "check_compile", "setup_compile"]

CompileMode = bool | Literal["always"]
Parts = tuple[torch.Tensor, ...]


@dataclass
class CompileTiming:
    """What ``compile=`` cost and gained, measured on the first batch.

    ``compile_seconds``: the first call of every compiled graph (compilation plus one product),
    summed, including the float64 verification graph. ``seconds_compiled`` and
    ``seconds_uncompiled``: one product (k = 1) of the first batch, the least of two runs.
    ``break_even``: products after which the compile seconds are repaid,
    ``compile_seconds / (seconds_uncompiled - seconds_compiled)``; ``None`` when the compiled
    product is not faster (it never pays). ``graphs``: compiled graphs (batch shapes x dtypes x
    block widths). ``max_relative_error``: the largest relative error of any check in the
    operator's dtype.
    """

    compile_seconds: float = 0.0
    seconds_compiled: float | None = None
    seconds_uncompiled: float | None = None
    uncompiled: str = ""
    break_even: float | None = None
    graphs: int = 0
    float64_relative_error: float | None = None
    max_relative_error: float | None = None


def check_compile(value: Any) -> CompileMode:
    """The ``compile=`` option: ``False``, ``True`` or ``"always"``; anything else is refused."""
    if value is False or value is True or value == "always":
        return value
    raise InputError(
        f"compile must be False (default), True (use a verified compiled product when it is "
        f"faster) or 'always' (use it whenever it verifies), got {value!r}"
    )


def _unsupported(op: CurvatureOperator) -> str | None:
    if getattr(op, "mc_samples", None) is not None:
        return (
            "the Monte-Carlo Fisher draws labels per batch index with a torch.Generator, "
            "which a compiled graph cannot take; use mc_samples=None (exact) or compile=False"
        )
    if op._methods not in (HESSIAN_METHODS, GGN_METHODS):
        return f"no torch.func product for the methods {op._methods}"
    return None


def _product_fn(op: CurvatureOperator) -> Callable[..., Parts]:
    """The pure ``torch.func`` product of one batch, as a function with its own code object.

    ``torch._dynamo`` keeps its compiled graphs (at most ``recompile_limit`` = 8) per code
    object; a fresh code object per operator keeps operators from evicting each other's graphs.
    """
    hessian = op._methods == HESSIAN_METHODS

    def product(params: Parts, inputs: Any, targets: torch.Tensor, size: int, *block: Any) -> Parts:
        batch = Batch(0, inputs, targets, size)
        if hessian:  # "fwd-rev" prepares nothing but the scalar function of the batch
            scalar = op._prepare("fwd-rev", batch, params).fn
            _, vjp_fn = torch.func.vjp(torch.func.grad(scalar), params)
            return tuple(torch.func.vmap(vjp_fn)(block)[0])
        return tuple(op._apply(op._prepare("fwd", batch, params), block))

    code = product.__code__.replace(co_name=f"curvscope_product_{id(op):x}")
    return types.FunctionType(code, product.__globals__, code.co_name, None, product.__closure__)


def _signature(batch: Batch, pieces: Parts) -> tuple[Any, ...]:
    shapes: list[Any] = []

    def note(t: torch.Tensor) -> torch.Tensor:
        shapes.append((tuple(t.shape), t.dtype))
        return t

    map_tensors(batch.inputs, note)
    return (tuple(shapes), tuple(batch.targets.shape), pieces[0].shape[0], pieces[0].dtype)


def _relative_error(op: CurvatureOperator, got: Parts, ref: Parts) -> float:
    n = len(op.layout.names)
    a, b = op.layout.join(got[:n]), op.layout.join(ref[:n])
    return float((a - b).norm() / b.norm().clamp_min(torch.finfo(b.dtype).tiny))


def _own_tolerance(dtype: torch.dtype) -> float:
    return 1e-8 if dtype == torch.float64 else float(torch.finfo(dtype).eps) ** 0.5


def _one_line(err: BaseException) -> str:
    """``Type: first line``; a first line ending in ":" (inductor's "backend='inductor'
    raised:") is joined with the next, which says what failed."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines or [""])[0]
    return f"{type(err).__name__}: {text}"[:300]


class CompiledProduct:
    """The compiled per-batch product of ``op``; checks every new graph on its first call."""

    def __init__(self, op: CurvatureOperator) -> None:
        self.op = op
        self.fn = torch.compile(_product_fn(op), dynamic=False)
        self.checked: set[tuple[Any, ...]] = set()
        self.timing = op.report.compile_timing

    def run(self, batch: Batch, pieces: Parts, params: Parts | None = None) -> Parts:
        params = self.op.params if params is None else params
        with torch.enable_grad():
            return self.fn(params, batch.inputs, batch.targets, batch.size, *pieces)

    def first_call(self, batch: Batch, pieces: Parts, params: Parts | None = None) -> Parts:
        """Compile (timed) a graph for a new signature; raises what compiling raises."""
        start = time.perf_counter()
        got = self.run(batch, pieces, params)
        self._sync()
        self.timing.compile_seconds += time.perf_counter() - start
        self.timing.graphs += 1
        return got

    def reference(self, batch: Batch, pieces: Parts, params: Parts | None = None) -> Parts:
        """The engine's uncompiled reverse-only product of ``batch`` (current rewrite)."""
        op = self.op
        params = op.params if params is None else params
        return tuple(op._apply(op._prepare(op._methods[0], batch, params), pieces))

    def __call__(self, batch: Batch, pieces: Parts) -> Parts | None:
        """The product, or ``None`` (after falling back for good) when a new graph fails."""
        key = _signature(batch, pieces)
        if key in self.checked:
            return self.run(batch, pieces)
        try:
            got = self.first_call(batch, pieces)
        except Exception as err:
            self.fail(f"compile error: {_one_line(err)}")
            return None
        err = _relative_error(self.op, got, self.reference(batch, pieces))
        self._note_error(err)
        tol = _own_tolerance(self.op.dtype)
        if not err <= tol:
            self.fail(
                f"failed verification: relative error {err:.1e} vs the uncompiled product on "
                f"batch {batch.index} (tolerance {tol:.1e})"
            )
            return None
        self.checked.add(key)
        return got

    def fail(self, reason: str) -> None:
        op = self.op
        op.report.compile = reason
        op._compiled = None
        warnings.warn(
            f"compile={op._compile_request!r} is not used, products run uncompiled: {reason}",
            stacklevel=5,
        )

    def _note_error(self, err: float) -> None:
        worst = self.timing.max_relative_error
        self.timing.max_relative_error = err if worst is None else max(worst, err)

    def _sync(self) -> None:
        if self.op.device.type == "cuda":
            torch.cuda.synchronize(self.op.device)


def _columns(op: CurvatureOperator, k: int, dtype: torch.dtype, seed: int) -> Parts:
    gen = torch.Generator().manual_seed(seed)
    vec = torch.randn(op.layout.size, k, generator=gen, dtype=torch.float64)
    return tuple(op.layout.split(vec.to(op.device, dtype)))


def _verify_float64(compiled: CompiledProduct, first: Batch) -> str:
    """``"ok"`` or why not: float64 on the first samples, to 1e-8 (skipped for a float64
    operator, whose own-dtype check is this one on the whole first batch)."""
    from curvscope.operators.verify import _as_float64  # verify imports ours

    op, timing = compiled.op, compiled.timing
    if op.dtype != torch.float64:
        with _as_float64(op, first) as (params, small, tol):
            pieces = _columns(op, 2, params[0].dtype, 4321)
            got = compiled.first_call(small, pieces, params)
            with op._using(None):
                ref = compiled.reference(small, pieces, params)
            err = _relative_error(op, got, ref)
            timing.float64_relative_error = err
            if not err <= max(tol, 1e-8):
                return (
                    f"failed verification: relative error {err:.1e} vs reverse-over-reverse in "
                    f"{params[0].dtype} on {small.size} samples (tolerance {max(tol, 1e-8):.1e})"
                )
    return "ok"


def setup_compile(op: CurvatureOperator, first: Batch) -> CompiledProduct | None:
    """Build, verify and time the compiled product on the first batch; ``None`` if not used.

    Fills ``op.report.compile`` (``"ok"`` or the reason) and ``op.report.compile_timing``.
    """
    report = op.report
    reason = _unsupported(op)
    if reason is not None:
        report.compile = f"not supported: {reason}"
        _warn(op, report.compile)
        return None
    compiled = CompiledProduct(op)
    try:
        status = _verify_float64(compiled, first)
        if status == "ok":
            status = _verify_own_dtype(compiled, first)
        if status == "ok":
            status = _time(compiled, first)
    except Exception as err:  # what compiling raises surfaces at the first call
        status = f"compile error: {_one_line(err)}"
    report.compile = status
    if status != "ok":
        _warn(op, status)
        return None
    return compiled


def _verify_own_dtype(compiled: CompiledProduct, first: Batch) -> str:
    op = compiled.op
    pieces = _columns(op, 1, op.dtype, 4321)
    got = compiled.first_call(first, pieces)
    with op._using(None):
        ref = compiled.reference(first, pieces)
    err = _relative_error(op, got, ref)
    compiled._note_error(err)
    if op.dtype == torch.float64:
        compiled.timing.float64_relative_error = err
    tol = _own_tolerance(op.dtype)
    if not err <= tol:
        return (
            f"failed verification: relative error {err:.1e} vs reverse-over-reverse in "
            f"{op.dtype} on the first batch (tolerance {tol:.1e})"
        )
    compiled.checked.add(_signature(first, pieces))
    return "ok"


def _time(compiled: CompiledProduct, first: Batch, rounds: int = 2) -> str:
    """Seconds per product (k = 1) on the first batch, compiled and not; ``"ok"`` or why the
    compiled product is not kept."""
    op, timing = compiled.op, compiled.timing
    pieces = _columns(op, 1, op.dtype, 0)
    method = op.method if op.method != "auto" else op._methods[0]
    kept = op.cache_mode is not False and method in op._graph_methods
    state = op._prepare(method, first, op.params) if kept else None
    seconds = {"compiled": float("inf"), "uncompiled": float("inf")}
    for _ in range(rounds):  # interleaved
        start = time.perf_counter()
        compiled.run(first, pieces)
        compiled._sync()
        seconds["compiled"] = min(seconds["compiled"], time.perf_counter() - start)
        start = time.perf_counter()
        if state is not None:
            state.method = method
            op._apply(state, pieces)
        else:
            op._apply(op._prepare(method, first, op.params), pieces)
        compiled._sync()
        seconds["uncompiled"] = min(seconds["uncompiled"], time.perf_counter() - start)
    timing.seconds_compiled = seconds["compiled"]
    timing.seconds_uncompiled = seconds["uncompiled"]
    timing.uncompiled = f"{method}, {'through a kept graph' if kept else 'prepared afresh'}"
    gain = seconds["uncompiled"] - seconds["compiled"]
    timing.break_even = timing.compile_seconds / gain if gain > 0 else None
    if gain <= 0 and op._compile_request != "always":
        return (
            f"not used: slower per product than uncompiled {timing.uncompiled} "
            f"({seconds['compiled']:.3g} s vs {seconds['uncompiled']:.3g} s on the first batch); "
            "compile='always' uses it anyway"
        )
    return "ok"


def _warn(op: CurvatureOperator, reason: str) -> None:
    warnings.warn(
        f"compile={op._compile_request!r} is not used, products run uncompiled: {reason}",
        stacklevel=6,
    )
