"""The ensemble's hand-written backward (``_stacked.manual_step``) against autograd and the loop.

References: (1) the autograd step of the stacked path (``torch.autograd.grad`` of the summed
member losses) on the same weights, (2) R single ``nn.Module`` runs with ``torch.optim.SGD``.
"""

from __future__ import annotations

import pytest
import torch
from oracles import sgd_reference
from torch import nn
from torch.func import stack_module_state

from curvscope.training import _stacked, ensemble, train_ensemble
from curvscope.training._stacked import manual_plan, manual_step, stacked_plan

R = 4


def _deep(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(6, 9),
        nn.Tanh(),
        nn.Linear(9, 7, bias=False),
        nn.ReLU(),
        nn.Identity(),
        nn.Linear(7, 3),
    ).double()


def _linear(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 3)).double()


def _tanh_out(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 5, bias=False), nn.Tanh(), nn.Linear(5, 3), nn.Tanh()
    ).double()


def _stack(net):
    models = [net(s) for s in range(R)]
    params, _ = stack_module_state(models)
    return models[0], {k: v.detach() for k, v in params.items()}


def _autograd_grads(ops, loss_fn, params, x, y, mapped):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = _stacked.stacked_forward(ops, leaves, x, shared=mapped is None)
    loss = _stacked.member_losses(loss_fn, out, y, mapped)
    grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
    return dict(zip(leaves, grads, strict=True)), loss.detach()


def _data(mapped, classes):
    gen = torch.Generator().manual_seed(7)
    lead = () if mapped is None else (R,)
    x = torch.randn(*lead, 20, 2, 3, generator=gen, dtype=torch.float64)
    if classes:
        y = torch.randint(0, 3, (*lead, 20), generator=gen)
        y[..., ::5] = -100  # ignored samples (cross-entropy's ignore_index)
    else:
        y = torch.randn(*lead, 20, 3, generator=gen, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("mapped", [None, 0], ids=["shared", "per-member"])
@pytest.mark.parametrize(
    "loss_fn", [nn.MSELoss(), nn.CrossEntropyLoss()], ids=["mse", "cross-entropy"]
)
@pytest.mark.parametrize("net", [_deep, _linear, _tanh_out], ids=["deep", "linear", "tanh-out"])
def test_manual_step_equals_autograd(net, loss_fn, mapped):
    """Losses and gradients of every member equal autograd's to 1e-13 (relative)."""
    model, params = _stack(net)
    x, y = _data(mapped, isinstance(loss_fn, nn.CrossEntropyLoss))
    if net is not _deep:
        x = x.flatten(-2)
    ops = stacked_plan(model, x.dim() - (0 if mapped is None else 1) - 1)
    layers = manual_plan(ops)
    assert layers is not None
    step = manual_step(layers, loss_fn)
    for _ in range(2):  # the second call reuses the step's buffers
        grads, loss = step(params, x, y, mapped)
        ref, ref_loss = _autograd_grads(ops, loss_fn, params, x, y, mapped)
        assert torch.allclose(loss, ref_loss, rtol=1e-13, atol=0)
        assert grads.keys() == ref.keys()
        for k, g in grads.items():
            assert g.shape == ref[k].shape
            assert (g - ref[k]).abs().max() <= 1e-13 * ref[k].abs().max()
        params = {k: v - 0.1 * grads[k] for k, v in params.items()}


def test_manual_plan_applies_to_tanh_relu_identity_only():
    def plan(*mods):
        return manual_plan(stacked_plan(nn.Sequential(*mods).double(), 1))

    assert [len(layer.activations) for layer in plan(*_deep(0)[1:])] == [1, 1, 0]
    assert plan(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 1)) is None
    assert plan(nn.Linear(3, 4), nn.Tanh(), nn.ReLU(), nn.Linear(4, 1)) is None  # two in a row
    assert plan(nn.Tanh(), nn.Linear(3, 1)) is None  # before the first Linear


def test_other_losses_fall_back_to_autograd():
    model, params = _stack(_linear)
    x, _ = _data(None, False)
    step = manual_step(manual_plan(stacked_plan(model, 1)), nn.SmoothL1Loss())
    assert step(params, x.flatten(1), torch.zeros(20, 3, dtype=torch.float64), None) is None


