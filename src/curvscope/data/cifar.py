"""CIFAR-10 / CIFAR-100 read from a local folder in the standard python-pickle layout.

curvscope never downloads. Put the extracted archives from https://www.cs.toronto.edu/~kriz/
under one folder and pass it as ``data_dir`` (``--data-dir``)::

    DATA_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    DATA_DIR/cifar-100-python/{train, test, meta}

Images are kept as uint8 (150 MB for 50k images) and turned into float32 per batch: scaled to
[0, 1], augmented (zero padding is a black pixel) and then normalised per channel with the
usual CIFAR statistics, as torchvision's ``RandomCrop -> ToTensor -> Normalize`` does.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from curvscope.data._base import TensorDataset
from curvscope.data.augment import ShiftFlip
from curvscope.errors import InputError

__all__ = ["CIFAR_AUGMENTATION", "load_cifar"]

#: 4-pixel zero padding + random 32x32 crop + random horizontal flip (paper 000 §6).
CIFAR_AUGMENTATION = ShiftFlip(pad=4, flip=True)

_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{k}" for k in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        b"labels",
        b"label_names",
        10,
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        ["test"],
        "meta",
        b"fine_labels",
        b"fine_label_names",
        100,
    ),
}
_MEAN = (0.4914, 0.4822, 0.4465)
_STD = (0.2470, 0.2435, 0.2616)


def cifar_files(name: str) -> list[str]:
    """The files (relative to ``data_dir``) that ``load_cifar(name, ...)`` reads."""
    folder, train, test, meta, *_ = _LAYOUT[name]
    return [f"{folder}/{f}" for f in [*train, *test, meta]]


def _unpickle(path: Path, name: str) -> dict:
    """Read one CIFAR pickle, with a message that names the file for a corrupt or foreign one."""
    fix = (
        f"extract the python version of {name} from https://www.cs.toronto.edu/~kriz/cifar.html "
        "again to replace it (check the archive's md5 first)"
    )
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # unpickling raises almost anything on random bytes
        raise InputError(
            f"{str(path)!r} is not a readable {name} file: it has {size:,} bytes and could not "
            f"be unpickled ({type(exc).__name__}); it is corrupt or truncated (e.g. an "
            f"interrupted download or copy); {fix}"
        ) from None
    if not isinstance(batch, dict):
        raise InputError(
            f"{str(path)!r} is not a {name} file: expected a pickled dict, found a "
            f"{type(batch).__name__}; {fix}"
        )
    return batch


def load_cifar(name: str, split: str = "train", *, data_dir: str | Path | None) -> TensorDataset:
    """CIFAR-10 or CIFAR-100 as ``(3, 32, 32)`` images and int64 labels (fine labels for 100).

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        data_dir: the folder that holds ``cifar-10-batches-py/`` or ``cifar-100-python/``.

    Raises:
        InputError: when the folder or any file is missing, naming what is expected where.
    """
    if name not in _LAYOUT:
        raise InputError(f"unknown CIFAR dataset {name!r}; expected 'cifar10' or 'cifar100'")
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    folder, train_files, test_files, meta_file, label_key, names_key, classes = _LAYOUT[name]
    expected = "\n  ".join(cifar_files(name))
    if data_dir is None:
        raise InputError(
            f"{name} is read from a local folder and never downloaded; pass its location with "
            f"--data-dir DIR (data_dir=...), where DIR holds\n  {expected}\n(the extracted "
            "python version from https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise InputError(
            f"{name}: the data folder {str(root)!r} does not exist. Create it and extract the "
            f"python version of {name} from https://www.cs.toronto.edu/~kriz/cifar.html into "
            f"it, so that it holds\n  {expected}"
        )
    missing = [f for f in cifar_files(name) if not (root / f).is_file()]
    if missing:
        raise InputError(
            f"{name}: the data folder {str(root)!r} lacks {len(missing)} of the files curvscope "
            f"reads (missing: {', '.join(missing)}). Expected\n  {expected}\nunder "
            f"{str(root)!r}: extract the python version of {name} from "
            "https://www.cs.toronto.edu/~kriz/cifar.html into that folder"
        )
    xs, ys = [], []
    for fname in train_files if split == "train" else test_files:
        path = root / folder / fname
        fix = (
            f"extract the python version of {name} from "
            "https://www.cs.toronto.edu/~kriz/cifar.html again to replace it"
        )
        batch = _unpickle(path, name)
        if b"data" not in batch or label_key not in batch:
            raise InputError(
                f"{str(path)!r} is not a {name} batch: expected the keys b'data' and "
                f"{label_key!r}, found {sorted(batch)[:6]}; {fix}"
            )
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            labels = np.asarray(batch[label_key], dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            data = labels = np.zeros(0)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise InputError(
                f"{str(path)!r}: expected data of shape (n, 3072) uint8, got shape {data.shape}; "
                f"{fix}"
            )
        if labels.shape != (data.shape[0],):
            raise InputError(
                f"{str(path)!r}: expected one label per image ({data.shape[0]}), got labels of "
                f"shape {labels.shape}; {fix}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise InputError(
                f"{str(path)!r}: labels must lie in [0, {classes}), got values from "
                f"{labels.min()} to {labels.max()}; {fix}"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    labels = np.concatenate(ys)
    dataset = TensorDataset(
        torch.from_numpy(np.concatenate(xs)),
        torch.from_numpy(labels),
        name=name,
        num_classes=classes,
        scale=1.0 / 255.0,
        mean=_MEAN,
        std=_STD,
        augmentation=CIFAR_AUGMENTATION,
    )
    meta = _unpickle(root / folder / meta_file, name)
    dataset.class_names = [
        n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(names_key, [])
    ]
    return dataset
