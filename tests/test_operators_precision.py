"""TF32 off during curvature products on CUDA (``curvscope._precision``), tested on the CPU.

torch's precision switches exist on CPU builds, so the context is tested by handing it a CUDA
``torch.device`` (constructing one needs no GPU). The operators' wiring is tested by making the
operator's context treat its CPU device as CUDA and reading the switches inside the model's
forward. The numerical effect was measured on an H200 (benchmarks/results/gpu_h200_run.log).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from curvscope import _precision
from curvscope.errors import CurvscopeError
from curvscope.operators import GGNOperator, GradientCovarianceOperator, HessianOperator
from curvscope.operators import curvature as curvature_mod
from curvscope.operators.verify import verify_engine

CUDA = torch.device("cuda")
B = torch.backends


SPACES = (B, B.cudnn, B.cudnn.conv, B.cudnn.rnn, B.cuda.matmul)


def _strings() -> tuple[str, ...]:
    return tuple(space.fp32_precision for space in SPACES)


def _tf32_off() -> bool:
    """No TF32 anywhere, read as torch's own code reads it (the legacy booleans)."""
    return B.cudnn.allow_tf32 is False and B.cuda.matmul.allow_tf32 is False


@pytest.fixture(autouse=True)
def _restore_torch_switches():
    saved, legacy = _strings(), (B.cudnn.allow_tf32, B.cuda.matmul.allow_tf32)
    yield
    for space, value in zip(SPACES, saved):
        space.fp32_precision = value
    # written last through the legacy API, so that torch reads the booleans again
    B.cudnn.allow_tf32, B.cuda.matmul.allow_tf32 = legacy


def test_context_turns_tf32_off_on_cuda_and_restores_the_settings() -> None:
    B.cudnn.allow_tf32 = True
    B.cuda.matmul.allow_tf32 = True
    before = _strings()
    with _precision.full_float32(CUDA):
        assert _tf32_off()  # readable inside: inductor's conv templates read it
    assert _strings() == before
    assert B.cudnn.allow_tf32 is True
    with pytest.raises(RuntimeError, match="boom"), _precision.full_float32(CUDA):
        raise RuntimeError("boom")
    assert _strings() == before


@pytest.mark.parametrize("space", [B, B.cudnn.conv, B.cuda.matmul])
def test_context_overrides_tf32_set_through_the_new_api(space) -> None:
    space.fp32_precision = "tf32"
    before = _strings()
    with _precision.full_float32(CUDA):
        assert B.cudnn.conv.fp32_precision in ("ieee", "none")
        assert B.cudnn.rnn.fp32_precision in ("ieee", "none")
        assert B.cuda.matmul.fp32_precision == "ieee"
        assert "tf32" not in _strings()[2:]
    assert _strings() == before


def test_context_is_a_no_op_off_cuda_and_when_tf32_is_allowed() -> None:
    B.cudnn.allow_tf32 = True
    before = _strings()
    with _precision.full_float32(torch.device("cpu")):
        assert _strings() == before
    with _precision.full_float32(CUDA, allow_tf32=True):
        assert _strings() == before


def test_context_uses_the_legacy_switches_on_a_torch_without_the_new_api(monkeypatch) -> None:
    monkeypatch.setattr(_precision, "_has_new_api", lambda: False)
    B.cudnn.allow_tf32 = True
    with _precision.full_float32(CUDA):
        assert _tf32_off()
    assert B.cudnn.allow_tf32 is True


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)
    )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(12, 2, 4, 4, generator=gen), torch.randint(0, 4, (12,), generator=gen)


@pytest.mark.parametrize("allow_tf32", [False, True])
@pytest.mark.parametrize("cls", [HessianOperator, GGNOperator, GradientCovarianceOperator])
def test_operators_run_every_forward_of_their_products_in_full_float32(
    monkeypatch, cls, allow_tf32
) -> None:
    real = _precision.full_float32
    # the operator lives on the CPU: let its context act as on a GPU
    monkeypatch.setattr(curvature_mod, "full_float32", lambda device, allow: real(CUDA, allow))
    B.cudnn.allow_tf32 = True
    before = _strings()
    model = _model()
    seen: list[str] = []
    model[0].register_forward_hook(lambda *_: seen.append(B.cudnn.allow_tf32))
    op = cls(model, nn.CrossEntropyLoss(), _data(), batch_size=5, allow_tf32=allow_tf32)
    vec = torch.randn(op.shape[0], 2, generator=torch.Generator().manual_seed(2))
    first = op @ vec
    op @ vec  # the cached products too
    assert _strings() == before
    assert seen, "the model's forward never ran inside a product"
    assert set(seen) == {allow_tf32}
    assert torch.allclose(op @ vec, first)  # CPU: the switches change nothing numerically
    seen.clear()
    verify_engine(model, nn.CrossEntropyLoss(), _data(), allow_tf32=allow_tf32)
    assert set(seen) == {allow_tf32}
    assert _strings() == before


def test_allow_tf32_is_part_of_the_fingerprint_and_must_be_a_bool() -> None:
    model, data = _model(), _data()
    plain = HessianOperator(model, nn.CrossEntropyLoss(), data).fingerprint()
    default = HessianOperator(model, nn.CrossEntropyLoss(), data, allow_tf32=False).fingerprint()
    tf32 = HessianOperator(model, nn.CrossEntropyLoss(), data, allow_tf32=True).fingerprint()
    assert default == plain
    assert tf32["operator"] != plain["operator"]
    assert tf32["weights"] == plain["weights"]
    with pytest.raises(CurvscopeError, match="allow_tf32 must be True or False, got 'yes'"):
        HessianOperator(model, nn.CrossEntropyLoss(), data, allow_tf32="yes")


def test_disable_tf32_turns_every_switch_off_for_the_process() -> None:
    B.cudnn.allow_tf32 = True
    B.cuda.matmul.allow_tf32 = True
    _precision.disable_tf32()
    assert _tf32_off()
    assert "tf32" not in _strings()
    with _precision.full_float32(CUDA):  # the per-product context still works after it
        assert _tf32_off()
    assert _tf32_off()
