"""Frozen augmentation views as a curvature matrix: fixed, the mean of its views, seed-dependent.

Issue 6 must-shows: the augmented operator passes the determinism check and equals the average
of the per-view operators; a different seed gives different views. The dense reference is an
independent float64 Hessian of the loss over the materialised augmented images.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from curvscope.data import DIGITS_AUGMENTATION, AugmentedViews, TensorDataset, load_dataset
from curvscope.operators import HessianOperator


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _small_digits(n: int = 30) -> TensorDataset:
    full = load_dataset("digits", "train")
    return TensorDataset(
        full.inputs[:n],
        full.targets[:n],
        name="digits",
        num_classes=10,
        scale=full.scale,
        augmentation=DIGITS_AUGMENTATION,
    )


def _model() -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Tanh(), nn.Linear(4, 10)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    return model


def _hessian_op(model: nn.Module, data: object) -> HessianOperator:
    return HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)


def test_augmented_operator_is_fixed_and_the_mean_of_its_views() -> None:
    ds, model = _small_digits(), _model()
    aug = AugmentedViews(ds, views=3, seed=7)
    op = _hessian_op(model, aug.loader(17))  # ragged batches across view boundaries
    vecs = torch.randn(
        op.shape[0], 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    first = op @ vecs  # the determinism check runs here (check_deterministic=True)
    assert torch.equal(op @ vecs, first)
    per_view = [_hessian_op(model, aug.view(j).loader(11)) @ vecs for j in range(3)]
    torch.testing.assert_close(first, sum(per_view) / 3, rtol=1e-10, atol=1e-12)


def test_augmented_operator_matches_dense_hessian_of_materialised_views() -> None:
    ds, model = _small_digits(12), _model()
    aug = AugmentedViews(ds, views=2, seed=1)
    x, y = aug.get_batch(torch.arange(len(aug)))
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for n, s in zip(names, shapes):
            params[n] = flat[start : start + s.numel()].reshape(s)
            start += s.numel()
        out = torch.func.functional_call(model, params, (x.double(),))
        return nn.functional.cross_entropy(out, y)

    dense = torch.autograd.functional.hessian(loss, flat0)
    op = _hessian_op(model, aug.loader(5))
    eye = torch.eye(op.shape[0], dtype=torch.float64)
    torch.testing.assert_close(op @ eye, dense, rtol=1e-8, atol=1e-10)


def test_a_different_seed_gives_different_views_and_a_different_matrix() -> None:
    ds, model = _small_digits(), _model()
    a, b = AugmentedViews(ds, views=2, seed=0), AugmentedViews(ds, views=2, seed=1)
    idx = torch.arange(len(a))
    assert torch.equal(a.get_batch(idx)[0], AugmentedViews(ds, views=2, seed=0).get_batch(idx)[0])
    assert not torch.equal(a.get_batch(idx)[0], b.get_batch(idx)[0])
    vecs = torch.randn(
        _hessian_op(model, a.loader(64)).shape[0],
        2,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(1),
    )
    ha = _hessian_op(model, a.loader(64)) @ vecs
    hb = _hessian_op(model, b.loader(64)) @ vecs
    assert (ha - hb).norm() > 1e-6 * ha.norm()


class _RedrawnViews:
    """Negative control: a fresh random shift on every pass (what frozen views prevent)."""

    def __init__(self, ds: TensorDataset) -> None:
        self.ds, self.gen = ds, torch.Generator().manual_seed(0)

    def __iter__(self):  # type: ignore[no-untyped-def]
        idx = torch.arange(len(self.ds))
        x = DIGITS_AUGMENTATION(self.ds.raw(idx), self.gen)
        yield self.ds.finish(x), self.ds.targets


def test_redrawn_augmentation_fails_the_determinism_check() -> None:
    from curvscope.errors import NonDeterministicError

    op = _hessian_op(_model(), _RedrawnViews(_small_digits()))
    vecs = torch.ones(op.shape[0], 1, dtype=torch.float64)
    with pytest.raises(NonDeterministicError):
        op @ vecs
        op @ vecs
