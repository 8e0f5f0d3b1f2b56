"""Dataset names -> datasets: ``load_dataset("digits", split="train")``."""

from __future__ import annotations

from pathlib import Path

from curvscope.data._base import TensorDataset
from curvscope.data.cifar import load_cifar
from curvscope.data.digits import load_digits
from curvscope.data.synthetic import make_blobs, make_random
from curvscope.errors import InputError

__all__ = ["DATASETS", "load_dataset"]

#: Every dataset name :func:`load_dataset` knows, with a one-line description.
DATASETS: dict[str, str] = {
    "digits": "scikit-learn's bundled 8x8 digits, 1438 train / 359 test, 10 classes",
    "blobs": "two 2-D Gaussian blobs at (1,1) and (-1,-1), 2 classes (paper 003 §3)",
    "random": "standard-normal inputs and real targets for MSE memorisation (paper 001 §6.4)",
    "cifar10": "CIFAR-10 from --data-dir (python-pickle layout), 50k train / 10k test",
    "cifar100": "CIFAR-100 from --data-dir (python-pickle layout), fine labels",
}

# The test split of a synthetic dataset is drawn with a different stream of the same seed.
_TEST_STREAM = 0x7E57


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    **options: object,
) -> TensorDataset:
    """Load a fixed, finite dataset by name.

    Args:
        name: one of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        data_dir: folder of the CIFAR files (ignored otherwise).
        seed: fixes the digits split and the synthetic draws (the test split of ``blobs`` and
            ``random`` uses an independent stream of the same seed).
        **options: passed on: ``test_fraction`` (digits); ``num_samples``, ``std`` (blobs);
            ``num_samples``, ``input_dim``, ``output_dim`` (random).

    Raises:
        InputError: unknown name or split, bad options, or missing CIFAR files.
    """
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(sorted(DATASETS))}")
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    try:
        if name == "digits":
            return load_digits(split, split_seed=seed, **options)
        if name in ("cifar10", "cifar100"):
            if options:
                raise TypeError(f"unexpected options {sorted(options)}")
            return load_cifar(name, split, data_dir=data_dir)
        stream_seed = seed if split == "train" else seed * 65599 + _TEST_STREAM
        maker = make_blobs if name == "blobs" else make_random
        return maker(seed=stream_seed, **options)
    except TypeError as exc:
        raise InputError(f"dataset {name!r} got options it does not take: {exc}") from None
