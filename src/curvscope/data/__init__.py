"""curvscope.data: fixed, finite datasets and frozen augmentation views (design.md).

Every dataset is a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs with
``num_classes``, ``input_shape``, ``task`` and a deterministic ``loader(batch_size)``.
"""

from curvscope.data._base import BatchLoader, CurvscopeDataset, TensorDataset
from curvscope.data.augment import AugmentedViews, ShiftFlip, apply_shift_flip
from curvscope.data.cifar import CIFAR_AUGMENTATION, load_cifar
from curvscope.data.digits import DIGITS_AUGMENTATION, load_digits
from curvscope.data.registry import DATASETS, load_dataset
from curvscope.data.synthetic import make_blobs, make_random

__all__ = [
    "CIFAR_AUGMENTATION",
    "DATASETS",
    "DIGITS_AUGMENTATION",
    "AugmentedViews",
    "BatchLoader",
    "CurvscopeDataset",
    "ShiftFlip",
    "TensorDataset",
    "apply_shift_flip",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "make_blobs",
    "make_random",
]
