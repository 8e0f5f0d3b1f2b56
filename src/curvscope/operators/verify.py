"""Verification of the product methods: each fast method against its reverse-only reference.

:func:`verify_methods` is what every curvature operator runs before its first product
(``verify=True``); :func:`verify_engine` exposes it so users can see which methods torch computes
correctly for their model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from curvscope.operators._data import Batch
from curvscope.operators._inputs import map_tensors
from curvscope.operators._rewrites import RewrittenModel
from curvscope.operators.curvature import CurvatureOperator, EngineReport
from curvscope.operators.ggn import GGNOperator
from curvscope.operators.hessian import HessianOperator
from curvscope.persistence import savable

__all__ = ["EngineCheck", "verify_engine", "verify_methods", "verify_rewrite"]

VERIFY_SAMPLES = 8


@savable
@dataclass(frozen=True)
class EngineCheck:
    """Per operator kind, per product method: ``"ok"`` or why the method must not be used."""

    results: dict[str, dict[str, str]]

    @property
    def all_ok(self) -> bool:
        return all(v == "ok" for methods in self.results.values() for v in methods.values())

    def __str__(self) -> str:
        lines = []
        for kind, methods in self.results.items():
            for method, status in methods.items():
                lines.append(f"{kind:>10s}  {method:<16s} {status}")
        return "\n".join(lines)


def verify_engine(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: Any,
    *,
    operators: Sequence[type[CurvatureOperator]] = (HessianOperator, GGNOperator),
    **kwargs: Any,
) -> EngineCheck:
    """Compare every product method with the reverse-over-reverse reference on a small batch.

    The check every curvature operator runs before its first product (``verify=True``), exposed
    so that users can see which methods torch computes correctly for their model: torch 2.13's
    forward-over-reverse raises for ``nn.MSELoss`` (pytorch issue 123996) and nested forward mode
    is wrong for LayerNorm (issue 196700). Runs in float64 on the first 8 samples of the first
    batch. Methods reported as not ``"ok"`` are never used by ``method="auto"``. ``data`` and
    ``**kwargs`` are those of the operators: inputs of any structure the model takes (with
    ``batch_size_fn=`` where needed), a mean- or sum-reduced loss.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        >>> check = verify_engine(model, nn.MSELoss(), (torch.randn(8, 3), torch.randn(8, 2)))
        >>> check.results["hessian"]["rev-rev"]
        'ok'
    """
    results: dict[str, dict[str, str]] = {}
    for cls in operators:
        op = cls(model, loss_fn, data, **kwargs)
        with op._full_float32(), op._model_mode():
            report = verify_methods(op, op.source.first_batch())
        name = cls.__name__.removesuffix("Operator").lower()
        results[name] = dict(report.verified)
    return EngineCheck(results)


def verify_methods(
    op: CurvatureOperator, batch: Batch, *, num_vectors: int = 2, rtol: float = 1e-8
) -> EngineReport:
    """Check every product method of ``op`` against its reverse-only reference on a slice of ``batch``.

    Runs in float64 on copies of the weights, data and buffers (falls back to the operator's dtype
    for models that cannot run in float64, with a tolerance of ``sqrt(eps)``); methods that raise
    or disagree are marked unusable in ``op.report.verified``.
    """
    report = op.report
    reference = op._methods[0]
    with _as_float64(op, batch) as (params, small, tol):
        gen = torch.Generator().manual_seed(1234)
        vec = torch.randn(op.layout.size, num_vectors, generator=gen, dtype=torch.float64).to(
            op.device, params[0].dtype
        )
        pieces = op.layout.split(vec)
        n = len(op.layout.names)
        ref = op.layout.join(op._apply(op._prepare(reference, small, params), pieces)[:n])
        scale = ref.norm().clamp_min(torch.finfo(ref.dtype).tiny)
        report.verified[reference] = "ok"
        for method in op._methods[1:]:
            try:
                got = op.layout.join(op._apply(op._prepare(method, small, params), pieces)[:n])
                err = float((got - ref).norm() / scale)
                report.verified[method] = (
                    "ok" if err <= max(tol, rtol) else f"relative error {err:.2e} vs {reference}"
                )
            except Exception as exc:
                report.verified[method] = (
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )
    return report


def verify_rewrite(
    op: CurvatureOperator,
    batch: Batch,
    rewritten: RewrittenModel,
    *,
    num_vectors: int = 2,
    rtol: float = 1e-8,
) -> str:
    """``"ok"`` if the reference product of the rewritten model matches the model as written.

    Two checks on the first 8 samples of ``batch``, each with the unrewritten reverse-only
    reference method. In float64, the rewritten product equals the one as written to
    ``rtol`` (the rewrite is the same function: exact up to rounding). In the operator's own
    dtype, the rewritten kernels are numerically sound on this torch build (channels_last
    convolutions gave gradients 2e-3 wrong on torch 2.13 CPU in float32): their product's
    relative error against the float64 product is at most ``max(sqrt(eps), 2 e)``, with ``e``
    the error of the model as written in that dtype. A rewrite may be as inexact as the
    model's own float32 rounding (deep networks reach ~3e-4), not measurably worse. A model
    that cannot run in float64 is checked in its own dtype only, against itself as written,
    to ``sqrt(eps)``. Otherwise the reason, as a string.
    """
    reference = op._methods[0]
    n = len(op.layout.names)
    gen = torch.Generator().manual_seed(4321)
    vec = torch.randn(op.layout.size, num_vectors, generator=gen, dtype=torch.float64)

    def product(params: tuple[torch.Tensor, ...], small: Batch, model: Any) -> torch.Tensor:
        pieces = op.layout.split(vec.to(op.device, params[0].dtype))
        with op._using(model):
            out = op._apply(op._prepare(reference, small, params), pieces)[:n]
        return op.layout.join(out).double()

    def error(got: torch.Tensor, ref: torch.Tensor) -> float:
        return float((got - ref).norm() / ref.norm().clamp_min(torch.finfo(ref.dtype).tiny))

    try:
        with _as_float64(op, batch) as (params, small, tol):
            ref = product(params, small, None)
            err = error(product(params, small, rewritten), ref)
            label = str(params[0].dtype)
            ran_float64 = params[0].dtype == torch.float64
        tol = max(tol, rtol)
        if err > tol:
            return (
                f"relative error {err:.2e} vs the model as written in {label} (tolerance {tol:.1e})"
            )
        if op.dtype == torch.float64:
            return "ok"
        own_tol = float(torch.finfo(op.dtype).eps) ** 0.5
        head = batch.head(VERIFY_SAMPLES)
        got = product(op.params, head, rewritten)
        if not ran_float64:  # no float64 truth: against the model as written
            err = error(got, ref)
            if err <= own_tol:
                return "ok"
            return f"relative error {err:.2e} vs the model as written in {label} (tolerance {own_tol:.1e})"
        as_written = error(product(op.params, head, None), ref)
        err, tol = error(got, ref), max(own_tol, 2 * as_written)
        if err <= tol:
            return "ok"
        return (
            f"relative error {err:.2e} in {op.dtype} vs the float64 product (the model as "
            f"written: {as_written:.2e}; tolerance {tol:.1e})"
        )
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@contextlib.contextmanager
def _as_float64(
    op: CurvatureOperator, first: Batch
) -> Iterator[tuple[tuple[torch.Tensor, ...], Batch, float]]:
    saved = (op._dtype, op._fixed, op._buffers, op.params, op.source.dtype)
    head = first.head(VERIFY_SAMPLES)
    try:
        op._dtype = torch.float64
        op._fixed = {n: t.to(op._cast(t)) for n, t in saved[1].items()}
        op._buffers = {n: t.to(op._cast(t)) for n, t in saved[2].items()}
        params = tuple(p.to(torch.float64) for p in saved[3])
        op.params = params
        small = Batch(
            0,
            map_tensors(head.inputs, _to_float64),
            _to_float64(head.targets),
            head.size,
        )
        try:
            op.model_fn(small.inputs)(params)
            tol = 1e-8
        except RuntimeError:  # the model cannot run in float64: verify in its own dtype
            op._dtype, op._fixed, op._buffers, op.params = saved[0], saved[1], saved[2], saved[3]
            params = saved[3]
            small = head
            tol = float(torch.finfo(saved[0]).eps) ** 0.5
        yield params, small, tol
    finally:
        op._dtype, op._fixed, op._buffers, op.params, op.source.dtype = saved


def _to_float64(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t
