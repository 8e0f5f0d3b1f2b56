"""Write a tiny MNIST folder of IDX files, gzipped or plain (shared by data and CLI tests)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic 0x0000 08 <ndim>, big-endian int32 sizes, the data."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_fake_mnist(
    root: Path, *, gz: bool = False, sizes: tuple[int, int] = (30, 20), seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write random 28x28 images with labels cycling 0..9; return {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for (split, (img_name, lab_name)), n in zip(NAMES.items(), sizes, strict=True):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        for name, array in ((img_name, images), (lab_name, labels)):
            data = idx_bytes(array)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
        out[split] = (images, labels)
    return out
