"""The engine's contract: batching, blocks, subsets, model state, verification, caching."""

from __future__ import annotations

import pytest
import torch
from oracles import _flat_fn, dense_hessian, make_case
from torch import nn

from curvscope.operators import (
    FisherOperator,
    GGNOperator,
    GradientCovarianceOperator,
    HessianOperator,
    minibatch_noise_scale,
)
from curvscope.operators import hessian as hessian_module


def _data(case, batch_size):
    return [
        (case.inputs[i : i + batch_size], case.targets[i : i + batch_size])
        for i in range(0, case.inputs.shape[0], batch_size)
    ]


@pytest.mark.parametrize("kind", [HessianOperator, GGNOperator, GradientCovarianceOperator])
def test_result_does_not_depend_on_batch_size(kind) -> None:
    case = make_case("mlp-tanh", "ce")
    block = torch.randn(
        case.model[0].weight.numel() * 0 + sum(p.numel() for p in case.model.parameters()),
        4,
        generator=torch.Generator().manual_seed(3),
        dtype=torch.float64,
    )
    results = [kind(case.model, case.loss_fn, _data(case, b)) @ block for b in (1, 7, 23)]
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("method", ["rev-rev", "rev-rev-batched", "fwd-rev"])
@pytest.mark.parametrize("cache", [True, False])
def test_block_product_equals_stacked_single_products(method: str, cache: bool) -> None:
    case = make_case("cnn-batchnorm", "ce")
    op = HessianOperator(
        case.model,
        case.loss_fn,
        (case.inputs, case.targets),
        batch_size=7,
        method=method,
        cache=cache,
    )
    block = torch.randn(
        op.shape[0], 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    stacked = torch.stack([op @ block[:, j] for j in range(5)], dim=1)
    torch.testing.assert_close(op @ block, stacked, rtol=1e-11, atol=1e-13)
    assert (op.cache_info.cached_batches == 4) is cache


def test_parameter_subset_is_the_sub_block_of_the_full_hessian() -> None:
    case = make_case("mlp-tanh", "ce")
    full = dense_hessian(case)
    names = [n for n, _ in case.model.named_parameters()]
    op = HessianOperator(
        case.model, case.loss_fn, (case.inputs, case.targets), params=["2.*", "4.bias"]
    )
    assert op.param_names == ("2.weight", "2.bias", "4.bias")
    sizes = [p.numel() for p in case.model.parameters()]
    starts = torch.tensor([0, *sizes]).cumsum(0)
    idx = torch.cat(
        [torch.arange(starts[i], starts[i + 1]) for i, n in enumerate(names) if n in op.param_names]
    )
    torch.testing.assert_close(op.to_dense(), full[idx][:, idx], rtol=1e-10, atol=1e-12)


def test_model_mode_parameters_and_gradients_are_left_as_they_were() -> None:
    case = make_case("cnn-batchnorm", "ce")
    case.model.train()
    case.model.conv.weight.grad = torch.ones_like(case.model.conv.weight)
    before = {n: p.detach().clone() for n, p in case.model.state_dict().items()}
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets))
    first = op @ torch.ones(op.shape[0], dtype=torch.float64)
    assert op.cache_info.cached_batches == op.cache_info.total_batches  # next product: no forward
    assert case.model.training and case.model.bn.training
    again = op @ torch.ones(op.shape[0], dtype=torch.float64)
    torch.testing.assert_close(again, first, rtol=0, atol=0)  # still the eval-mode Hessian
    assert case.model.training and case.model.bn.training
    torch.testing.assert_close(first, dense_hessian(case).sum(1), rtol=1e-10, atol=1e-12)
    for n, t in case.model.state_dict().items():
        assert torch.equal(t, before[n]), n  # BatchNorm running statistics untouched too
    assert torch.equal(case.model.conv.weight.grad, torch.ones_like(case.model.conv.weight))
    assert case.model.fc.weight.grad is None


def test_eval_mode_by_default_and_train_mode_on_request() -> None:
    case = make_case("cnn-batchnorm", "ce")
    h_eval = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets)).to_dense()
    torch.testing.assert_close(
        h_eval, dense_hessian(case), rtol=1e-10, atol=1e-12
    )  # oracle uses eval
    h_train = HessianOperator(
        case.model, case.loss_fn, (case.inputs, case.targets), train_mode=True
    ).to_dense()
    assert (h_train - h_eval).abs().max() > 1e-3  # batch statistics give another matrix
    running = case.model.bn.running_mean.clone()
    assert torch.equal(case.model.bn.running_mean, running)


def test_method_tuning_skips_vmapped_twins_for_one_column() -> None:
    case = make_case("mlp-tanh", "ce")
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets))
    op @ torch.ones(op.shape[0], 1, dtype=torch.float64)
    assert op.report.chosen[("graph", 1)] == "rev-rev"  # the only candidate: nothing timed
    assert ("graph", 1) not in op.report.timings
    op @ torch.ones(op.shape[0], 3, dtype=torch.float64)
    assert set(op.report.timings[("graph", 3)]) == {"rev-rev", "rev-rev-batched"}


def test_weights_are_snapshotted_at_construction() -> None:
    case = make_case("mlp-tanh", "ce")
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets))
    before = op.to_dense()
    with torch.no_grad():
        case.model[0].weight.add_(1.0)
    torch.testing.assert_close(op.to_dense(), before)


