"""Dataset names -> datasets: ``load_dataset("digits", split="train")``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from curvscope.data._base import TensorDataset
from curvscope.data.cifar import load_cifar
from curvscope.data.digits import load_digits
from curvscope.data.mnist import load_mnist
from curvscope.data.preprocess import (
    fit_whitening,
    per_class_indices,
    subset,
    transform_images,
    whiten_dataset,
)
from curvscope.data.synthetic import make_blobs, make_random, make_random_classes
from curvscope.errors import InputError

__all__ = ["DATASETS", "DATASET_OPTIONS", "dataset_options", "load_dataset"]

#: Every dataset name :func:`load_dataset` knows, with a one-line description.
DATASETS: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 digits, 1438 train / 359 test, 10 classes",
    "blobs": "two 2-D Gaussian blobs at (1,1) and (-1,-1), 2 classes (paper 003 §3)",
    "random": "standard-normal inputs and real targets for MSE memorisation (paper 001 §6.4)",
    "random-classes": "standard-normal 784-D inputs with random or teacher labels, 10 classes "
    "(paper 003 §2.2)",
    "mnist": "MNIST from --data-dir (IDX files, .gz or not), 60k train / 10k test",
    "cifar10": "CIFAR-10 from --data-dir (python-pickle layout), 50k train / 10k test",
    "cifar100": "CIFAR-100 from --data-dir (python-pickle layout), fine labels",
}

_IMAGES = ("digits", "mnist", "cifar10", "cifar100")
_CLASSIFICATION = (*_IMAGES, "blobs", "random-classes")
_COMMON = {
    "per_class": "keep k items of each class (the first k, or a random k with per_class_seed)",
    "per_class_seed": "seed of a random per-class choice (default: the first k of each class)",
    "size": "mean-pool the images to size x size (e.g. 4, 7)",
    "grayscale": "convert RGB images to luma (0.299 R + 0.587 G + 0.114 B)",
    "whiten": "'zca' (paper 001's whitened images) or 'standardize', fitted on the train split",
}

#: The options each dataset takes (``--data-option key=value``), with a one-line description.
DATASET_OPTIONS: dict[str, dict[str, str]] = {
    "digits": {"test_fraction": "share of each class held out for the test split (0.2)"},
    "blobs": {
        "num_samples": "number of points (1000)",
        "std": "standard deviation around each centre (1.0)",
    },
    "random": {
        "num_samples": "number of items (1000)",
        "input_dim": "input length (10)",
        "output_dim": "target length (10)",
    },
    "random-classes": {
        "num_samples": "number of items (1000)",
        "input_dim": "input length (784)",
        "num_classes": "number of classes (10)",
        "labels": "'random' (uniform) or 'teacher' (argmax of a random linear map)",
    },
    "mnist": {},
    "cifar10": {},
    "cifar100": {},
}
for _name, _own in DATASET_OPTIONS.items():
    _own.update(
        {
            k: v
            for k, v in _COMMON.items()
            if (k in ("size", "grayscale") and _name in _IMAGES)
            or (k.startswith("per_class") and _name in _CLASSIFICATION)
            or k == "whiten"
        }
    )

# The test split of a synthetic dataset is drawn with a different stream of the same seed.
_TEST_STREAM = 0x7E57


def dataset_options(name: str) -> tuple[str, ...]:
    """The option names :func:`load_dataset` takes for dataset ``name``, sorted."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(sorted(DATASETS))}")
    return tuple(sorted(DATASET_OPTIONS[name]))


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    **options: Any,
) -> TensorDataset:
    """Load a fixed, finite dataset by name.

    Options specific to a dataset are listed in :data:`DATASET_OPTIONS`. Every classification
    dataset takes ``per_class`` (and ``per_class_seed``); image datasets take ``size`` and
    ``grayscale``; every dataset takes ``whiten``. They apply in the order subset -> grayscale
    -> mean-pool -> whiten, to the split being loaded, and the whitening map is fitted on the
    training split loaded with the same options (see :mod:`curvscope.data.preprocess`). A
    subset records its item indices in the split as ``dataset.subset_indices``.

    Args:
        name: one of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        data_dir: folder of the MNIST or CIFAR files (ignored otherwise).
        seed: fixes the digits split and the synthetic draws (the test split of a synthetic
            dataset uses an independent stream of the same seed; a teacher is shared).
        **options: see :data:`DATASET_OPTIONS`.

    Raises:
        InputError: unknown name, split or option, bad option values, or missing files.

    Example:
        >>> train = load_dataset("digits", "train", per_class=5, size=4, whiten="zca")
        >>> len(train), train.input_shape, train.subset_indices[:3].tolist()
        (50, (1, 4, 4), [0, 1, 2])
    """
    known = dataset_options(name)
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputError(
            f"dataset {name!r} does not take the option(s) {', '.join(unknown)}; its options "
            f"are {', '.join(known) or '(none)'}"
        )
    whiten = options.pop("whiten", None)
    data = _prepared(name, split, data_dir, seed, dict(options))
    if whiten is None:
        return data
    train = data if split == "train" else _prepared(name, "train", data_dir, seed, options)
    return whiten_dataset(data, fit_whitening(train.raw(torch.arange(len(train))), whiten))


def _prepared(
    name: str, split: str, data_dir: str | Path | None, seed: int, options: dict[str, Any]
) -> TensorDataset:
    """The split, subset per class, grayscale and mean-pooled as the options ask."""
    per_class = options.pop("per_class", None)
    per_class_seed = options.pop("per_class_seed", None)
    size = options.pop("size", None)
    grayscale = options.pop("grayscale", False)
    if per_class is None and per_class_seed is not None:
        raise InputError("per_class_seed chooses a per_class subset; pass per_class=k with it")
    data = _load(name, split, data_dir, seed, options)
    if per_class is not None:
        data = subset(
            data,
            per_class_indices(
                data.targets, per_class, num_classes=data.num_classes, seed=per_class_seed
            ),
        )
    return transform_images(data, size=size, grayscale=grayscale)


def _load(
    name: str, split: str, data_dir: str | Path | None, seed: int, options: dict[str, Any]
) -> TensorDataset:
    if name == "digits":
        return load_digits(split, split_seed=seed, **options)
    if name == "mnist":
        return load_mnist(split, data_dir=data_dir)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, split, data_dir=data_dir)
    stream_seed = seed if split == "train" else seed * 65599 + _TEST_STREAM
    if name == "random-classes":
        return make_random_classes(seed=stream_seed, teacher_seed=seed, **options)
    maker = make_blobs if name == "blobs" else make_random
    return maker(seed=stream_seed, **options)
