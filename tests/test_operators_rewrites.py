"""Exact kernel rewrites (BatchNorm folding, channels_last): same products, verified, user's model
untouched."""

from __future__ import annotations

import contextlib
import copy
import warnings

import pytest
import torch
from oracles import dense_ggn, dense_hessian, make_case
from torch import nn

import curvscope.operators.curvature as curvature
from curvscope.errors import InputError
from curvscope.operators import GGNOperator, HessianOperator
from curvscope.operators._rewrites import RewrittenModel, parse_rewrite, rewrite_model
from curvscope.operators.verify import verify_rewrite


class ConvLinearBN(nn.Module):
    """Conv(no bias)+BN2d, Conv+BN2d (affine off), Linear+BN1d: every fold case on 1x6x6."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(3)
        self.c2 = nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect")
        self.b2 = nn.BatchNorm2d(2, affine=False)
        self.fc = nn.Linear(2 * 3 * 3, 4)
        self.b3 = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 3)
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for bn in (self.b1, self.b2, self.b3):
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen) * 0.3)
                bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
                if bn.affine:
                    bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
                    bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.b1(self.c1(x)))
        h = nn.functional.max_pool2d(torch.tanh(self.b2(self.c2(h))), 2)
        return self.out(torch.tanh(self.b3(self.fc(h.flatten(1)))))


def _case(model: nn.Module | None = None):
    case = make_case("cnn-batchnorm", "ce", num_data=12)
    if model is not None:
        case.model = model.double().eval()
    return case


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _block(op, k: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(11)
    return torch.randn(op.shape[0], k, generator=gen, dtype=torch.float64)


def _close(got: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-10) -> bool:
    return bool((got - ref).abs().max() <= rtol * ref.abs().max())


@pytest.mark.parametrize("rewrite", ["fold-bn", "fold-bn+channels-last", "channels-last"])
@pytest.mark.parametrize("model", ["tiny", "every-fold"])
def test_rewritten_hessian_equals_dense_reference(rewrite: str, model: str) -> None:
    case = _case(None if model == "tiny" else ConvLinearBN())
    case.model.train()  # the user's model may be in train mode: the operator evaluates in eval
    before = _snapshot(case.model)
    modes_before = [(type(m), m.training) for m in case.model.modules()]
    data = (case.inputs, case.targets)
    plain = HessianOperator(case.model, case.loss_fn, data, batch_size=5, rewrite="none")
    op = HessianOperator(case.model, case.loss_fn, data, batch_size=5, rewrite=rewrite)
    block = _block(op)
    got = op @ block
    assert op.report.rewrite == rewrite and op.report.rewrites[rewrite] == "ok"
    if "fold-bn" in rewrite:  # the BatchNorms are really gone from the evaluated graph
        graph = op._rewritten.module.graph
        targets = [n.target for n in graph.nodes if n.op == "call_module"]
        assert not any(t.startswith("b") for t in targets), targets
        assert sum(t.startswith("_curvscope_fold_") for t in targets) == op._rewritten.folded
        assert op._rewritten.folded == (1 if model == "tiny" else 3)
    after = _snapshot(case.model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [(type(m), m.training) for m in case.model.modules()] == modes_before
    assert _close(got, plain @ block)
    assert _close(got, dense_hessian(case) @ block)  # the oracle switches the model to eval


def test_folded_ggn_and_fast_methods_match() -> None:
    case = _case(ConvLinearBN())
    data = (case.inputs, case.targets)
    op = GGNOperator(case.model, case.loss_fn, data, batch_size=6, rewrite="fold-bn")
    block = _block(op)
    got = op @ block
    assert op.report.rewrite == "fold-bn"
    assert _close(got, dense_ggn(case) @ block)
    ref = dense_hessian(case) @ block
    for method in ("rev-rev-batched", "fwd-rev"):
        fast = HessianOperator(
            case.model, case.loss_fn, data, batch_size=6, rewrite="fold-bn", method=method
        )
        assert _close(fast @ block, ref)
        assert fast.report.rewrite == "fold-bn"


def test_auto_times_fold_and_keeps_a_verified_choice() -> None:
    case = _case()
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), batch_size=6)
    op @ torch.ones(op.shape[0], dtype=torch.float64)
    both = "fold-bn+channels-last"
    # a verified fold retires the unfolded model: only the fold variants are timed
    assert op.report.rewrites["fold-bn"] == "ok" and op.report.rewrites[both] == "ok"
    assert op.report.rewrites["channels-last"].startswith("not timed: a verified fold-bn")
    assert set(op.report.rewrite_timings) == {"fold-bn", both}
    assert op.report.rewrite == min(op.report.rewrite_timings, key=op.report.rewrite_timings.get)
    assert _close(op @ _block(op), dense_hessian(case) @ _block(op))


def test_a_lone_verified_fold_is_used_without_timing() -> None:
    """No convolution: fold-bn is the one candidate; once verified nothing is left to time."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3))
    model = model.double().eval()
    with torch.no_grad():  # running statistics away from the identity, so the fold matters
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=gen)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), batch_size=6)
    v = torch.randn(op.shape[0], 2, generator=gen, dtype=torch.float64)
    got = op @ v
    assert op.report.rewrites == {"fold-bn": "ok"} and op.report.rewrite == "fold-bn"
    assert op.report.rewrite_timings == {}
    plain = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), batch_size=6, rewrite="none")
    torch.testing.assert_close(got, plain @ v, rtol=1e-10, atol=1e-12)


