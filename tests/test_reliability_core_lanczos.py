"""Lanczos checkpoints refuse to resume on anything but what they were computed on; the basis is
checked against available memory before any allocation."""

from __future__ import annotations

import importlib
import os
import pickle

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch import nn

from curvscope import DenseOperator, FisherOperator, GGNOperator, HessianOperator
from curvscope.errors import InputError, MemoryLimitError
from curvscope.operators.base import SymmetricOperator
from curvscope.spectral import lanczos, slq

# the package exports the function under the module's name
lanczos_module = importlib.import_module("curvscope.spectral.lanczos")


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(20, 5, generator=gen, dtype=torch.float64), torch.randint(
        0, 3, (20,), generator=gen
    )


def _hessian(model_seed: int = 0, data_seed: int = 0, **kwargs) -> HessianOperator:
    return HessianOperator(_model(model_seed), nn.CrossEntropyLoss(), _data(data_seed), **kwargs)


def _run(op, path, **kwargs):
    return slq(op, num_steps=6, num_probes=2, seed=3, checkpoint=path, **kwargs)


# ---------------------------------------------------------------- fingerprints
def test_resume_on_the_same_model_reuses_the_checkpoint(tmp_path) -> None:
    path = tmp_path / "h.pt"
    first = _run(_hessian(), path)
    again = _run(_hessian(), path)  # a new operator on equal weights and data: same fingerprint
    assert again.num_products == 0
    np.testing.assert_array_equal(again.nodes, first.nodes)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("other", "what"),
    [
        (lambda: _hessian(model_seed=1), "different weights"),
        (lambda: _hessian(data_seed=1), "different data"),
        (
            lambda: GGNOperator(_model(), nn.CrossEntropyLoss(), _data()),
            r"a different operator \(kind or options\)",
        ),
        (
            lambda: HessianOperator(_model(), nn.CrossEntropyLoss(label_smoothing=0.1), _data()),
            r"a different operator",
        ),
    ],
    ids=["weights", "data", "kind", "loss-option"],
)
def test_resume_on_another_model_or_data_is_refused(tmp_path, other, what) -> None:
    path = tmp_path / "h.pt"
    _run(_hessian(), path)
    with pytest.raises(InputError, match=rf"checkpoint .*h\.pt was computed on {what} .*new"):
        _run(other(), path)


def test_buffers_and_fisher_options_are_part_of_the_fingerprint(tmp_path) -> None:
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3)).double().eval()
    path = tmp_path / "bn.pt"
    _run(HessianOperator(bn, nn.CrossEntropyLoss(), _data()), path)
    with torch.no_grad():
        bn[1].running_mean.add_(0.5)  # only a buffer changes
    with pytest.raises(InputError, match="different weights"):
        _run(HessianOperator(bn, nn.CrossEntropyLoss(), _data()), path)

    path = tmp_path / "fisher.pt"
    fisher = dict(mc_samples=2)
    _run(FisherOperator(_model(), nn.CrossEntropyLoss(), _data(), seed=0, **fisher), path)
    with pytest.raises(InputError, match="different operator"):
        _run(FisherOperator(_model(), nn.CrossEntropyLoss(), _data(), seed=1, **fisher), path)


def test_dense_and_foreign_operators(tmp_path) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    a = a + a.T
    b = a.clone()
    b[0, 1] += 1e-3
    b[1, 0] += 1e-3
    _run(DenseOperator(a), tmp_path / "dense.pt")
    assert _run(DenseOperator(a.clone()), tmp_path / "dense.pt").num_products == 0
    with pytest.raises(InputError, match=r"dense\.pt was computed on a different matrix"):
        _run(DenseOperator(b), tmp_path / "dense.pt")

    # SciPy operators have no fingerprint: the product with a fixed probe decides.
    first = _run(spla.aslinearoperator(a.numpy()), tmp_path / "scipy.pt")
    again = _run(spla.aslinearoperator(a.numpy().copy()), tmp_path / "scipy.pt")
    assert again.num_products == 0
    np.testing.assert_array_equal(again.nodes, first.nodes)
    with pytest.raises(InputError, match=r"scipy\.pt was computed on a different operator: its"):
        _run(spla.aslinearoperator(b.numpy()), tmp_path / "scipy.pt")
    # A dense checkpoint cannot be resumed by a SciPy operator (no digest to compare).
    with pytest.raises(InputError, match="different kind of operator than ScipyOperator"):
        _run(spla.aslinearoperator(a.numpy()), tmp_path / "dense.pt")


