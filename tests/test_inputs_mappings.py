"""Inputs of any structure the model takes: tuples of tensors, dicts, UserDicts, batch_size_fn.

The same network (tests/oracles.py ``AnyInputNet``) takes a (N, 7) tensor, a tuple (x, z) or a
mapping {"x": x, "z": z}; every operator kind on the structured inputs equals its independent
dense reference (a loop over samples that slices each tensor itself), with ragged batches.
"""

from __future__ import annotations

from collections import UserDict

import pytest
import torch
from oracles import (
    AnyCase,
    any_ggn,
    any_hessian,
    any_references,
    assert_matches_dense,
    make_any_case,
    ragged_batches,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset

from curvscope import InputError, NonDeterministicError, NonFiniteError
from curvscope.operators import (
    OPERATORS,
    GGNOperator,
    GradientCovarianceOperator,
    HessianOperator,
    verify_engine,
)

SIZES = (7, 5, 9, 2)


CASES = [("dict", "mean"), ("userdict", "mean"), ("tuple", "mean"), ("dict", "sum")]


@pytest.fixture(scope="module")
def references() -> dict:
    return {}


def _refs(cache: dict, kind: str, reduction: str) -> dict[str, torch.Tensor]:
    if (kind, reduction) not in cache:
        cache[kind, reduction] = any_references(make_any_case(kind, "ce", reduction))
    return cache[kind, reduction]


@pytest.mark.parametrize(("inputs", "reduction"), CASES)
@pytest.mark.parametrize("kind", list(OPERATORS))
def test_operator_equals_dense_reference(
    references: dict, inputs: str, reduction: str, kind: str
) -> None:
    case = make_any_case(inputs, "ce", reduction)
    data = ragged_batches(case.inputs, case.targets, SIZES)
    op = OPERATORS[kind](case.model, case.loss_fn, data)
    assert_matches_dense(op, _refs(references, inputs, reduction)[kind], rtol=1e-10)


def test_every_structure_gives_the_tensor_operator() -> None:
    # the same weights and samples as a tensor, a tuple, a dict and a UserDict: the same matrix,
    # the Monte-Carlo Fisher included (labels are drawn per sample from the outputs)
    block = torch.randn(75, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for kind, options in [*((k, {}) for k in OPERATORS), ("fisher", {"mc_samples": 3})]:
        products = []
        for inputs in ("tensor", "tuple", "dict", "userdict"):
            case = make_any_case(inputs, "bce-soft", "sum")
            data = ragged_batches(case.inputs, case.targets, SIZES)
            op = OPERATORS[kind](case.model, case.loss_fn, data, **options)
            products.append(op @ block)
        for other in products[1:]:
            torch.testing.assert_close(other, products[0], rtol=1e-12, atol=1e-14)


def test_a_single_pair_a_loader_and_a_list_agree() -> None:
    case = make_any_case("dict", "mse-multi", "mean")
    ref = any_hessian(case)
    pair = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), batch_size=7)
    assert pair.num_data == 23
    assert_matches_dense(pair, ref, rtol=1e-10)

    class Samples(Dataset):  # yields (dict, target) samples; the default collate stacks them
        def __len__(self):
            return 23

        def __getitem__(self, i):
            return {"x": case.inputs["x"][i], "z": case.inputs["z"][i]}, case.targets[i]

    loader = DataLoader(Samples(), batch_size=6)
    assert_matches_dense(HessianOperator(case.model, case.loss_fn, loader), ref, rtol=1e-10)


class EmbedNet(nn.Module):
    """A dict input with token ids (integers stay integers) and a float mask."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 4)
        self.fc = nn.Linear(4, 3)
        self.seen: list[tuple] = []

    def forward(self, batch) -> torch.Tensor:
        self.seen.append(
            (type(batch), getattr(batch, "tag", None), batch["ids"].dtype, batch["mask"].dtype)
        )
        h = self.emb(batch["ids"]) * batch["mask"][..., None]  # (N, L, 4)
        return self.fc(torch.tanh(h.sum(dim=1)))


class Encoding(UserDict):
    """Like a Hugging Face BatchEncoding: a UserDict with extra attributes."""

    tag: str = ""


def test_inputs_are_cast_recursively_floating_only() -> None:
    torch.manual_seed(0)
    model = EmbedNet()  # float32 weights
    gen = torch.Generator().manual_seed(1)
    batch = Encoding(
        {
            "ids": torch.randint(0, 6, (10, 4), generator=gen),
            "mask": torch.rand(10, 4, generator=gen),
        }
    )
    batch.tag = "kept"
    y = torch.randint(0, 3, (10,), generator=gen)
    op = HessianOperator(model, nn.CrossEntropyLoss(reduction="sum"), (batch, y), dtype="float64")
    got = op.to_dense()
    # the mapping's class and attributes are kept; integers stay integers
    assert set(model.seen[-3:]) == {(Encoding, "kept", torch.int64, torch.float64)}
    ref_model = EmbedNet().double()
    ref_model.load_state_dict(model.state_dict())
    inputs64 = UserDict({"ids": batch["ids"], "mask": batch["mask"].double()})
    reference = any_hessian(AnyCase(ref_model, nn.CrossEntropyLoss(reduction="sum"), inputs64, y))
    torch.testing.assert_close(got, reference, rtol=1e-10, atol=1e-12)


class SharedBias(nn.Module):
    """Takes {"x": (N, 5), "bias": (6,)}: a tensor shared by all samples of the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, batch) -> torch.Tensor:
        return self.out(torch.tanh(self.fc(batch["x"]) + batch["bias"]))


