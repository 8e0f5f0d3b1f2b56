"""Sum-reduced losses: every operator kind is the matrix of the loss as written.

References (tests/oracles.py) are independent of the engine's per-sample decomposition: the
Hessian and GGN of ``loss_fn(model(all inputs), all targets)`` whatever the reduction, per-sample
gradients from a loop over samples, the Fisher as an explicit sum over labels. Data come in ragged
batches (7, 5, 9, 2). A sum-reduced operator is N times the mean-reduced one (N D for MSE and
BCE, whose sum also runs over the D output entries; N L for cross-entropy over L positions).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles import (
    any_fisher,
    any_references,
    assert_matches_dense,
    make_any_case,
    ragged_batches,
)
from torch import nn

from curvscope import InputError
from curvscope.operators import (
    OPERATORS,
    FisherOperator,
    HessianOperator,
    verify_engine,
)
from curvscope.spectral import exact_spectrum, slq, top_eigenpairs

SIZES = (7, 5, 9, 2)


# every loss sum-reduced; the multi-entry ones (where sum and mean differ by more than N) also
# mean-reduced
CASES = [
    ("ce", "sum"),
    ("ce-smooth", "sum"),
    ("ce-seq", "sum"),
    ("bce-soft", "sum"),
    ("mse-multi", "sum"),
    ("ce-seq", "mean"),
    ("bce-soft", "mean"),
    ("mse-multi", "mean"),
]

#: sum-reduced / mean-reduced: N times the entries the sum also runs over (D or L)
RATIO = {"ce": 23, "ce-smooth": 23, "ce-seq": 23 * 2, "bce-soft": 23 * 3, "mse-multi": 23 * 6}


@pytest.fixture(scope="module")
def references() -> dict:
    return {}


def _refs(cache: dict, loss: str, reduction: str) -> dict[str, torch.Tensor]:
    if (loss, reduction) not in cache:
        cache[loss, reduction] = any_references(make_any_case("tensor", loss, reduction))
    return cache[loss, reduction]


def _operator(kind: str, loss: str, reduction: str, **options):
    case = make_any_case("tensor", loss, reduction)
    data = ragged_batches(case.inputs, case.targets, SIZES)
    return OPERATORS[kind](case.model, case.loss_fn, data, **options)


@pytest.mark.parametrize(("loss", "reduction"), CASES)
@pytest.mark.parametrize("kind", list(OPERATORS))
def test_operator_equals_dense_reference(
    references: dict, loss: str, reduction: str, kind: str
) -> None:
    op = _operator(kind, loss, reduction)
    assert op.dtype == torch.float64 and op.num_data == 23
    assert_matches_dense(op, _refs(references, loss, reduction)[kind], rtol=1e-10)


@pytest.mark.parametrize("loss", list(RATIO))
def test_sum_reduced_operator_is_n_times_the_mean_reduced_one(loss: str) -> None:
    block = torch.randn(
        _operator("hessian", loss, "sum").shape[0],
        3,
        generator=torch.Generator().manual_seed(3),
        dtype=torch.float64,
    )
    for kind in OPERATORS:
        summed = _operator(kind, loss, "sum") @ block
        mean = _operator(kind, loss, "mean") @ block
        # the covariance and the empirical Fisher are quadratic in the per-sample gradients,
        # which the sum scales by D (or L) too
        per_entry = RATIO[loss] // 23
        ratio = RATIO[loss] * (per_entry if kind in ("empirical-fisher", "covariance") else 1)
        torch.testing.assert_close(summed, ratio * mean, rtol=1e-11, atol=1e-13)


def test_monte_carlo_fisher_scales_with_the_same_frozen_labels() -> None:
    # labels are drawn per sample from the model's law, which the reduction does not change;
    # only the scale of the likelihood does, so the same seed gives the same draws
    for loss in ("ce", "bce-soft", "mse-multi"):
        summed = _operator("fisher", loss, "sum", mc_samples=4, seed=3)
        mean = _operator("fisher", loss, "mean", mc_samples=4, seed=3)
        block = torch.eye(summed.shape[0], dtype=torch.float64)[:, :5]
        torch.testing.assert_close(summed @ block, RATIO[loss] * (mean @ block), rtol=1e-11, atol=0)


def test_monte_carlo_fisher_of_a_sum_reduced_loss_converges_to_the_exact_one() -> None:
    case = make_any_case("tensor", "bce-soft", "sum", num_data=12)
    exact = any_fisher(case)
    data = ragged_batches(case.inputs, case.targets, (5, 7))
    errors = []
    for m in (50, 800):
        mc = FisherOperator(case.model, case.loss_fn, data, mc_samples=m, seed=1).to_dense()
        errors.append(float((mc - exact).norm() / exact.norm()))
    assert 2.0 < errors[0] / errors[1] < 8.0, errors  # error ~ 1/sqrt(M)
    assert errors[1] < 0.1, errors


def test_spectra_scale_by_n() -> None:
    summed = _operator("hessian", "ce", "sum")
    mean = _operator("hessian", "ce", "mean")
    exact_sum, exact_mean = exact_spectrum(summed), exact_spectrum(mean)
    np.testing.assert_allclose(
        exact_sum.eigenvalues, 23 * exact_mean.eigenvalues, rtol=0, atol=1e-10
    )
    top_sum = top_eigenpairs(summed, 2, seed=0)
    top_mean = top_eigenpairs(mean, 2, seed=0)
    np.testing.assert_allclose(top_sum.values, 23 * top_mean.values, rtol=1e-9)
    np.testing.assert_allclose(top_sum.values, exact_sum.eigenvalues[::-1][:2], rtol=1e-9)
    # Lanczos is scale-equivariant: the same probes give nodes times N and the same weights
    density_sum = slq(summed, num_steps=12, num_probes=2, seed=4)
    density_mean = slq(mean, num_steps=12, num_probes=2, seed=4)
    np.testing.assert_allclose(density_sum.nodes, 23 * density_mean.nodes, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(density_sum.weights, density_mean.weights, atol=1e-8)


@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss, nn.MSELoss, nn.BCEWithLogitsLoss])
def test_reduction_none_is_refused_naming_both_forms(loss) -> None:
    case = make_any_case("tensor", "ce", "mean")
    with pytest.raises(
        InputError,
        match=rf"reduction='none'.*reduction='mean' or reduction='sum'.*{loss.__name__}\(\)",
    ):
        HessianOperator(case.model, loss(reduction="none"), (case.inputs, case.targets))


def test_custom_sum_reduced_callable() -> None:
    case = make_any_case("tensor", "ce", "sum")

    class SummedCE:
        reduction = "sum"

        def __call__(self, out, y):
            return nn.functional.cross_entropy(out, y, reduction="sum")

    data = ragged_batches(case.inputs, case.targets, SIZES)
    refs = any_references(case)
    for kind in ("hessian", "ggn", "empirical-fisher"):
        op = OPERATORS[kind](case.model, SummedCE(), data)
        assert_matches_dense(op, refs[kind], rtol=1e-10)

    def summed(out, y):  # no reduction attribute: taken for a mean, and caught
        return nn.functional.cross_entropy(out, y, reduction="sum")

    with pytest.raises(InputError, match=r"not a per-sample mean.*attribute reduction='sum'"):
        HessianOperator(case.model, summed, data) @ torch.zeros(
            refs["hessian"].shape[0], dtype=torch.float64
        )

    class WronglyLabelled(SummedCE):
        def __call__(self, out, y):
            return nn.functional.cross_entropy(out, y)

    with pytest.raises(InputError, match=r"not a per-sample sum"):
        HessianOperator(case.model, WronglyLabelled(), data) @ torch.zeros(
            refs["hessian"].shape[0], dtype=torch.float64
        )


def test_fingerprint_tells_the_reductions_apart() -> None:
    summed = _operator("hessian", "ce", "sum").fingerprint()
    mean = _operator("hessian", "ce", "mean").fingerprint()
    assert summed["operator"] != mean["operator"]
    assert summed["weights"] == mean["weights"] and summed["data"] == mean["data"]


def test_verify_engine_on_a_sum_reduced_loss() -> None:
    case = make_any_case("tensor", "ce-smooth", "sum")
    check = verify_engine(
        case.model, case.loss_fn, ragged_batches(case.inputs, case.targets, SIZES)
    )
    assert check.all_ok, str(check)
    assert set(check.results) == {"hessian", "ggn"}
