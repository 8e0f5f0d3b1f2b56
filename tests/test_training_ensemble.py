"""The ensemble trainer equals a loop of single runs with the same seeds (float64, 1e-12)."""

from __future__ import annotations

import pytest
import torch
from oracles import sgd_reference
from torch import nn

from curvscope.errors import InputError
from curvscope.models.mlp import MLP
from curvscope.training import train_ensemble
from curvscope.training._stacked import _Tanh64, stacked_plan

R = 8


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3)).double()


def _data(n: int = 40, members: int | None = None):
    gen = torch.Generator().manual_seed(11)
    lead = () if members is None else (members,)
    x = torch.randn(*lead, n, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (*lead, n), generator=gen)
    return x, y


def _single(
    seed, x, y, *, lr, momentum, steps=None, epochs=None, batch_size=None, net=_net, loss=None
):
    """The reference: one nn.Module trained by torch.optim.SGD."""
    loss = loss or nn.functional.cross_entropy
    return sgd_reference(net(seed), x, y, loss, seed=seed, lr=lr, momentum=momentum,
                         steps=steps, epochs=epochs, batch_size=batch_size)  # fmt: skip


def _max_diff(result, models, net=_net):
    return max(
        float((p.detach() - q.detach()).abs().max())
        for r, model in enumerate(models)
        for p, q in zip(model.parameters(), result.member(net, r).parameters(), strict=True)
    )


@pytest.mark.parametrize(
    "kind", [{"steps": 60}, {"epochs": 3, "batch_size": 16}], ids=["gd", "sgd"]
)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("path", ["stacked", "vmap"])
def test_ensemble_equals_loop_of_single_runs(kind, momentum, path):
    x, y = _data()
    seeds = list(range(100, 100 + R))
    result = train_ensemble(
        _net,
        seeds,
        x,
        y,
        loss_fn=nn.CrossEntropyLoss(),
        lr=0.2,
        momentum=momentum,
        path=path,
        **kind,
    )
    assert result.path == path
    singles = [_single(s, x, y, lr=0.2, momentum=momentum, **kind) for s in seeds]
    assert _max_diff(result, singles) <= 1e-12
    assert result.losses.shape == (R, result.steps)
    assert result.steps == (60 if "steps" in kind else 3 * 3)  # 40 samples, batches of 16
    # members differ (own seeds): not R copies of one run
    w = result.parameters["0.weight"]
    assert not torch.allclose(w[0], w[1])


@pytest.mark.parametrize(
    "kind", [{"steps": 30}, {"epochs": 2, "batch_size": 12}], ids=["gd", "sgd"]
)
@pytest.mark.parametrize("path", ["stacked", "vmap"])
def test_ensemble_with_its_own_data_per_member(kind, path):
    x, y = _data(members=R)
    seeds = list(range(R))
    result = train_ensemble(
        _net,
        seeds,
        x,
        y,
        loss_fn=nn.CrossEntropyLoss(),
        lr=0.1,
        momentum=0.5,
        per_member_data=True,
        path=path,
        **kind,
    )
    assert result.path == path
    singles = [_single(s, x[r], y[r], lr=0.1, momentum=0.5, **kind) for r, s in enumerate(seeds)]
    assert _max_diff(result, singles) <= 1e-12


def test_ensemble_errors():
    x, y = _data()
    kw = {"loss_fn": nn.CrossEntropyLoss(), "lr": 0.1}
    with pytest.raises(InputError, match=r"give steps .* full-batch GD"):
        train_ensemble(_net, [0, 1], x, y, epochs=3, **kw)
    with pytest.raises(InputError, match=r"shape \(R, N, \.\.\.\) with R = 2 seeds"):
        train_ensemble(_net, [0, 1], x, y, steps=3, per_member_data=True, **kw)
    with pytest.raises(InputError, match="seeds must be a non-empty sequence of integers"):
        train_ensemble(_net, [], x, y, steps=3, **kw)
    with pytest.raises(InputError, match=r"path='stacked' does not apply: .* is a LayerNorm"):
        train_ensemble(_normed, [0, 1], x[:, :4], y, steps=3, path="stacked", **kw)
    with pytest.raises(InputError, match="path must be 'auto', 'stacked' or 'vmap'"):
        train_ensemble(_net, [0, 1], x, y, steps=3, path="fast", **kw)


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(6, (7, 5), 2, activation="gelu", bias=False).double()


def _relu_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    inner = nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Identity())
    return nn.Sequential(
        nn.Flatten(), inner, nn.Linear(9, 9), nn.Softplus(), nn.Linear(9, 2)
    ).double()


def _normed(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 2)).double()


@pytest.mark.parametrize(
    ("net", "sample", "path"),
    [(_mlp, (2, 3), "stacked"), (_relu_net, (2, 2), "stacked"), (_normed, (4,), "vmap")],
    ids=["curvscope-MLP-gelu-no-bias", "nested-sequential-relu", "layernorm-falls-back"],
)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_ensemble_picks_its_path_and_equals_the_loop(net, sample, path, momentum):
    """MLPs (with a Flatten, nested Sequentials, no biases) run stacked; others fall back.

    lr = 0.1 keeps GD stable: at lr = 0.3 the runs turn unstable and rounding differences of
    1e-16 per step (either path) grow to 1e-10 in 40 steps.
    """
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(30, *sample, generator=gen, dtype=torch.float64)
    y = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    seeds = list(range(R))
    result = train_ensemble(
        net, seeds, x, y, loss_fn=nn.MSELoss(), lr=0.1, momentum=momentum, steps=40
    )
    assert result.path == path
    loss = nn.functional.mse_loss
    singles = [
        _single(s, x, y, lr=0.1, momentum=momentum, steps=40, net=net, loss=loss) for s in seeds
    ]
    assert _max_diff(result, singles, net) <= 1e-12