def _shared_bias_case():
    torch.manual_seed(0)
    model = SharedBias().double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(23, 5, generator=gen, dtype=torch.float64)
    bias = torch.randn(6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (23,), generator=gen)
    batches = [({"x": x[a:b], "bias": bias}, y[a:b]) for a, b in ((0, 7), (7, 12), (12, 23))]
    return model, x, bias, y, batches


def test_batch_size_fn_counts_samples_when_tensors_disagree() -> None:
    model, x, bias, y, batches = _shared_bias_case()
    with pytest.raises(
        InputError,
        match=r"batch 0 of the data: the tensors of a batch's inputs disagree on the first "
        r"\(batch\) dimension \(inputs\['x'\] has 7, inputs\['bias'\] has 6\).*batch_size_fn=",
    ):
        HessianOperator(model, nn.CrossEntropyLoss(), batches) @ torch.zeros(
            57, dtype=torch.float64
        )
    case = AnyCase(model, nn.CrossEntropyLoss(reduction="sum"), {"x": x, "bias": bias}, y)
    op = HessianOperator(model, case.loss_fn, batches, batch_size_fn=lambda b: b["x"].shape[0])
    assert op.num_data == 23
    assert_matches_dense(op, any_hessian(case), rtol=1e-10)
    # the oracle's Hessian and GGN use the whole data at once: no per-sample slicing needed
    ggn = GGNOperator(model, case.loss_fn, batches, batch_size_fn=lambda b: len(b["x"]))
    assert_matches_dense(ggn, any_ggn(case), rtol=1e-10)
    check = verify_engine(model, case.loss_fn, batches, batch_size_fn=lambda b: b["x"].shape[0])
    assert check.all_ok, str(check)


def test_bad_batch_size_fn_and_ambiguous_splits_are_refused() -> None:
    model, x, bias, y, batches = _shared_bias_case()
    zeros = torch.zeros(57, dtype=torch.float64)
    with pytest.raises(InputError, match=r"batch_size_fn returned 7.0 for batch 0"):
        HessianOperator(model, nn.CrossEntropyLoss(), batches, batch_size_fn=lambda b: 7.0) @ zeros
    with pytest.raises(InputError, match=r"batch_size_fn failed on batch 0.*KeyError"):
        HessianOperator(
            model, nn.CrossEntropyLoss(), batches, batch_size_fn=lambda b: b["w"]
        ) @ zeros
    with pytest.raises(InputError, match=r"batch_size_fn must be a function"):
        HessianOperator(model, nn.CrossEntropyLoss(), batches, batch_size_fn=7)
    with pytest.raises(InputError, match=r"batch 0 of the data has 6 inputs and 7 targets"):
        HessianOperator(model, nn.CrossEntropyLoss(), batches, batch_size_fn=lambda b: 6) @ zeros
    with pytest.raises(
        InputError, match=r"batch_size=5 asks to split the \(inputs, targets\) pair"
    ):
        HessianOperator(
            model,
            nn.CrossEntropyLoss(),
            ({"x": x, "bias": bias}, y),
            batch_size=5,
            batch_size_fn=lambda b: b["x"].shape[0],
        )
    # one pair, not split: fine
    whole = HessianOperator(
        model, nn.CrossEntropyLoss(), ({"x": x, "bias": bias}, y), batch_size_fn=lambda b: 23
    )
    assert whole.num_data == 23


