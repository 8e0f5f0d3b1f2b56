"""Bad input gets a clear error: what was expected, what arrived, how to fix it."""

from __future__ import annotations

import pytest
import torch
from oracles import make_case
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from curvscope import InputError, NonDeterministicError, NonFiniteError
from curvscope.operators import EmpiricalFisherOperator, FisherOperator, HessianOperator


@pytest.fixture
def case():
    return make_case("mlp-tanh", "ce")


def test_empty_data(case) -> None:
    with pytest.raises(InputError, match="the data is empty"):
        HessianOperator(case.model, case.loss_fn, []) @ torch.zeros(111, dtype=torch.float64)


def test_inputs_and_targets_of_different_lengths(case) -> None:
    with pytest.raises(InputError, match=r"has 23 inputs and 22 targets"):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets[:-1]))
    batches = [(case.inputs[:5], case.targets[:4])]
    with pytest.raises(InputError, match=r"batch 0 of the data has 5 inputs and 4 targets"):
        HessianOperator(case.model, case.loss_fn, batches) @ torch.zeros(111, dtype=torch.float64)


def test_a_batch_that_is_not_a_pair(case) -> None:
    with pytest.raises(InputError, match=r"batch 0 of the data is a tuple of length 3"):
        HessianOperator(
            case.model, case.loss_fn, [(case.inputs, case.targets, case.targets)]
        ) @ torch.zeros(111, dtype=torch.float64)
    with pytest.raises(InputError, match="single tensor"):
        HessianOperator(case.model, case.loss_fn, case.inputs)
    with pytest.raises(InputError, match="one-shot iterator"):
        HessianOperator(case.model, case.loss_fn, (b for b in [(case.inputs, case.targets)]))


def test_model_without_trainable_parameters(case) -> None:
    for p in case.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(InputError, match="no trainable parameters"):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets))
    with pytest.raises(InputError, match="has no parameters"):
        HessianOperator(nn.ReLU(), case.loss_fn, (case.inputs, case.targets))


def test_params_pattern_that_matches_nothing(case) -> None:
    with pytest.raises(
        InputError,
        match=r"'conv\*' matches no trainable parameter; trainable parameters are: 0.weight",
    ):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), params="conv*")
    case.model[2].weight.requires_grad_(False)
    with pytest.raises(InputError, match=r"matches only frozen parameters \['2.weight'\]"):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), params="2.weight")


def test_vector_of_wrong_length_dtype_or_device(case) -> None:
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets))
    with pytest.raises(
        InputError,
        match=r"size P = 111: expected a vector \(111,\) or a block \(111, k\), got shape \(110,\)",
    ):
        op @ torch.zeros(110, dtype=torch.float64)
    with pytest.raises(InputError, match=r"computes in torch.float64, got a torch.float32 vector"):
        op @ torch.zeros(111)
    with pytest.raises(InputError, match=r"lives on cpu, got a vector on meta"):
        op @ torch.zeros(111, dtype=torch.float64, device="meta")


def test_loss_that_is_not_finite(case) -> None:
    with torch.no_grad():
        case.model[0].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the loss is nan at the given weights"):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets)) @ torch.zeros(
            111, dtype=torch.float64
        )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_data_that_is_not_finite(case, bad: float) -> None:
    inputs = case.inputs.clone()
    inputs[20, 0] = bad  # in the last batch, not the one the first-use checks look at
    op = HessianOperator(case.model, case.loss_fn, (inputs, case.targets), batch_size=8)
    with pytest.raises(NonFiniteError, match=r"batch 2 of the data holds NaN or inf"):
        op @ torch.zeros(111, dtype=torch.float64)
    with pytest.raises(InputError, match="V holds NaN or inf"):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets)) @ torch.full(
            (111,), bad, dtype=torch.float64
        )


def test_loss_without_mean_or_sum_reduction(case) -> None:
    # reduction="sum" is accepted (tests/test_inputs_reduction.py); "none" is not
    with pytest.raises(InputError, match=r"reduction='none'.*reduction='mean' or reduction='sum'"):
        HessianOperator(
            case.model, nn.CrossEntropyLoss(reduction="none"), (case.inputs, case.targets)
        )

    def summed(out, y):
        return nn.functional.cross_entropy(out, y, reduction="sum")

    with pytest.raises(InputError, match="not a per-sample mean"):
        HessianOperator(case.model, summed, (case.inputs, case.targets)) @ torch.zeros(
            111, dtype=torch.float64
        )
    with pytest.raises(InputError, match="class weights"):
        HessianOperator(
            case.model, nn.CrossEntropyLoss(weight=torch.ones(3)), (case.inputs, case.targets)
        )


