"""Opt-in ``torch.compile`` of the product (``compile=``): verified before use, falls back and
says why, equals the dense reverse-over-reverse oracle.

The fast tests replace ``torch.compile`` by a wrapper around the eager ``torch.func`` product
(exact, perturbed, raising or slow), so they exercise the engine's guard without inductor; one
slow test compiles for real.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from oracles import (
    assert_matches_dense,
    dense_covariance,
    dense_empirical_fisher,
    dense_fisher,
    dense_ggn,
    dense_hessian,
    make_case,
)

from curvscope.errors import InputError
from curvscope.operators import (
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    GradientCovarianceOperator,
    HessianOperator,
    ResidualOperator,
)


def _fake_compile(
    monkeypatch: pytest.MonkeyPatch, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> list[int]:
    """Make ``torch.compile(fn, ...)`` return ``wrap(fn)``; the list counts the calls of it."""
    calls: list[int] = []

    def fake(fn: Callable[..., Any], **_: Any) -> Callable[..., Any]:
        wrapped = wrap(fn)

        def run(*args: Any) -> Any:
            calls.append(1)
            return wrapped(*args)

        return run

    monkeypatch.setattr(torch, "compile", fake)
    return calls


def _scaled(factor: float, when: Callable[[int], bool] = lambda size: True):
    """A 'compiled' product wrong by ``factor`` on batches whose size satisfies ``when``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(params, inputs, targets, size, *block):
            out = fn(params, inputs, targets, size, *block)
            return tuple(t * factor for t in out) if when(size) else out

        return run

    return wrap


def _data(case) -> tuple[torch.Tensor, torch.Tensor]:
    return case.inputs, case.targets


def test_wrong_compiled_product_is_rejected_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    case = make_case("mlp-tanh", "ce", num_data=10)
    calls = _fake_compile(monkeypatch, _scaled(1 + 2e-3))
    op = HessianOperator(case.model, case.loss_fn, _data(case), batch_size=4, compile="always")
    with pytest.warns(UserWarning, match="compile='always' is not used.*failed verification"):
        got = op.to_dense(block_size=7)
    assert op.report.compile.startswith("failed verification: relative error 2.0e-03")
    assert op._compiled is None
    assert len(calls) == 1  # checked once, never used for a product
    ref = dense_hessian(case)
    assert float((got - ref).abs().max()) <= 1e-10 * float(ref.abs().max())


def test_float32_operator_is_checked_in_float64_and_in_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A product wrong only in float32 passes the float64 check and fails the float32 one."""
    case = make_case("mlp-tanh", "ce", num_data=10)
    model = case.model.float()

    def float32_wrong(fn):
        def run(params, inputs, targets, size, *block):
            out = fn(params, inputs, targets, size, *block)
            return tuple(t * 1.01 if t.dtype == torch.float32 else t for t in out)

        return run

    _fake_compile(monkeypatch, float32_wrong)
    op = HessianOperator(model, case.loss_fn, (case.inputs.float(), case.targets), compile=True)
    with pytest.warns(UserWarning, match="failed verification"):
        op @ torch.ones(op.shape[0])
    assert "in torch.float32 on the first batch" in op.report.compile
    assert op.report.compile_timing.float64_relative_error <= 1e-12


def test_a_wrong_later_graph_falls_back_mid_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last, partial batch compiles another graph; wrong there, the engine falls back."""
    case = make_case("mlp-tanh", "ce", num_data=10)
    calls = _fake_compile(monkeypatch, _scaled(1.5, when=lambda size: size == 2))
    op = HessianOperator(case.model, case.loss_fn, _data(case), batch_size=4, compile="always")
    v = torch.randn(op.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="failed verification: relative error 5.0e-01.*batch 2"):
        got = op @ v
    assert op._compiled is None and op.report.compile.startswith("failed verification")
    assert len(calls) == 6  # setup: check + 2 timing runs; the pass: batches 0, 1, failing 2
    ref = dense_hessian(case) @ v
    assert float((got - ref).abs().max()) <= 1e-10 * float(ref.abs().max())


@pytest.mark.parametrize(
    "message, reported",
    [
        ("inductor: no C compiler\nsecond line", "RuntimeError: inductor: no C compiler"),
        (  # inductor's wrapper says what failed on its second line
            "backend='inductor' raised:\nNotImplementedError: Cannot access storage\n\nSet X",
            "RuntimeError: backend='inductor' raised: NotImplementedError: Cannot access storage",
        ),
    ],
)
def test_compile_error_falls_back(
    monkeypatch: pytest.MonkeyPatch, message: str, reported: str
) -> None:
    case = make_case("mlp-tanh", "mse", num_data=6)

    def broken(fn):
        def run(*args):
            raise RuntimeError(message)

        return run

    _fake_compile(monkeypatch, broken)
    op = GGNOperator(case.model, case.loss_fn, _data(case), compile=True)
    with pytest.warns(UserWarning, match="products run uncompiled: compile error: RuntimeError"):
        got = op @ torch.eye(op.shape[0], dtype=torch.float64)
    assert op.report.compile == f"compile error: {reported}"
    ref = dense_ggn(case)
    assert float((got - ref).abs().max()) <= 1e-10 * float(ref.abs().max())