def test_no_batchnorm_model_is_not_rewritten() -> None:
    case = make_case("mlp-tanh", "ce", num_data=6)
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets))
    op @ torch.ones(op.shape[0], dtype=torch.float64)
    assert op.report.rewrite == "none" and op._rewritten is None
    assert op.report.rewrites["fold-bn"].startswith("not applicable: fold-bn: no eval-mode")
    assert op.report.rewrite_timings == {}


def test_train_mode_batchnorm_is_not_folded() -> None:
    case = _case()
    data = (case.inputs, case.targets)
    auto = HessianOperator(case.model, case.loss_fn, data, train_mode=True, batch_size=6)
    auto @ torch.ones(auto.shape[0], dtype=torch.float64)
    # no fold in train mode; channels_last (the model has a Conv2d) is still a candidate
    assert set(auto.report.rewrites) == {"channels-last"}
    asked = HessianOperator(
        case.model, case.loss_fn, data, train_mode=True, batch_size=6, rewrite="fold-bn"
    )
    with pytest.warns(UserWarning, match="train_mode=True, BatchNorm uses batch statistics"):
        asked @ torch.ones(asked.shape[0], dtype=torch.float64)
    assert asked.report.rewrite == "none"
    # a BatchNorm module left in training mode inside the traced model is never a fold candidate
    model = copy.deepcopy(case.model).train()
    with pytest.raises(InputError, match="no eval-mode BatchNorm"):
        rewrite_model(model, ("fold-bn",))


def _wrong_fold(model: nn.Module, parts: tuple[str, ...]) -> RewrittenModel:
    """A deliberately wrong kernel: BatchNorm folded with a wrong epsilon."""
    rewritten = rewrite_model(model, parts)
    for module in rewritten.module.modules():
        if hasattr(module, "eps") and type(module).__name__ == "_FoldedLayer":
            module.eps = 1e-2
    return rewritten