def test_mse_targets_of_the_wrong_shape(case) -> None:
    with pytest.raises(
        InputError, match=r"needs targets shaped like the outputs; got outputs \(23, 3\)"
    ):
        HessianOperator(case.model, nn.MSELoss(), (case.inputs, case.inputs[:, :1])) @ torch.zeros(
            111, dtype=torch.float64
        )


def test_fisher_of_an_unknown_likelihood(case) -> None:
    with pytest.raises(InputError, match="exact Fisher needs a loss with a known likelihood"):
        FisherOperator(
            case.model, lambda o, y: nn.functional.cross_entropy(o, y), (case.inputs, case.targets)
        )


def test_num_data_that_disagrees_with_the_data(case) -> None:
    op = EmpiricalFisherOperator(case.model, case.loss_fn, (case.inputs, case.targets), num_data=30)
    with pytest.raises(InputError, match="num_data=30 was given but the data holds 23 samples"):
        op @ torch.zeros(111, dtype=torch.float64)


# ---------------------------------------------------------------------------- determinism


class Jittered(Dataset):
    """Random augmentation at iteration time: a different matrix on every pass."""

    def __init__(self, x, y):
        self.x, self.y, self.gen = x, y, torch.Generator().manual_seed(0)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(
            self.x[i].shape, generator=self.gen, dtype=self.x.dtype
        ), self.y[i]


def test_random_augmentation_is_detected(case) -> None:
    loader = DataLoader(Jittered(case.inputs, case.targets), batch_size=8)
    with pytest.raises(
        NonDeterministicError, match=r"the data changed between two passes.*AugmentedViews"
    ):
        HessianOperator(case.model, case.loss_fn, loader) @ torch.zeros(111, dtype=torch.float64)


def test_change_in_a_later_batch_is_detected_on_the_next_product(case) -> None:
    class LaterBatches:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            yield case.inputs[:8], case.targets[:8]
            yield case.inputs[8:] + 0.01 * self.passes, case.targets[8:]

    op = HessianOperator(case.model, case.loss_fn, LaterBatches(), cache=False)
    op @ torch.zeros(111, dtype=torch.float64)
    with pytest.raises(NonDeterministicError, match=r"batch 1 differed"):
        op @ torch.zeros(111, dtype=torch.float64)


def test_shuffling_loader_is_detected(case) -> None:
    loader = DataLoader(TensorDataset(case.inputs, case.targets), batch_size=8, shuffle=True)
    with pytest.raises(NonDeterministicError, match="shuffle=False"):
        HessianOperator(case.model, case.loss_fn, loader) @ torch.zeros(111, dtype=torch.float64)


def test_dropout_in_train_mode_is_detected() -> None:
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 3)).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), train_mode=True)
    with pytest.raises(NonDeterministicError, match="dropout or another random layer"):
        op @ torch.zeros(op.shape[0], dtype=torch.float64)
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))  # eval mode: dropout off, fine
    op @ torch.zeros(op.shape[0], dtype=torch.float64)


def test_product_entries_are_checked_not_their_sum() -> None:
    # H = 2 a^2 I with a = 1e19: every entry of H @ 1 is 2e38, finite in float32, while their
    # sum overflows; the cheap check (the sum) must fall through to the exact one, not raise.
    model = nn.Linear(2, 1, bias=False)
    data = (torch.tensor([[1e19, 0.0], [0.0, 1e19]]), torch.zeros(2, 1))
    op = HessianOperator(model, nn.MSELoss(reduction="sum"), data)
    result = op @ torch.ones(2)
    torch.testing.assert_close(result, torch.full((2,), 2e38), rtol=1e-6, atol=0)
    assert not torch.isfinite(result.sum())
    # A product that does overflow is refused, naming the dtype.
    with pytest.raises(NonFiniteError, match=r"overflows in torch.float32"):
        op @ torch.full((2,), 4.0)