def test_an_option_that_differs_is_named(tmp_path) -> None:
    path = tmp_path / "o.pt"
    _run(DenseOperator(torch.eye(8, dtype=torch.float64)), path)
    with pytest.raises(InputError, match=r"written for probe='rademacher', .* probe='gaussian'"):
        slq(torch.eye(8, dtype=torch.float64), num_steps=6, num_probes=2, seed=3,
            probe="gaussian", checkpoint=path)  # fmt: skip


# ---------------------------------------------------------------- unreadable files
@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "could not be read"),
        (os.urandom(4096), "could not be read"),
        ("truncated", "could not be read"),
        (pickle.dumps({"hello": 1}), "could not be read|not a curvscope Lanczos checkpoint"),
        ("torch-dict", "not a curvscope Lanczos checkpoint"),
        ("old-format", "has format 1"),
    ],
    ids=["empty", "random", "truncated", "pickle", "other-torch-file", "old-format"],
)
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unreadable_checkpoints_raise_input_error(tmp_path, content, match) -> None:
    op = DenseOperator(torch.eye(8, dtype=torch.float64))
    path = tmp_path / "bad.pt"
    if content == "truncated":
        _run(op, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "torch-dict":
        torch.save({"weights": torch.ones(3)}, path)
    elif content == "old-format":
        _run(op, path)
        state = torch.load(path, weights_only=True)
        state["format"] = 1
        torch.save(state, path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=rf"checkpoint .*bad\.pt .*({match}).*(delete|new)"):
        _run(op, path)


def test_checkpoint_path_that_is_a_folder(tmp_path) -> None:
    with pytest.raises(InputError, match=r"checkpoint .* is a folder; pass the path of a file"):
        _run(DenseOperator(torch.eye(8, dtype=torch.float64)), tmp_path)


def test_temporary_files_have_unique_names(tmp_path, monkeypatch) -> None:
    names = []
    real_save = torch.save

    def spy(state, path):
        names.append(os.path.basename(path))
        real_save(state, path)

    monkeypatch.setattr(lanczos_module.torch, "save", spy)
    op = DenseOperator(torch.diag(torch.arange(8.0, dtype=torch.float64)))
    _run(op, tmp_path / "c.pt", checkpoint_every=1)
    assert len(names) >= 3 and len(set(names)) == len(names)
    assert all(n.startswith(f"c.pt.{os.getpid()}.") and n.endswith(".tmp") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


# ---------------------------------------------------------------- memory
class _Huge(SymmetricOperator):
    """Claims P = 10^11 and is never multiplied: the memory check must come first."""

    shape = property(lambda self: (10**11, 10**11))
    dtype = property(lambda self: torch.float32)
    device = property(lambda self: torch.device("cpu"))

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no product may run")


def test_basis_that_cannot_fit_raises_before_allocating() -> None:
    # num_probes * (num_steps + 1) * P * 4 bytes = 4 * 11 * 1e11 * 4 = 1.76e13 B = 16.01 TiB
    with pytest.raises(MemoryLimitError, match=r"4 \* 11 \* 100000000000 .* needs 16\.01 TiB") as e:
        slq(_Huge(), num_steps=10, num_probes=4)
    assert "available" in str(e.value) and "fewer probes" in str(e.value)
    assert "basis_device='cpu'" in str(e.value)


def test_memory_check_uses_the_basis_device(monkeypatch) -> None:
    op = DenseOperator(torch.diag(torch.arange(50.0, dtype=torch.float64)))
    seen = []

    def fake(device):
        seen.append(torch.device(device))
        return 10_000  # bytes: 3 * 21 * 50 * 8 = 25200 do not fit

    monkeypatch.setattr(lanczos_module, "available_memory", fake)
    with pytest.raises(MemoryLimitError, match=r"needs 24\.61 KiB on cpu, but only 9\.77 KiB"):
        lanczos(op, num_steps=20, num_probes=3, basis_device="cpu")
    assert seen == [torch.device("cpu")]
    assert lanczos(op, num_steps=20, num_probes=1).num_products == 20  # 8400 bytes fit