def _single(net, seed, x, y, loss, *, lr, momentum, steps=None, epochs=None, batch_size=None):
    return sgd_reference(net(seed), x, y, loss, seed=seed, lr=lr, momentum=momentum,
                         steps=steps, epochs=epochs, batch_size=batch_size)  # fmt: skip


@pytest.mark.parametrize("kind", [{"steps": 40}, {"epochs": 3, "batch_size": 8}], ids=["gd", "sgd"])
@pytest.mark.parametrize("classes", [False, True], ids=["mse", "cross-entropy"])
def test_deep_ensemble_on_the_manual_path_equals_the_loop(kind, classes):
    x, y = _data(None, classes)
    loss = nn.CrossEntropyLoss() if classes else nn.MSELoss()
    result = train_ensemble(_deep, range(R), x, y, loss_fn=loss, lr=0.1, momentum=0.5, **kind)
    assert result.path == "stacked"
    for r in range(R):
        single = _single(_deep, r, x, y, loss, lr=0.1, momentum=0.5, **kind)
        mine = result.member(_deep, r)
        for p, q in zip(single.parameters(), mine.parameters(), strict=True):
            assert (p.detach() - q).abs().max() <= 1e-12


def test_numpy_tanh_is_torch_tanh_to_one_ulp():
    """The manual path's float64 tanh (numpy, in place) within 1 ulp of torch.tanh (relative),
    on a dense grid and over 640 decades, with the same sign of zero and the same limits."""
    tiny = torch.logspace(-320, 3, 20001, dtype=torch.float64)
    x = torch.cat([torch.linspace(-40, 40, 200001, dtype=torch.float64), tiny, -tiny])
    x = torch.cat([x, torch.tensor([0.0, -0.0, 1e308, -1e308, float("inf"), -float("inf")])])
    ref, y = torch.tanh(x), x.clone()
    _stacked._activate_(nn.Tanh(), y)
    ulp = torch.nextafter(ref.abs(), torch.tensor(float("inf"), dtype=torch.float64)) - ref.abs()
    assert ((y - ref).abs() <= ulp).all()
    assert torch.equal(torch.signbit(y), torch.signbit(ref))


def test_manual_step_with_two_torch_threads_equals_autograd():
    """With more than one torch thread the batched products run through torch, not numpy."""
    model, params = _stack(_deep)
    x, y = _data(None, False)
    ops = stacked_plan(model, 2)
    step = manual_step(manual_plan(ops), nn.MSELoss())
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads, loss = step(params, x, y, None)
    finally:
        torch.set_num_threads(threads)
    ref, ref_loss = _autograd_grads(ops, nn.MSELoss(), params, x, y, None)
    assert torch.allclose(loss, ref_loss, rtol=1e-13, atol=0)
    for k, g in grads.items():
        assert (g - ref[k]).abs().max() <= 1e-13 * ref[k].abs().max()