def test_verification_rejects_a_wrong_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    case = _case()
    data = (case.inputs, case.targets)
    monkeypatch.setattr(curvature, "rewrite_model", _wrong_fold)
    auto = HessianOperator(case.model, case.loss_fn, data, batch_size=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto falls back silently
        exact = auto @ _block(auto)
    assert auto.report.rewrite in ("none", "channels-last")  # never a wrong fold
    assert auto.report.rewrites["fold-bn"].startswith("relative error")
    assert auto.report.rewrites["fold-bn+channels-last"].startswith("relative error")
    assert _close(exact, dense_hessian(case) @ _block(auto))
    asked = HessianOperator(case.model, case.loss_fn, data, batch_size=6, rewrite="fold-bn")
    with pytest.warns(UserWarning, match="rewrite='fold-bn' is not used.*relative error"):
        asked @ torch.ones(asked.shape[0], dtype=torch.float64)
    assert asked.report.rewrite == "none" and asked._rewritten is None


def test_float32_kernel_error_is_caught_although_float64_agrees() -> None:
    """A kernel wrong only in float32 (like channels_last convolutions on torch 2.13 CPU: 2e-3
    in the gradient) passes the float64 check and must fail the check in the operator's dtype."""
    case = _case()
    model = case.model.float().eval()  # as the engine evaluates it (train_mode=False)
    inputs, targets = case.inputs.float(), case.targets

    def float32_only_error(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return out * (1 + 2e-3) if out.dtype == torch.float32 else out

    op = HessianOperator(model, case.loss_fn, (inputs, targets), batch_size=6, rewrite="none")
    first = op.source.first_batch()
    faulty = copy.deepcopy(model)  # same parameter names; a conv kernel wrong in float32 only
    faulty.conv.register_forward_hook(float32_only_error)
    wrong = RewrittenModel(module=faulty, prepare_inputs=lambda x: x)
    status = verify_rewrite(op, first, wrong)
    assert status.startswith("relative error") and "torch.float32" in status, status
    good = rewrite_model(model, ("fold-bn", "channels-last"))
    assert verify_rewrite(op, first, good) == "ok"


def test_float32_tolerance_follows_the_models_own_float32_error() -> None:
    """In float32 a rewrite is judged against the float64 product, with a tolerance of twice
    the error of the model as written: a model inexact in float32 by itself (here 1e-3 in a
    convolution's output, float32 only) keeps a rewrite that is as inexact the other way
    (2e-3 from the model as written: refused by a comparison of the two), and still refuses
    one ten times worse, naming both errors."""
    case = _case()
    model = case.model.float().eval()

    def off_by(factor: float):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            return out * (1 + factor) if out.dtype == torch.float32 else out

        return hook

    model.conv.register_forward_hook(off_by(1e-3))
    op = HessianOperator(model, case.loss_fn, (case.inputs.float(), case.targets), batch_size=6,
                         rewrite="none")  # fmt: skip
    first = op.source.first_batch()
    other = copy.deepcopy(model)  # as inexact, the other way: 2e-3 from the model as written
    other.conv._forward_hooks.clear()
    other.conv.register_forward_hook(off_by(-1e-3))
    assert verify_rewrite(op, first, RewrittenModel(other, lambda x: x)) == "ok"
    worse = copy.deepcopy(model)
    worse.conv.register_forward_hook(off_by(1e-2))
    status = verify_rewrite(op, first, RewrittenModel(module=worse, prepare_inputs=lambda x: x))
    assert status.startswith("relative error") and "the model as written: " in status, status
    written = float(status.split("the model as written: ")[1].split(";")[0])
    assert 1e-4 < written < 1e-2  # the hook's error, not rounding


def test_rewrite_argument_is_checked() -> None:
    assert parse_rewrite("auto") is None
    assert parse_rewrite("none") == () == parse_rewrite(None)
    assert parse_rewrite("channels-last+fold-bn") == ("fold-bn", "channels-last")
    case = _case()
    for bad in ("fold", "fold-bn+fold-bn", 3):
        with pytest.raises(InputError, match="rewrite must be"):
            HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), rewrite=bad)


def test_untraceable_model_is_reported_not_applicable() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 3)
            self.bn = nn.BatchNorm1d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.bn(self.fc(x))
            return self.bn(self.fc(-x))

    model = Branchy().double().eval()
    x = torch.randn(6, 5, dtype=torch.float64)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, torch.arange(6) % 3))
    op @ torch.ones(op.shape[0], dtype=torch.float64)
    assert op.report.rewrite == "none"
    assert "torch.fx cannot trace" in op.report.rewrites["fold-bn"]


