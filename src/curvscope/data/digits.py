"""The 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes).

Inputs are scaled to [0, 1] by dividing the 0..16 grey levels by 16. Not per-pixel
standardisation: border pixels have near-zero variance, so standardised values there explode
as soon as an image is translated (issue 6). No download: the data ship with scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch

from curvscope.data._base import TensorDataset
from curvscope.data.augment import ShiftFlip
from curvscope.errors import InputError

__all__ = ["DIGITS_AUGMENTATION", "load_digits"]

#: ±1-pixel zero-filled translations, no flip (digits are not mirror-symmetric).
DIGITS_AUGMENTATION = ShiftFlip(pad=1, flip=False)


def load_digits(
    split: str = "train", *, test_fraction: float = 0.2, split_seed: int = 0
) -> TensorDataset:
    """The digits as a dataset of ``(1, 8, 8)`` float32 images in [0, 1] and int64 labels.

    The train/test split is stratified by class and fixed by ``split_seed`` (a local
    :class:`numpy.random.Generator`; the global RNG is untouched). With the defaults the
    training set has 1438 images and the test set 359.

    Args:
        split: ``"train"`` or ``"test"``.
        test_fraction: share of each class held out for the test set, in (0, 1).
        split_seed: seed of the split.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must lie in (0, 1), got {test_fraction!r}; e.g. 0.2")
    bunch = _sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(split_seed)
    test_idx = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(members.size)]
        test_idx.append(members[: round(test_fraction * members.size)])
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[np.concatenate(test_idx)] = True
    keep = is_test if split == "test" else ~is_test
    x = torch.from_numpy(images[keep]).unsqueeze(1)
    y = torch.from_numpy(labels[keep])
    return TensorDataset(
        x,
        y,
        name="digits",
        num_classes=10,
        scale=1.0 / 16.0,
        augmentation=DIGITS_AUGMENTATION,
    )
