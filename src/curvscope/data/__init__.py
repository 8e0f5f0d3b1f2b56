"""curvscope.data: fixed, finite datasets and frozen augmentation views (design.md).

Every dataset is a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs with
``num_classes``, ``input_shape``, ``task`` and a deterministic ``loader(batch_size)``.
"""

from curvscope.data._base import BatchLoader, CurvscopeDataset, TensorDataset
from curvscope.data.augment import AugmentedViews, ShiftFlip, apply_shift_flip
from curvscope.data.cifar import CIFAR_AUGMENTATION, load_cifar
from curvscope.data.digits import DIGITS_AUGMENTATION, load_digits
from curvscope.data.mnist import MNIST_AUGMENTATION, load_mnist, read_idx
from curvscope.data.preprocess import (
    Whitening,
    fit_whitening,
    mean_pool,
    per_class_indices,
    to_grayscale,
)
from curvscope.data.registry import DATASET_OPTIONS, DATASETS, dataset_options, load_dataset
from curvscope.data.synthetic import make_blobs, make_random, make_random_classes

__all__ = [
    "CIFAR_AUGMENTATION",
    "DATASETS",
    "DATASET_OPTIONS",
    "DIGITS_AUGMENTATION",
    "MNIST_AUGMENTATION",
    "AugmentedViews",
    "BatchLoader",
    "CurvscopeDataset",
    "ShiftFlip",
    "TensorDataset",
    "Whitening",
    "apply_shift_flip",
    "dataset_options",
    "fit_whitening",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "make_blobs",
    "make_random",
    "make_random_classes",
    "mean_pool",
    "per_class_indices",
    "read_idx",
    "to_grayscale",
]