# ---------------------------------------------------------------- method choice without a cache


def test_uncached_tuning_ignores_a_one_time_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """The double backward pays a one-time cost on its first call (torch imports sympy lazily on
    the first double backward); forward-over-reverse is slower on every batch. A single
    first-batch timing picks fwd-rev; the round-robin minimum picks rev-rev, and every batch's
    product, whichever method computed it, is exact."""
    import time

    import curvscope.operators.hessian as hessian_module

    real_apply = hessian_module.hessian_apply
    calls = {"rev-rev": 0}

    def costly(state, block):
        if not op._checked:  # verification before the first product: not timed
            pass
        elif state.method == "rev-rev":
            calls["rev-rev"] += 1
            if calls["rev-rev"] == 1:
                time.sleep(0.5)
        elif state.method == "fwd-rev":
            time.sleep(0.1)
        return real_apply(state, block)

    monkeypatch.setattr(hessian_module, "hessian_apply", costly)
    case = make_case("mlp-tanh", "ce", num_data=12)
    op = HessianOperator(
        case.model, case.loss_fn, (case.inputs, case.targets), batch_size=3, cache=False
    )
    block = _block(op, 1)
    ref = dense_hessian(case) @ block
    assert _close(op @ block, ref)  # 4 batches dealt to rev-rev and fwd-rev, 2 each
    assert op.report.chosen[("fresh", 1)] == "rev-rev" and calls["rev-rev"] == 2
    assert set(op.report.timings[("fresh", 1)]) == {"rev-rev", "fwd-rev"}
    assert _close(op @ block, ref)


def test_tuning_says_when_the_method_choice_has_settled() -> None:
    """Two fresh batches per product, two candidates timed on TUNING_RUNS = 2 batches each: the
    first product leaves the choice open (``tuning``), the second settles it."""
    case = make_case("mlp-tanh", "ce", num_data=12)
    op = HessianOperator(
        case.model, case.loss_fn, (case.inputs, case.targets), batch_size=6, cache=False
    )
    assert not op.tuning  # nothing to choose before a product
    block = _block(op, 1)
    op @ block
    assert op.tuning and ("fresh", 1) not in op.report.chosen
    op @ block
    assert not op.tuning and op.report.chosen[("fresh", 1)] in ("rev-rev", "fwd-rev")


@pytest.mark.parametrize("cache", ["auto", False])
def test_rewrite_choice_scores_what_repeats_by_the_median(monkeypatch, cache) -> None:
    # A fake clock: option "a" prepares in 1.0 s and applies in 3.0 s (one slow round); "b"
    # prepares in 0.1 s and applies in 3.5 s, once in a lucky 0.5 s. With the cache the apply
    # repeats and "a" is cheaper; without it "b" is. The old score (minimum of two rounds of
    # prepare + apply) picked "b" with the cache, on its lucky round.
    case = make_case("mlp-tanh", "ce", num_data=6)
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), cache=cache)
    clock, current = [0.0], [""]
    costs = {"a": (1.0, [3.0, 9.0, 3.0]), "b": (0.1, [3.5, 0.5, 3.5])}
    rounds = {"a": 0, "b": 0}

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock[0]

    @contextlib.contextmanager
    def using(rewritten):
        current[0] = rewritten
        yield

    def prepare(method, batch, params):
        clock[0] += costs[current[0]][0]
        return object()

    def apply(state, pieces):
        clock[0] += costs[current[0]][1][rounds[current[0]]]
        rounds[current[0]] += 1

    monkeypatch.setattr(curvature, "time", FakeTime)
    monkeypatch.setattr(op, "_using", using)
    monkeypatch.setattr(op, "_prepare", prepare)
    monkeypatch.setattr(op, "_apply", apply)
    first = next(iter(op.source.batches()))
    timings = op._time_rewrites(first, {"a": "a", "b": "b"})
    if cache:
        assert timings == pytest.approx({"a": 3.0, "b": 3.5})
    else:
        assert timings == pytest.approx({"a": 4.0, "b": 3.6})
