"""Every curvature operator equals its independent dense float64 reference.

Models: MLP (tanh, ReLU), LayerNorm + GELU, a CNN with BatchNorm in eval mode, an MLP with a
frozen parameter. Losses: cross-entropy, label-smoothed cross-entropy, MSE. N = 23 samples in
batches of 7 (a ragged last batch of 2).
"""

from __future__ import annotations

import pytest
import torch
from oracles import (
    LOSSES,
    MODELS,
    assert_matches_dense,
    dense_covariance,
    dense_empirical_fisher,
    dense_fisher,
    dense_ggn,
    dense_hessian,
    make_case,
)

from curvscope.operators import (
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    GradientCovarianceOperator,
    HessianOperator,
    ResidualOperator,
)

CASES = [(m, loss) for m in MODELS for loss in LOSSES]


@pytest.fixture(scope="module")
def references() -> dict:
    return {}


def _refs(cache: dict, model: str, loss: str) -> dict[str, torch.Tensor]:
    key = (model, loss)
    if key not in cache:
        case = make_case(model, loss)
        h, g = dense_hessian(case), dense_ggn(case)
        cache[key] = {
            "hessian": h,
            "ggn": g,
            "residual": h - g,
            "empirical_fisher": dense_empirical_fisher(case),
            "covariance": dense_covariance(case),
            "fisher": dense_fisher(case),
        }
    return cache[key]


OPERATORS = {
    "hessian": HessianOperator,
    "ggn": GGNOperator,
    "residual": ResidualOperator,
    "empirical_fisher": EmpiricalFisherOperator,
    "covariance": GradientCovarianceOperator,
    "fisher": FisherOperator,
}


@pytest.mark.parametrize(("model", "loss"), CASES)
@pytest.mark.parametrize("kind", list(OPERATORS))
def test_operator_equals_dense_reference_float64(
    references: dict, model: str, loss: str, kind: str
) -> None:
    case = make_case(model, loss)
    op = OPERATORS[kind](case.model, case.loss_fn, (case.inputs, case.targets), batch_size=7)
    assert op.dtype == torch.float64
    assert_matches_dense(op, _refs(references, model, loss)[kind], rtol=1e-10)


@pytest.mark.parametrize(
    ("model", "loss"),
    [("mlp-tanh", "ce"), ("layernorm-gelu", "mse"), ("cnn-batchnorm", "ce-smooth")],
)
@pytest.mark.parametrize("kind", list(OPERATORS))
def test_operator_equals_dense_reference_float32(
    references: dict, model: str, loss: str, kind: str
) -> None:
    case = make_case(model, loss)
    case.model.float()
    inputs = case.inputs.float()
    targets = case.targets.float() if case.targets.is_floating_point() else case.targets
    op = OPERATORS[kind](case.model, case.loss_fn, (inputs, targets), batch_size=7)
    assert op.dtype == torch.float32
    assert_matches_dense(op, _refs(references, model, loss)[kind], rtol=1e-4)


def test_residual_is_hessian_minus_ggn_and_fisher_equals_ggn(references: dict) -> None:
    refs = _refs(references, "mlp-relu", "ce-smooth")
    torch.testing.assert_close(refs["fisher"], refs["ggn"], rtol=1e-12, atol=1e-14)
    refs = _refs(references, "layernorm-gelu", "mse")
    torch.testing.assert_close(refs["fisher"], refs["ggn"], rtol=1e-12, atol=1e-14)


def test_float64_operator_of_float32_model() -> None:
    """dtype=float64 runs a float32 model in float64 on copies of its weights."""
    case = make_case("mlp-tanh", "ce")
    ref = dense_hessian(case)
    case.model.float()
    op = HessianOperator(
        case.model, case.loss_fn, (case.inputs.float(), case.targets), dtype=torch.float64
    )
    assert op.dtype == torch.float64
    assert next(case.model.parameters()).dtype == torch.float32  # the model itself is untouched
    # weights and inputs were rounded to float32 once; the products themselves are float64
    assert_matches_dense(op, ref, rtol=1e-5)
