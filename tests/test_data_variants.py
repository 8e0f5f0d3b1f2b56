"""Downsampled, grayscale and whitened variants, per-class subsets and random-input classes,
each checked against a direct numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fake_cifar import write_fake_cifar
from _fake_mnist import write_fake_mnist

from curvscope.data import (
    DIGITS_AUGMENTATION,
    dataset_options,
    load_dataset,
    make_random_classes,
    mean_pool,
    to_grayscale,
)
from curvscope.data.preprocess import WHITEN_EPS
from curvscope.errors import InputError


def np_adaptive_mean(images: np.ndarray, size: int) -> np.ndarray:
    """Block means with rows floor(i H / s) .. ceil((i + 1) H / s) - 1 (and columns alike)."""
    n, c, h, w = images.shape
    out = np.empty((n, c, size, size))
    for i in range(size):
        r0, r1 = (i * h) // size, -(-((i + 1) * h) // size)
        for j in range(size):
            c0, c1 = (j * w) // size, -(-((j + 1) * w) // size)
            out[:, :, i, j] = images[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def np_whiten(train: np.ndarray, other: np.ndarray, method: str) -> np.ndarray:
    train = train.reshape(len(train), -1).astype(np.float64)
    mu = train.mean(axis=0)
    cov = (train - mu).T @ (train - mu) / len(train)
    if method == "standardize":
        w = np.diag(1 / np.sqrt(np.diag(cov) + WHITEN_EPS))
    else:
        lam, u = np.linalg.eigh(cov)
        w = u @ np.diag(1 / np.sqrt(np.clip(lam, 0, None) + WHITEN_EPS)) @ u.T
    return (other.reshape(len(other), -1) - mu) @ w


def digits_pixels(split: str) -> np.ndarray:
    data = load_dataset("digits", split)
    return data.inputs.numpy().astype(np.float64) / 16.0


@pytest.mark.parametrize(("side", "size"), [(32, 7), (28, 4), (28, 7), (8, 4), (8, 3)])
def test_mean_pool_is_the_block_mean(side: int, size: int) -> None:
    x = torch.rand(
        3, 2, side, side, generator=torch.Generator().manual_seed(side), dtype=torch.float64
    )
    assert np.allclose(mean_pool(x, size).numpy(), np_adaptive_mean(x.numpy(), size), atol=1e-12)


def test_grayscale_is_bt601_luma() -> None:
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(to_grayscale(x)[:, 0], ref, atol=1e-12)
    assert to_grayscale(x[:, :1]) is not None and to_grayscale(x[:, :1]).shape == (2, 1, 5, 5)


def test_digits_downsampled_are_2x2_block_means_of_the_pixels() -> None:
    data = load_dataset("digits", "train", size=4)
    ref = digits_pixels("train").reshape(-1, 1, 4, 2, 4, 2).mean(axis=(3, 5))
    assert data.input_shape == (1, 4, 4) and data.augmentation is None
    assert np.allclose(data.get_batch(torch.arange(len(data)))[0].numpy(), ref, atol=1e-6)
    gray = load_dataset("digits", "train", grayscale=True)  # one channel: unchanged
    assert torch.equal(
        gray.get_batch(torch.arange(5))[0], load_dataset("digits").get_batch(torch.arange(5))[0]
    )
    assert gray.augmentation == DIGITS_AUGMENTATION


@pytest.mark.parametrize("method", ["zca", "standardize"])
def test_digits_whitening_uses_train_statistics_for_both_splits(method: str) -> None:
    pooled = {
        s: digits_pixels(s).reshape(-1, 1, 4, 2, 4, 2).mean(axis=(3, 5)) for s in ("train", "test")
    }
    for split in ("train", "test"):
        data = load_dataset("digits", split, size=4, whiten=method)
        got = data.get_batch(torch.arange(len(data)))[0].numpy().reshape(len(data), -1)
        assert np.allclose(got, np_whiten(pooled["train"], pooled[split], method), atol=1e-4)
        assert data.augmentation is None and data.whitening.method == method
    train = load_dataset("digits", "train", size=4, whiten=method).inputs.reshape(-1, 16).double()
    cov = torch.cov(train.T, correction=0)
    assert torch.allclose(train.mean(0), torch.zeros(16, dtype=torch.float64), atol=1e-5)
    # identity covariance, shrunk by eps: lambda / (lambda + eps) along each eigenvector
    ref_cov = np.cov(pooled["train"].reshape(-1, 16).T, bias=True)
    if method == "zca":
        lam = np.linalg.eigvalsh(ref_cov)
        assert np.allclose(np.linalg.eigvalsh(cov.numpy()), lam / (lam + WHITEN_EPS), atol=1e-5)
    else:
        var = np.diag(ref_cov)
        assert np.allclose(cov.diagonal().numpy(), var / (var + WHITEN_EPS), atol=1e-5)
    assert float(cov.diagonal().min()) > 0.98


def test_cifar_4x4_grayscale_whitened_as_paper001_against_numpy(tmp_path) -> None:
    xtr, _, xte, _ = write_fake_cifar(tmp_path, per_file=8)
    opts = {"size": 4, "grayscale": True, "whiten": "zca"}
    pixels = {}
    for split, raw in (("train", xtr), ("test", xte)):
        rgb = raw.reshape(-1, 3, 32, 32).astype(np.float64) * (1.0 / 255.0)
        gray = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]
        pixels[split] = np_adaptive_mean(gray, 4)
    for split in ("train", "test"):
        data = load_dataset("cifar10", split, data_dir=tmp_path, **opts)
        assert data.input_shape == (1, 4, 4) and len(data.class_names) == 10
        got = data.inputs.numpy().reshape(len(data), -1)
        assert np.allclose(got, np_whiten(pixels["train"], pixels[split], "zca"), atol=1e-3)
    # paper 002: 7x7 grayscale, pixels in [0, 1] (the RGB normalisation no longer applies)
    data = load_dataset("cifar10", "test", data_dir=tmp_path, size=7, grayscale=True)
    rgb = xte.reshape(-1, 3, 32, 32).astype(np.float64) * (1.0 / 255.0)
    gray = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])[:, None]
    assert np.allclose(
        data.get_batch(torch.arange(len(data)))[0].numpy(), np_adaptive_mean(gray, 7), atol=1e-5
    )
    rgb_pooled = load_dataset("cifar10", "test", data_dir=tmp_path, size=4)
    assert rgb_pooled.input_shape == (3, 4, 4) and rgb_pooled._mean is not None


def test_per_class_takes_the_first_or_a_seeded_k_and_records_indices(tmp_path) -> None:
    full = load_dataset("digits", "train")
    sub = load_dataset("digits", "train", per_class=3)
    labels = full.targets.numpy()
    ref = np.sort(np.concatenate([np.flatnonzero(labels == c)[:3] for c in range(10)]))
    assert sub.subset_indices.tolist() == ref.tolist()
    assert torch.equal(sub.inputs, full.inputs[sub.subset_indices])
    assert torch.equal(torch.bincount(sub.targets), torch.full((10,), 3))
    seeded = load_dataset("digits", "train", per_class=3, per_class_seed=5)
    again = load_dataset("digits", "train", per_class=3, per_class_seed=5)
    assert torch.equal(seeded.subset_indices, again.subset_indices)
    assert not torch.equal(seeded.subset_indices, sub.subset_indices)
    assert torch.equal(torch.bincount(seeded.targets), torch.full((10,), 3))
    write_fake_mnist(tmp_path)  # labels 0, 7, 4, 1, ...: each class 3 times in 30
    mnist = load_dataset("mnist", "train", data_dir=tmp_path, per_class=2, size=7)
    assert len(mnist) == 20 and mnist.input_shape == (1, 7, 7)
    assert mnist.subset_indices.tolist() == list(range(20))
    blobs = load_dataset("blobs", per_class=4, num_samples=20)
    assert blobs.subset_indices.tolist() == list(range(8))


def test_option_errors_name_the_options() -> None:
    with pytest.raises(
        InputError,
        match=r"'blobs' does not take the option\(s\) size; its options are num_samples, per_class, per_class_seed, std, whiten",
    ):
        load_dataset("blobs", size=4)
    with pytest.raises(InputError, match=r"'random' does not take the option\(s\) per_class"):
        load_dataset("random", per_class=4)
    with pytest.raises(InputError, match=r"class\(es\) \[1\] have only \[2\]; pass per_class <= 2"):
        load_dataset("blobs", num_samples=5, per_class=3)
    with pytest.raises(InputError, match="per_class must be a positive integer, got 0"):
        load_dataset("digits", per_class=0)
    with pytest.raises(InputError, match="per_class_seed chooses a per_class subset"):
        load_dataset("digits", per_class_seed=1)
    with pytest.raises(InputError, match=r"size must be an integer in \[1, 8\] .* got 9"):
        load_dataset("digits", size=9)
    with pytest.raises(InputError, match="whiten must be 'zca', 'standardize' or None, got 'pca'"):
        load_dataset("digits", whiten="pca")
    with pytest.raises(InputError, match="grayscale must be true or false, got 'yes'"):
        load_dataset("digits", grayscale="yes")
    assert "labels" in dataset_options("random-classes")


def test_random_classes_inputs_are_standard_normal_and_labels_random_or_teacher() -> None:
    data = load_dataset("random-classes", "train", seed=3, num_samples=4000, input_dim=20)
    x = data.inputs
    assert data.input_shape == (20,) and data.num_classes == 10 and data.task == "classification"
    se = 1 / np.sqrt(x.numel())
    assert abs(float(x.mean())) < 4 * se and abs(float(x.var()) - 1) < 4 * np.sqrt(2) * se
    counts = torch.bincount(data.targets, minlength=10).double()
    assert float(((counts - 400) ** 2 / 400).sum()) < 40  # chi^2, 9 dof
    train = load_dataset(
        "random-classes", "train", seed=3, labels="teacher", num_classes=3, input_dim=5
    )
    test = load_dataset(
        "random-classes", "test", seed=3, labels="teacher", num_classes=3, input_dim=5
    )
    w = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    for part in (train, test):  # one teacher for both splits, independent inputs
        assert torch.equal(part.targets, (part.inputs @ w).argmax(1))
    assert not torch.equal(train.inputs, test.inputs)
    assert torch.equal(
        train.inputs, make_random_classes(1000, input_dim=5, num_classes=3, seed=3).inputs
    )
    with pytest.raises(InputError, match=r"labels must be 'random'.*or 'teacher'.*got 'smart'"):
        make_random_classes(labels="smart")