def test_a_slower_compiled_product_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    case = make_case("mlp-tanh", "ce", num_data=6)

    def slow(fn):
        def run(*args):
            time.sleep(0.2)
            return fn(*args)

        return run

    _fake_compile(monkeypatch, slow)
    op = HessianOperator(case.model, case.loss_fn, _data(case), compile=True, cache=False)
    with pytest.warns(UserWarning, match="not used: slower per product than uncompiled rev-rev"):
        op @ torch.ones(op.shape[0], dtype=torch.float64)
    timing = op.report.compile_timing
    assert op.report.compile.startswith("not used: slower")
    assert timing.seconds_compiled >= 0.2 > timing.seconds_uncompiled
    assert timing.break_even is None and timing.uncompiled == "rev-rev, prepared afresh"


OPERATORS = [
    (HessianOperator, dense_hessian),
    (ResidualOperator, lambda case: dense_hessian(case) - dense_ggn(case)),
    (GGNOperator, dense_ggn),
    (FisherOperator, dense_fisher),
    (EmpiricalFisherOperator, dense_empirical_fisher),
    (GradientCovarianceOperator, dense_covariance),
]


@pytest.mark.parametrize("cls, dense", OPERATORS, ids=[c.__name__ for c, _ in OPERATORS])
def test_used_product_equals_dense_oracle(monkeypatch: pytest.MonkeyPatch, cls, dense) -> None:
    """The torch.func product that is compiled, run eagerly: every family, ragged batches."""
    case = make_case("mlp-tanh", "ce", num_data=9)
    calls = _fake_compile(monkeypatch, lambda fn: fn)
    op = cls(case.model, case.loss_fn, _data(case), batch_size=4, compile="always")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_matches_dense(op, dense(case), rtol=1e-10)
    assert op.report.compile == "ok" and op._compiled is not None
    timing = op.report.compile_timing
    assert timing.graphs >= 3 and timing.max_relative_error <= 1e-12
    assert len(calls) > timing.graphs  # products ran compiled after their graph's check


def test_monte_carlo_fisher_is_not_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    case = make_case("mlp-tanh", "ce", num_data=6)
    calls = _fake_compile(monkeypatch, lambda fn: fn)
    op = FisherOperator(case.model, case.loss_fn, _data(case), mc_samples=2, compile=True)
    with pytest.warns(UserWarning, match="not supported: the Monte-Carlo Fisher"):
        op @ torch.ones(op.shape[0], dtype=torch.float64)
    assert op.report.compile.startswith("not supported") and not calls


def test_compile_is_off_by_default_and_checked() -> None:
    case = make_case("mlp-tanh", "ce", num_data=6)
    op = HessianOperator(case.model, case.loss_fn, _data(case))
    op @ torch.ones(op.shape[0], dtype=torch.float64)
    assert op.report.compile == "off" and op._compiled is None
    for bad in ("yes", 1, None, "auto"):
        with pytest.raises(InputError, match=r"compile must be False .*True .*'always'.* got"):
            HessianOperator(case.model, case.loss_fn, _data(case), compile=bad)


@pytest.mark.slow
def test_real_compile_equals_dense_oracle() -> None:
    """torch.compile (inductor) for real, on a tiny float64 MLP: the compiled operator's dense
    matrix against the dense reverse-over-reverse oracle."""
    case = make_case("mlp-tanh", "ce", num_data=8)
    op = HessianOperator(case.model, case.loss_fn, _data(case), compile="always")
    got = op.to_dense(block_size=op.shape[0])
    assert op.report.compile == "ok", op.report.compile
    assert op.report.compile_timing.graphs == 2  # k = 1 (check and timing), k = P
    ref = dense_hessian(case)
    assert float((got - ref).abs().max()) <= 1e-10 * float(ref.abs().max())


@pytest.mark.slow
@pytest.mark.parametrize(
    "cls, dense", [(GGNOperator, dense_ggn), (GradientCovarianceOperator, dense_covariance)]
)
def test_real_compile_of_output_space_operators(cls, dense) -> None:
    """The J^T Lambda J family compiled for real, ragged batches (two graphs per block width);
    the covariance (like the empirical Fisher) takes the output gradient inside the graph."""
    case = make_case("mlp-tanh", "mse", num_data=7)
    op = cls(case.model, case.loss_fn, _data(case), batch_size=4, compile="always")
    block = torch.randn(
        op.shape[0], 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    got = op @ block
    assert op.report.compile == "ok", op.report.compile
    ref = dense(case) @ block
    assert float((got - ref).abs().max()) <= 1e-10 * float(ref.abs().max())
