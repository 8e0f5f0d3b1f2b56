"""MNIST read from a local folder of IDX files (Y. LeCun's format), gzipped or not.

curvscope never downloads. Put the four files under one folder, or in its ``MNIST/raw``
subfolder (torchvision's layout, so a folder torchvision already filled works as is), and pass
the folder as ``data_dir`` (``--data-dir``)::

    DATA_DIR/train-images-idx3-ubyte[.gz]   DATA_DIR/train-labels-idx1-ubyte[.gz]
    DATA_DIR/t10k-images-idx3-ubyte[.gz]    DATA_DIR/t10k-labels-idx1-ubyte[.gz]

Images are kept as uint8 and scaled to [0, 1] per batch (no per-pixel or per-channel
normalisation, as for the digits; ``whiten="standardize"`` gives one).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from curvscope.data._base import TensorDataset
from curvscope.data.augment import ShiftFlip
from curvscope.errors import InputError

__all__ = ["MNIST_AUGMENTATION", "load_mnist", "read_idx"]

#: ±2-pixel zero-filled translations, no flip (digits are not mirror-symmetric).
MNIST_AUGMENTATION = ShiftFlip(pad=2, flip=False)

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_WHERE = (
    "the four files from http://yann.lecun.com/exdb/mnist/ (or a mirror such as "
    "https://ossci-datasets.s3.amazonaws.com/mnist/, the one torchvision uses), gzipped or not"
)
# IDX magic: two zero bytes, a type code (0x08 = unsigned byte) and the number of dimensions.
_UBYTE = 0x08


def read_idx(path: str | Path, *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` or plain) into a uint8 array.

    The header is checked against the file: magic number ``0x0000 08 <ndim>``, ``ndim``
    big-endian int32 sizes, then exactly ``prod(sizes)`` bytes.

    Args:
        path: the file.
        ndim: the number of dimensions the file must have (3 for images, 1 for labels).

    Raises:
        InputError: naming the file, for a truncated, corrupt or foreign file.
    """
    path = Path(path)
    fix = f"replace it with a fresh copy of {_WHERE}"
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(
                f"{str(path)!r} is not a readable gzip file ({exc}); it is corrupt or truncated "
                f"(e.g. an interrupted download or copy); {fix}"
            ) from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(
            f"{str(path)!r} is truncated: an IDX file with {ndim} dimension(s) starts with a "
            f"{header}-byte header, the file has {len(raw)} bytes; {fix}"
        )
    magic = bytes(raw[:4])
    expected = bytes([0, 0, _UBYTE, ndim])
    if magic != expected:
        raise InputError(
            f"{str(path)!r} is not an MNIST IDX file of {ndim} dimension(s): expected the magic "
            f"number 0x{expected.hex()}, found 0x{magic.hex()}; {fix}"
        )
    sizes = tuple(int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    need = int(np.prod(sizes, dtype=np.int64))
    if len(raw) - header != need:
        what = "truncated" if len(raw) - header < need else "longer than its header says"
        raise InputError(
            f"{str(path)!r} is {what}: its header announces sizes {sizes} = {need:,} bytes of "
            f"data, the file holds {len(raw) - header:,}; {fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(sizes)


def _find(root: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``root`` or ``root/MNIST/raw`` (a plain file first)."""
    for folder in (root, root / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_mnist(split: str = "train", *, data_dir: str | Path | None) -> TensorDataset:
    """MNIST as ``(1, 28, 28)`` images in [0, 1] and int64 labels, from local IDX files.

    Paper 003 §2 (Sagun, Bottou & LeCun) computes exact Hessians on 1000 MNIST training images
    (see the ``per_class`` option of :func:`~curvscope.data.load_dataset`).

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        data_dir: the folder holding the IDX files, or its parent in torchvision's layout
            (``data_dir/MNIST/raw/``).

    Raises:
        InputError: when the folder or a file is missing (naming the expected files and where
            to get them), or a file is truncated or not an IDX file (naming it).
    """
    if split not in _FILES:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    names = _FILES[split]
    expected = "\n  ".join(f"{n}[.gz]" for pair in _FILES.values() for n in pair)
    if data_dir is None:
        raise InputError(
            "mnist is read from a local folder and never downloaded; pass its location with "
            f"--data-dir DIR (data_dir=...), where DIR (or DIR/MNIST/raw) holds\n  {expected}\n"
            f"({_WHERE})"
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise InputError(
            f"mnist: the data folder {str(root)!r} does not exist. Create it and put {_WHERE} "
            f"into it (or into its MNIST/raw subfolder), so that it holds\n  {expected}"
        )
    paths = [_find(root, n) for n in names]
    missing = [n for n, p in zip(names, paths, strict=True) if p is None]
    if missing:
        raise InputError(
            f"mnist: the data folder {str(root)!r} lacks the {split} file(s) "
            f"{', '.join(missing)} (looked for them, plain or .gz, in {str(root)!r} and "
            f"{str(root / 'MNIST' / 'raw')!r}). Expected\n  {expected}\n: put {_WHERE} there"
        )
    images = read_idx(paths[0], ndim=3)
    labels = read_idx(paths[1], ndim=1)
    fix = f"the two {split} files must belong together; replace them with {_WHERE}"
    if images.shape[0] != labels.shape[0]:
        raise InputError(
            f"mnist: {str(paths[0])!r} holds {images.shape[0]:,} images but {str(paths[1])!r} "
            f"holds {labels.shape[0]:,} labels; {fix}"
        )
    if labels.size and labels.max() >= 10:
        raise InputError(
            f"mnist: {str(paths[1])!r} has labels up to {labels.max()}; MNIST labels lie in "
            f"[0, 10); {fix}"
        )
    return TensorDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        name="mnist",
        num_classes=10,
        scale=1.0 / 255.0,
        augmentation=MNIST_AUGMENTATION,
    )
