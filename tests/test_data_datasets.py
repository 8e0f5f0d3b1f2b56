"""Datasets: digits scaling and split, blobs, random, loaders, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_digits

from curvscope.data import load_dataset, make_blobs, make_random
from curvscope.errors import InputError


def test_digits_are_sklearn_images_over_16_and_split_is_a_stratified_partition():
    sk = sk_digits()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert train.input_shape == (1, 8, 8) and train.num_classes == 10
    assert train.targets.dtype == torch.int64
    xs = (
        torch.cat(
            [
                train.get_batch(torch.arange(len(train)))[0],
                test.get_batch(torch.arange(len(test)))[0],
            ]
        )
        .reshape(1797, 64)
        .double()
    )
    ref = torch.from_numpy(sk.data / 16.0)
    # every image appears exactly once across train + test (match rows, with labels)
    ys = torch.cat([train.targets, test.targets]).numpy()
    key = lambda a, y: sorted(map(tuple, np.column_stack([a, y]).round(6).tolist()))  # noqa: E731
    assert key(xs.numpy(), ys) == key(ref.numpy(), sk.target)
    assert float(xs.min()) == 0.0 and float(xs.max()) == 1.0
    counts = np.bincount(test.targets.numpy(), minlength=10)
    assert np.all(np.abs(counts - 0.2 * np.bincount(sk.target)) <= 1)


def test_digits_split_depends_on_seed_only():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    c = load_dataset("digits", seed=4)
    assert torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.inputs, c.inputs)


def test_blobs_centres_and_std_match_paper003():
    d = make_blobs(4000, std=0.5, seed=1)
    x, y = d.inputs, d.targets
    assert d.num_classes == 2 and d.input_shape == (2,)
    for label, centre in ((0, 1.0), (1, -1.0)):
        pts = x[y == label]
        se = 0.5 / pts.shape[0] ** 0.5
        assert torch.all((pts.mean(0) - centre).abs() < 4 * se)
        assert torch.all((pts.std(0) - 0.5).abs() < 0.05)


def test_random_dataset_is_regression_with_normal_targets():
    d = make_random(2000, input_dim=5, output_dim=3, seed=0)
    assert d.task == "regression" and d.num_classes is None and d.num_outputs == 3
    assert d.targets.dtype == torch.float32 and d.targets.shape == (2000, 3)
    assert abs(float(d.targets.mean())) < 4 / (6000**0.5)
    test = load_dataset("random", "test", num_samples=2000, input_dim=5, output_dim=3)
    assert not torch.equal(test.inputs, d.inputs)


def test_loader_is_deterministic_ragged_and_covers_every_item_once():
    d = load_dataset("digits")
    loader = d.loader(100)
    first, second = list(loader), list(loader)
    assert len(first) == len(loader) == -(-len(d) // 100)
    assert first[-1][0].shape[0] == len(d) % 100
    for (x1, y1), (x2, y2) in zip(first, second):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(torch.cat([y for _, y in first]), d.targets)
    x0, y0 = d[5]
    assert torch.equal(x0, first[0][0][5]) and int(y0) == int(d.targets[5])


def test_shuffled_loader_uses_the_given_generator_only():
    d = load_dataset("blobs", num_samples=50)
    state = torch.random.get_rng_state()
    a = [y for _, y in d.loader(10, shuffle=True, generator=torch.Generator().manual_seed(0))]
    b = [y for _, y in d.loader(10, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert sorted(torch.cat(a).tolist()) == sorted(d.targets.tolist())


def test_dataset_errors_are_clear():
    with pytest.raises(InputError, match=r"unknown dataset 'imagenet'.*expected one of"):
        load_dataset("imagenet")
    with pytest.raises(InputError, match="split must be 'train' or 'test'"):
        load_dataset("digits", "val")
    with pytest.raises(InputError, match="does not take"):
        load_dataset("digits", std=1.0)
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        load_dataset("digits").loader(0)
    with pytest.raises(InputError, match=r"shuffle=True needs a seeded torch\.Generator"):
        load_dataset("digits").loader(10, shuffle=True)
    with pytest.raises(InputError, match="std must be positive"):
        make_blobs(10, std=0.0)
    with pytest.raises(InputError, match="cifar10 is read from a local folder"):
        load_dataset("cifar10")
