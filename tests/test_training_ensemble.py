"""The ensemble trainer equals a loop of single runs with the same seeds (float64, 1e-12)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from curvscope.errors import InputError
from curvscope.training import ensemble_order, train_ensemble

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


def _single(seed, x, y, *, lr, momentum, steps=None, epochs=None, batch_size=None):
    """The reference: one nn.Module trained by torch.optim.SGD."""
    model = _net(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    if batch_size is None:
        batches = [slice(None)] * steps
    else:
        batches = []
        for epoch in range(epochs):
            order = ensemble_order(seed, epoch, x.shape[0])
            batches += [order[i : i + batch_size] for i in range(0, x.shape[0], batch_size)]
    for idx in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


def _max_diff(result, models):
    return max(
        float((p.detach() - q.detach()).abs().max())
        for r, model in enumerate(models)
        for p, q in zip(model.parameters(), result.member(_net, r).parameters(), strict=True)
    )


@pytest.mark.parametrize(
    "kind", [{"steps": 60}, {"epochs": 3, "batch_size": 16}], ids=["gd", "sgd"]
)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_ensemble_equals_loop_of_single_runs(kind, momentum):
    x, y = _data()
    seeds = list(range(100, 100 + R))
    result = train_ensemble(
        _net, seeds, x, y, loss_fn=nn.CrossEntropyLoss(), lr=0.2, momentum=momentum, **kind
    )
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
def test_ensemble_with_its_own_data_per_member(kind):
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
        **kind,
    )
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