@pytest.fixture
def two_threads(monkeypatch):
    """Two torch threads and no work threshold: the members split over two threads."""
    monkeypatch.setattr(_stacked, "PARALLEL_FLOPS", 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("slices", [2, 3])
@pytest.mark.parametrize(
    "kind",
    [{"steps": 30}, {"epochs": 2, "batch_size": 8}, {"steps": 400, "grad_tol": 2e-2}],
    ids=["gd", "sgd", "grad-tol"],
)
@pytest.mark.parametrize("mapped", [None, 0], ids=["shared", "per-member"])
@pytest.mark.parametrize("classes", [False, True], ids=["mse", "cross-entropy"])
def test_members_split_over_threads_equal_one_thread(slices, kind, mapped, classes, monkeypatch):
    """Members trained as slices, each a whole run on its own thread (unequal slices: 7 over
    3), give what one thread gives: weights and every recorded loss to 1e-13, and with
    grad_tol each member's steps, gradient norm and stop reason (a slice whose members all
    stopped early continues its losses as the unsplit run records them); the threads run torch
    at one thread each, and the settings come back afterwards."""
    x, y = _data(None, classes)
    if mapped is not None:
        gen = torch.Generator().manual_seed(3)
        x = x + 0.1 * torch.randn(7, *x.shape, generator=gen, dtype=x.dtype)
        y = y.expand(7, *y.shape).clone()
    loss_fn = nn.CrossEntropyLoss() if classes else nn.MSELoss()
    kw = {"loss_fn": loss_fn, "lr": 0.3, "momentum": 0.5, "per_member_data": mapped is not None}
    kw |= {"record_every": 3, **kind}
    seeds = [11, 3, 5, 8, 2, 9, 4]
    one = train_ensemble(_deep, seeds, x, y, **kw)
    inside = []
    real = _stacked.stacked_step

    def spy(*args):
        inside.append(torch.get_num_threads())
        return real(*args)

    monkeypatch.setattr(ensemble, "stacked_step", spy)
    monkeypatch.setattr(ensemble, "member_workers", lambda *a: slices)
    before = torch.get_num_threads()
    split = train_ensemble(_deep, seeds, x, y, **kw)
    assert torch.get_num_threads() == before and inside == [1] * slices
    assert split.path == one.path == "stacked" and split.seeds == one.seeds
    assert split.steps == one.steps and split.losses.shape == one.losses.shape
    assert (split.losses - one.losses).abs().max() <= 1e-13 * one.losses.abs().max()
    for k in one.parameters:
        assert (split.parameters[k] - one.parameters[k]).abs().max() <= 1e-13
    if "grad_tol" in kind:
        assert split.member_steps == one.member_steps and len(set(one.member_steps)) > 2
        assert split.stop_reasons == one.stop_reasons
        assert torch.allclose(split.grad_norms, one.grad_norms, rtol=1e-12, atol=0)


def test_member_workers_follows_threads_size_and_path(two_threads, monkeypatch):
    model, params = _stack(_deep)
    x, _ = _data(None, False)
    ops = stacked_plan(model, 2)
    assert _stacked.member_workers(ops, params, x) == 1  # R = 4 < 8 members per thread
    big = {k: v.repeat(4, *[1] * (v.dim() - 1)) for k, v in params.items()}  # R = 16
    assert _stacked.member_workers(ops, big, x) == 2
    gelu = stacked_plan(nn.Sequential(nn.Linear(6, 3), nn.GELU()).double(), 1)
    assert _stacked.member_workers(gelu, big, x) == 1  # no hand-written step
    monkeypatch.setattr(_stacked, "PARALLEL_FLOPS", 1e12)
    assert _stacked.member_workers(ops, big, x) == 1  # too little work to split
    torch.set_num_threads(1)
    monkeypatch.setattr(_stacked, "PARALLEL_FLOPS", 0)
    assert _stacked.member_workers(ops, big, x) == 1


@pytest.mark.parametrize("kind", [{"steps": 30}, {"epochs": 2, "batch_size": 8}], ids=["gd", "sgd"])
def test_ensemble_on_two_threads_equals_the_loop(two_threads, kind):
    """16 members trained with their slices on two threads equal 16 single runs to 1e-12."""
    x, y = _data(None, False)
    seeds = range(16)
    result = train_ensemble(_deep, seeds, x, y, loss_fn=nn.MSELoss(), lr=0.1, momentum=0.5,
                            **kind)  # fmt: skip
    assert result.path == "stacked" and torch.get_num_threads() == 2
    for r in seeds:
        single = _single(_deep, r, x, y, nn.MSELoss(), lr=0.1, momentum=0.5, **kind)
        for p, q in zip(single.parameters(), result.member(_deep, r).parameters(), strict=True):
            assert (p.detach() - q).abs().max() <= 1e-12


def test_grad_tol_on_two_threads_equals_one_thread(two_threads):
    """Per-member stopping (members leave the slices as they stop) gives what one thread gives."""
    x, y = _data(None, False)
    x = x.flatten(1)
    kw = {"loss_fn": nn.MSELoss(), "lr": 0.3, "steps": 3000, "grad_tol": 1e-8}
    two = train_ensemble(_linear, range(16), x, y, **kw)
    torch.set_num_threads(1)
    one = train_ensemble(_linear, range(16), x, y, **kw)
    assert two.member_steps == one.member_steps and len(set(one.member_steps)) > 1
    assert set(one.stop_reasons) == {"grad_tol"}
    for k in one.parameters:
        assert (two.parameters[k] - one.parameters[k]).abs().max() <= 1e-13