def test_ensemble_stacked_path_with_a_loss_it_does_not_write_out():
    """A loss other than MSE/cross-entropy runs under vmap on the stacked outputs."""
    x, _ = _data()
    y = torch.randn(x.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    result = train_ensemble(
        _net, list(range(R)), x, y, loss_fn=nn.SmoothL1Loss(), lr=0.2, momentum=0.9, steps=30
    )
    assert result.path == "stacked"
    loss = nn.functional.smooth_l1_loss
    singles = [_single(s, x, y, lr=0.2, momentum=0.9, steps=30, loss=loss) for s in range(R)]
    assert _max_diff(result, singles) <= 1e-12


def test_stacked_plan_says_why_it_does_not_apply():
    assert isinstance(stacked_plan(_mlp(0), 2), list)
    assert "LayerNorm" in stacked_plan(_normed(0), 1)
    assert "2 dimensions at an nn.Linear" in stacked_plan(_net(0), 2)
    hooked = _net(0)
    hooked[0].register_forward_hook(lambda *a: None)
    assert "hooks" in stacked_plan(hooked, 1)
    frozen = _net(0)
    frozen[2].bias.requires_grad_(False)
    assert "frozen" in stacked_plan(frozen, 1)


def test_stacked_tanh_is_torch_tanh_to_three_ulps():
    """The stacked path's float64 tanh (from expm1, vectorised) against torch.tanh: within 3 ulps
    (relative) on a dense grid and over 640 decades, the same sign of zero, the same backward."""
    tiny = torch.logspace(-320, 3, 20001, dtype=torch.float64)
    x = torch.cat([torch.linspace(-40, 40, 200001, dtype=torch.float64), tiny, -tiny])
    x = torch.cat([x, torch.tensor([0.0, -0.0, 1e308, -1e308, float("inf"), -float("inf")])])
    ref, y = torch.tanh(x), _Tanh64.apply(x)
    ulp = torch.nextafter(ref.abs(), torch.tensor(float("inf"), dtype=torch.float64)) - ref.abs()
    assert ((y - ref).abs() <= 3 * ulp).all()
    assert torch.equal(torch.signbit(y), torch.signbit(ref))
    leaf = x[:200001].clone().requires_grad_(True)
    grad = torch.randn(leaf.shape, generator=torch.Generator().manual_seed(2), dtype=leaf.dtype)
    (mine,) = torch.autograd.grad(_Tanh64.apply(leaf), leaf, grad)
    (theirs,) = torch.autograd.grad(torch.tanh(leaf), leaf, grad)
    assert torch.equal(mine, torch.ops.aten.tanh_backward(grad, _Tanh64.apply(leaf.detach())))
    assert ((mine - theirs).abs() <= 1e-15 * grad.abs()).all()


def test_stacked_tanh_network_equals_the_loop_after_300_steps():
    """A tanh MLP (the stacked path's own tanh) trained 300 GD steps equals the nn.Tanh loop."""

    def net(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(6, 16, bias=False), nn.Tanh(), nn.Linear(16, 4, bias=False)
        ).double()

    gen = torch.Generator().manual_seed(4)
    x = 2 * torch.randn(32, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    seeds = list(range(R))
    result = train_ensemble(net, seeds, x, y, loss_fn=nn.MSELoss(), lr=0.05, steps=300)
    assert result.path == "stacked"
    loss = nn.functional.mse_loss
    singles = [
        _single(s, x, y, lr=0.05, momentum=0.0, steps=300, net=net, loss=loss) for s in seeds
    ]
    assert _max_diff(result, singles, net) <= 1e-12


@pytest.mark.parametrize("path", ["stacked", "vmap"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared-data", "per-member-data"])
def test_grad_tol_stops_each_member_as_gradient_descent_does(path, shared):
    """Per-member stopping == gradient_descent(max_steps=cap, grad_tol) of each member alone:
    same steps, stop reason, final gradient norm and weights; stopped members stay frozen."""
    from curvscope.training import gradient_descent

    seeds = list(range(7))
    x, y = _data(30, None if shared else len(seeds))
    cap, tol = 300, 0.03
    result = train_ensemble(
        _net, seeds, x, y, loss_fn=nn.CrossEntropyLoss(), lr=0.5, steps=cap, grad_tol=tol,
        path=path, per_member_data=not shared, record_every=10,
    )  # fmt: skip
    reasons = set()
    for r, s in enumerate(seeds):
        model = _net(s)
        xs, ys = (x, y) if shared else (x[r], y[r])
        d = gradient_descent(model, nn.CrossEntropyLoss(), xs, ys, lr=0.5, max_steps=cap,
                             grad_tol=tol)  # fmt: skip
        assert result.member_steps[r] == d.steps
        assert result.stop_reasons[r] == d.stop_reason
        assert abs(float(result.grad_norms[r]) - d.grad_norm) <= 1e-12
        assert _max_diff_one(result, r, model) <= 1e-12
        reasons.add(d.stop_reason)
    assert reasons == {"grad_tol", "max_steps"}  # the case exercises both stops
    assert result.steps == max(result.member_steps)
    assert result.losses.shape == (len(seeds), result.steps // 10 + 1)


def _max_diff_one(result, r, model):
    return max(
        float((p.detach() - q.detach()).abs().max())
        for p, q in zip(model.parameters(), result.member(_net, r).parameters(), strict=True)
    )


def test_grad_tol_needs_full_batch():
    x, y = _data()
    with pytest.raises(InputError, match="grad_tol"):
        train_ensemble(_net, [0], x, y, loss_fn=nn.CrossEntropyLoss(), lr=0.1, epochs=1,
                       batch_size=8, grad_tol=1e-3)  # fmt: skip
