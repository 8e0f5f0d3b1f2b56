"""Random transforms and frozen augmentation views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curvscope.data import AugmentedViews, ShiftFlip, apply_shift_flip, load_dataset, make_blobs
from curvscope.errors import InputError


def _reference(img: torch.Tensor, dy: int, dx: int, flip: bool, pad: int) -> torch.Tensor:
    # torchvision's recipe written out: zero-pad, crop at offset (pad - dy, pad - dx), mirror.
    h, w = img.shape[-2:]
    padded = torch.zeros(img.shape[0], h + 2 * pad, w + 2 * pad)
    padded[:, pad : pad + h, pad : pad + w] = img
    out = padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w]
    return torch.flip(out, dims=[-1]) if flip else out


def test_apply_shift_flip_matches_pad_crop_flip_reference():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 6, 7, generator=gen)
    dy, dx, fl = ShiftFlip(pad=4, flip=True).sample(40, gen)
    got = apply_shift_flip(x, dy, dx, fl)
    for b in range(40):
        ref = _reference(x[b], int(dy[b]), int(dx[b]), bool(fl[b]), 4)
        assert torch.equal(got[b], ref)
    assert torch.equal(apply_shift_flip(x, 0 * dy, 0 * dx, fl & False), x)


def test_views_are_frozen_in_any_order_and_batch_size():
    train = load_dataset("digits")
    aug = AugmentedViews(train, views=5, seed=7)
    assert len(aug) == 5 * len(train)
    idx = torch.arange(len(aug))
    whole = torch.cat([x for x, _ in aug.loader(997)])
    perm = torch.randperm(len(aug), generator=torch.Generator().manual_seed(1))
    shuffled, _ = aug.get_batch(perm)
    assert torch.equal(shuffled, whole[perm])
    again = torch.cat([x for x, _ in aug.loader(64)])
    assert torch.equal(whole, again)
    assert torch.equal(aug.get_batch(idx[:10])[1], train.targets[:10])


def test_view_slices_and_identity_option():
    train = load_dataset("digits")
    aug = AugmentedViews(train, views=3, seed=0)
    n = len(train)
    v1 = aug.view(1)
    assert len(v1) == n
    assert torch.equal(v1.get_batch(torch.arange(5))[0], aug.get_batch(torch.arange(5) + n)[0])
    plain = train.get_batch(torch.arange(n))[0]
    ident = AugmentedViews(train, views=3, seed=0, include_identity=True)
    assert torch.equal(ident.view(0).get_batch(torch.arange(n))[0], plain)
    # views 1, 2 are the same random views as without the identity option
    assert torch.equal(
        ident.view(2).get_batch(torch.arange(n))[0], aug.view(2).get_batch(torch.arange(n))[0]
    )
    # by default view 0 is random: most images moved
    moved = (aug.view(0).get_batch(torch.arange(n))[0] != plain).flatten(1).any(1)
    assert moved.float().mean() > 0.7


def test_different_seed_gives_different_views_and_parameters_are_uniform():
    train = load_dataset("digits")
    a, b = AugmentedViews(train, views=2, seed=0), AugmentedViews(train, views=2, seed=1)
    i = torch.arange(len(a))
    assert not torch.equal(a.get_batch(i)[0], b.get_batch(i)[0])
    samples = torch.arange(30000) % 1000
    views = torch.arange(30000) // 1000
    cifar_like = AugmentedViews.__new__(AugmentedViews)
    cifar_like.seed, cifar_like.transform, cifar_like.include_identity = (
        3,
        ShiftFlip(4, True),
        False,
    )
    dy, dx, fl = cifar_like.parameters_of(samples, views)
    for values, k in ((dy + 4, 9), (dx + 4, 9), (fl.long(), 2)):
        counts = np.bincount(values.numpy(), minlength=k)
        expected = 30000 / k
        assert counts.size == k
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert abs(float(np.corrcoef(dy.numpy(), dx.numpy())[0, 1])) < 0.03


def test_augment_errors_are_clear():
    train = load_dataset("digits")
    with pytest.raises(InputError, match="views must be a positive integer"):
        AugmentedViews(train, views=0, seed=0)
    with pytest.raises(InputError, match="has no image augmentation"):
        AugmentedViews(make_blobs(10), views=2, seed=0)
    with pytest.raises(InputError, match=r"view index must be in \[0, 2\)"):
        AugmentedViews(train, views=2, seed=0).view(2)
    with pytest.raises(InputError, match="batch of shape"):
        apply_shift_flip(torch.zeros(2, 8), torch.zeros(2), torch.zeros(2), torch.zeros(2))
    with pytest.raises(InputError, match="pad must be a non-negative integer"):
        ShiftFlip(pad=-1, flip=False)


def test_views_work_through_torch_dataloader_and_iterate_identically_twice():
    train = load_dataset("digits")
    aug = AugmentedViews(train, views=2, seed=5)
    loader = torch.utils.data.DataLoader(aug, batch_size=500, shuffle=False)
    first = [x for x, _ in loader]
    second = [x for x, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert torch.equal(torch.cat(first), torch.cat([x for x, _ in aug.loader(333)]))