def test_errors_name_the_structure() -> None:
    case = make_any_case("dict", "ce", "mean")
    with pytest.raises(
        InputError, match=r"data is a dict \(a mapping\).*\(inputs_mapping, targets\)"
    ):
        HessianOperator(case.model, case.loss_fn, case.inputs)
    bad = {"x": case.inputs["x"], "z": case.inputs["z"][:20]}
    with pytest.raises(
        InputError, match=r"the \(inputs, targets\) pair: the tensors .* inputs\['z'\] has 20"
    ):
        HessianOperator(case.model, case.loss_fn, (bad, case.targets))
    with pytest.raises(InputError, match=r"has 23 inputs and 22 targets"):
        HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets[:-1]))
    with pytest.raises(InputError, match=r"without any tensor"):
        HessianOperator(case.model, case.loss_fn, [({"x": "text"}, case.targets)]) @ torch.zeros(
            75, dtype=torch.float64
        )
    batches = [({"x": case.inputs["x"][:7], "z": case.inputs["z"][:7]}, case.targets[:7])]
    with pytest.raises(
        InputError, match=r"returned outputs of shape \(7, 3\) for a batch of 8 samples"
    ):
        HessianOperator(
            case.model, case.loss_fn, [(batches[0][0], case.targets[:8])], batch_size_fn=lambda b: 8
        ) @ torch.zeros(75, dtype=torch.float64)
    # a later batch whose keys differ is named with its structure
    later = [*batches, ({"x": case.inputs["x"][7:]}, case.targets[7:])]
    with pytest.raises(
        InputError, match=r"batch 1 of the data \(inputs a dict \{\['x'\]: \(16, 5\)\}"
    ):
        HessianOperator(case.model, case.loss_fn, later, cache=False) @ torch.zeros(
            75, dtype=torch.float64
        )


def test_changing_or_non_finite_dict_data_is_detected() -> None:
    case = make_any_case("dict", "ce", "mean")

    class Drifting:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            x, z = case.inputs["x"], case.inputs["z"]
            yield {"x": x[:8], "z": z[:8]}, case.targets[:8]
            yield {"x": x[8:], "z": z[8:] + 0.01 * self.passes}, case.targets[8:]

    op = HessianOperator(case.model, case.loss_fn, Drifting(), cache=False)
    op @ torch.zeros(75, dtype=torch.float64)
    with pytest.raises(NonDeterministicError, match=r"batch 1 differed"):
        op @ torch.zeros(75, dtype=torch.float64)
    z = case.inputs["z"].clone()
    z[20, 1] = float("nan")
    data = ragged_batches({"x": case.inputs["x"], "z": z}, case.targets, SIZES)
    with pytest.raises(NonFiniteError, match=r"batch 2 of the data holds NaN or inf"):
        HessianOperator(case.model, case.loss_fn, data) @ torch.zeros(75, dtype=torch.float64)


def test_fingerprint_and_cache_with_dict_inputs() -> None:
    case = make_any_case("dict", "ce", "mean")
    data = ragged_batches(case.inputs, case.targets, SIZES)
    first = HessianOperator(case.model, case.loss_fn, data).fingerprint()
    assert first == HessianOperator(case.model, case.loss_fn, data).fingerprint()
    renamed = [({"x": b["x"], "w": b["z"]}, y) for b, y in data]
    assert HessianOperator(case.model, case.loss_fn, renamed).fingerprint()["data"] != first["data"]
    changed = [({"x": b["x"], "z": b["z"] + (i == 3)}, y) for i, (b, y) in enumerate(data)]
    assert HessianOperator(case.model, case.loss_fn, changed).fingerprint()["data"] != first["data"]
    with_fn = HessianOperator(case.model, case.loss_fn, data, batch_size_fn=lambda b: len(b["x"]))
    assert with_fn.fingerprint()["operator"] != first["operator"]

    v = torch.randn(75, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cached = GGNOperator(case.model, case.loss_fn, data, cache=True)
    uncached = GGNOperator(case.model, case.loss_fn, data, cache=False)
    r1 = cached @ v
    assert "4/4 batch graphs cached" in str(cached.cache_info)
    torch.testing.assert_close(cached @ v, r1, rtol=0, atol=0)  # served from the cache
    torch.testing.assert_close(uncached @ v, r1, rtol=1e-12, atol=1e-14)


def test_verify_engine_on_a_dict_model() -> None:
    case = make_any_case("userdict", "mse-multi", "sum")
    check = verify_engine(
        case.model,
        case.loss_fn,
        ragged_batches(case.inputs, case.targets, SIZES),
        operators=(HessianOperator, GGNOperator, GradientCovarianceOperator),
    )
    assert set(check.results) == {"hessian", "ggn", "gradientcovariance"}
    assert check.results["hessian"]["rev-rev"] == "ok"
    assert all(check.results[k]["rev"] == "ok" for k in ("ggn", "gradientcovariance"))
    assert all(v == "ok" for v in check.results["ggn"].values()), str(check)