def test_a_wrong_fast_method_is_caught_and_never_used(monkeypatch) -> None:
    """Plant a forward-mode bug like torch 2.13's and check that 'auto' routes around it."""
    real_apply = hessian_module.hessian_apply

    def buggy(state, block):
        out = real_apply(state, block)
        return tuple(o * 1.03 for o in out) if state.method == "fwd-rev" else out

    monkeypatch.setattr(hessian_module, "hessian_apply", buggy)
    case = make_case("layernorm-gelu", "ce")
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), cache=False)
    torch.testing.assert_close(op.to_dense(), dense_hessian(case), rtol=1e-10, atol=1e-12)
    assert op.report.verified["fwd-rev"].startswith("relative error 3.00e-02")
    assert "fwd-rev" not in {m for m in op.report.chosen.values()}


def test_forward_over_reverse_is_exact_for_layernorm() -> None:
    """The nested forward-mode trap of torch 2.13 (issue 196700) hits jacfwd-of-jacrev, not the
    vmap(jvp(grad)) product used here: forced, it agrees with reverse-over-reverse on LayerNorm."""
    case = make_case("layernorm-gelu", "ce")
    ours = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), method="fwd-rev")
    torch.testing.assert_close(ours.to_dense(), dense_hessian(case), rtol=1e-10, atol=1e-12)


def test_mse_forward_over_reverse_trap_is_avoided() -> None:
    case = make_case("mlp-tanh", "mse")
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), cache=False)
    torch.testing.assert_close(op.to_dense(), dense_hessian(case), rtol=1e-10, atol=1e-12)
    assert "ZeroTensors" in op.report.verified["fwd-rev"]


def test_graph_cache_respects_its_budget_and_reports_memory() -> None:
    case = make_case("mlp-tanh", "ce")
    data = (case.inputs, case.targets)
    op = HessianOperator(case.model, case.loss_fn, data, batch_size=5, cache="auto", cache_memory=1)
    v = torch.ones(op.shape[0], dtype=torch.float64)
    r1 = op @ v
    assert op.cache_info.cached_batches == 0 and op.cache_info.predicted_bytes_per_sample > 0
    full = HessianOperator(case.model, case.loss_fn, data, batch_size=5, cache=True)
    r2 = full @ v
    assert full.cache_info.cached_batches == 5 and full.cache_info.cached_bytes > 0
    assert "5/5 batch graphs cached" in str(full.cache_info)
    torch.testing.assert_close(full @ v, r2, rtol=0, atol=0)  # served entirely from the cache
    torch.testing.assert_close(r1, r2, rtol=1e-12, atol=1e-14)


def test_monte_carlo_fisher_converges_to_the_exact_fisher() -> None:
    case = make_case("mlp-tanh", "ce", num_data=12)
    data = (case.inputs, case.targets)
    exact = FisherOperator(case.model, case.loss_fn, data).to_dense()
    errors = []
    for m in (50, 800):
        mc = FisherOperator(case.model, case.loss_fn, data, mc_samples=m, seed=1)
        dense = mc.to_dense()
        torch.testing.assert_close(mc.to_dense(), dense, rtol=0, atol=0)  # frozen labels
        errors.append(float((dense - exact).norm() / exact.norm()))
    # Monte-Carlo error ~ 1/sqrt(M): 16x more samples, about 4x smaller error
    assert 2.0 < errors[0] / errors[1] < 8.0, errors
    assert errors[1] < 0.1
    other_seed = FisherOperator(case.model, case.loss_fn, data, mc_samples=50, seed=2).to_dense()
    assert (
        other_seed
        - FisherOperator(case.model, case.loss_fn, data, mc_samples=50, seed=1).to_dense()
    ).abs().max() > 0


@pytest.mark.parametrize("replacement", [False, True])
def test_minibatch_noise_scale_matches_enumeration_of_all_batches(replacement: bool) -> None:
    import itertools

    gen = torch.Generator().manual_seed(0)
    g = torch.randn(6, 3, generator=gen, dtype=torch.float64)  # per-sample gradients, N = 6
    n, s = 6, 2
    sigma = (g - g.mean(0)).T @ (g - g.mean(0)) / n
    if replacement:
        batches = list(itertools.product(range(n), repeat=s))
    else:
        batches = list(itertools.combinations(range(n), s))
    means = torch.stack([g[list(b)].mean(0) for b in batches])
    cov = (means - g.mean(0)).T @ (means - g.mean(0)) / len(batches)
    torch.testing.assert_close(
        cov, minibatch_noise_scale(s, n, replacement=replacement) * sigma, rtol=1e-12, atol=0
    )


def test_nn_module_losses_other_than_known_ones_work_for_the_hessian() -> None:
    case = make_case("mlp-tanh", "mse")

    def huber(out, y):
        return nn.functional.huber_loss(out, y, delta=0.5)

    op = HessianOperator(case.model, huber, (case.inputs, case.targets), batch_size=7)
    fn, theta = _flat_fn(case.model, case.inputs)
    ref = torch.autograd.functional.hessian(lambda t: huber(fn(t), case.targets), theta)
    torch.testing.assert_close(op.to_dense(), ref, rtol=1e-10, atol=1e-12)
