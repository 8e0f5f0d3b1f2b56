"""Model zoo: parameter counts against the spec, forward passes, seeding, errors."""

from __future__ import annotations

import pytest
import torch

from curvscope.errors import InputError
from curvscope.models import MLP, ModelSpec, PreResNet, build_model, count_parameters


def test_default_mlp_has_2410_parameters_by_formula():
    m = build_model("mlp", input_shape=(1, 8, 8), num_outputs=10, hidden=(32,))
    assert count_parameters(m) == m.num_parameters == 64 * 32 + 32 + 32 * 10 + 10 == 2410
    assert build_model("mlp", input_shape=(5,), num_outputs=2, hidden=(7, 3)).num_parameters == (
        5 * 7 + 7 + 7 * 3 + 3 + 3 * 2 + 2
    )
    assert m(torch.zeros(4, 1, 8, 8)).shape == (4, 10)


def test_preresnet110_count_matches_paper000_and_forward_runs():
    # spec/theory.md §1.8: 1,146,842 (CIFAR-10) and 1,169,972 (CIFAR-100)
    m10 = build_model("preresnet110", input_shape=(3, 32, 32), num_outputs=10)
    assert count_parameters(m10) == 1_146_842
    assert PreResNet(110, num_classes=100).num_parameters == 1_169_972
    m10.eval()
    with torch.no_grad():
        assert m10(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))).shape == (
            2,
            10,
        )


def test_small_models_build_and_forward():
    gen = torch.Generator().manual_seed(0)
    x32 = torch.randn(3, 3, 32, 32, generator=gen)
    m = build_model("preresnet20", input_shape=(3, 32, 32), num_outputs=10)
    # basic blocks: 3 stages x 3 blocks; count = convs + BN affine + fc, computed by hand
    convs = 3 * 16 * 9 + sum(2 * 9 * c * c for c in (16, 32, 64)) * 3 - 9 * (32 * 32 + 64 * 64)
    convs += 9 * (16 * 32 + 32 * 64) + 16 * 32 + 32 * 64
    bns = 2 * (2 * 16 * 3 + 2 * 32 * 3 + 2 * 64 * 3) - 2 * (32 + 64) + 2 * (16 + 32) + 2 * 64
    assert count_parameters(m) == convs + bns + 64 * 10 + 10
    assert m(x32).shape == (3, 10)
    cnn = build_model("cnn", input_shape=(1, 8, 8), num_outputs=10)
    assert 100_000 <= count_parameters(cnn) <= 1_000_000
    assert cnn(torch.randn(3, 1, 8, 8, generator=gen)).shape == (3, 10)
    cnn3 = build_model("cnn", input_shape=(3, 32, 32), num_outputs=100)
    assert 100_000 <= count_parameters(cnn3) <= 1_000_000 and cnn3(x32).shape == (3, 100)
    assert any(isinstance(mod, torch.nn.BatchNorm2d) for mod in cnn.modules())


def test_vgg16bn_count_matches_paper000():
    m = build_model("vgg16bn", input_shape=(3, 32, 32), num_outputs=100)
    assert count_parameters(m) == 15_299_748
    bn = sum(
        p.numel()
        for mod in m.modules()
        if isinstance(mod, torch.nn.BatchNorm2d)
        for p in mod.parameters()
    )
    assert count_parameters(m) - bn == 15_291_300
    m.eval()
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_weights_depend_on_seed_only_and_global_rng_is_untouched():
    a = build_model("mlp", input_shape=(64,), num_outputs=10, seed=1)
    torch.randn(5, generator=torch.Generator())  # unrelated work in between
    state = torch.random.get_rng_state()
    b = build_model("mlp", input_shape=(64,), num_outputs=10, seed=1)
    c = build_model("mlp", input_shape=(64,), num_outputs=10, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_spec_round_trips_through_a_dict():
    spec = ModelSpec("mlp", (1, 8, 8), 10, {"hidden": [64, 32], "activation": "relu"})
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec and again.options["hidden"] == (64, 32)
    assert isinstance(again.build(), MLP)


def test_model_errors_are_clear():
    with pytest.raises(InputError, match=r"unknown model 'resnet9'.*preresnet<depth>"):
        build_model("resnet9", input_shape=(3, 32, 32), num_outputs=10)
    with pytest.raises(InputError, match="PreResNet depth 111 is not a valid depth"):
        build_model("preresnet111", input_shape=(3, 32, 32), num_outputs=10)
    with pytest.raises(InputError, match="built for 32x32 images"):
        build_model("preresnet20", input_shape=(1, 8, 8), num_outputs=10)
    with pytest.raises(InputError, match="does not take the options"):
        build_model("cnn", input_shape=(1, 8, 8), num_outputs=10, hidden=(3,))
    with pytest.raises(InputError, match="unknown activation 'swish'"):
        build_model("mlp", input_shape=(4,), num_outputs=2, activation="swish")
    with pytest.raises(InputError, match="needs image inputs"):
        build_model("cnn", input_shape=(2,), num_outputs=2)
