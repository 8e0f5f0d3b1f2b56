"""Write a tiny CIFAR folder in the real python-pickle layout (shared by data and CLI tests)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_fake_cifar(root: Path, *, which: str = "cifar10", per_file: int = 4, seed: int = 0):
    """Return (train_data, train_labels, test_data, test_labels) as written (uint8, N x 3072)."""
    rng = np.random.default_rng(seed)
    classes = 10 if which == "cifar10" else 100
    if which == "cifar10":
        folder, train, test, meta = (
            "cifar-10-batches-py",
            [f"data_batch_{k}" for k in range(1, 6)],
            ["test_batch"],
            "batches.meta",
        )
        key, names = b"labels", {b"label_names": [f"c{k}".encode() for k in range(classes)]}
    else:
        folder, train, test, meta = "cifar-100-python", ["train"], ["test"], "meta"
        key, names = (
            b"fine_labels",
            {b"fine_label_names": [f"c{k}".encode() for k in range(classes)]},
        )
    d = root / folder
    d.mkdir(parents=True)
    out = {}
    for split, files in (("train", train), ("test", test)):
        xs, ys = [], []
        for f in files:
            x = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
            y = rng.integers(0, classes, size=per_file).tolist()
            with (d / f).open("wb") as fh:
                pickle.dump({b"data": x, key: y, b"batch_label": b"fake"}, fh)
            xs.append(x)
            ys += y
        out[split] = (np.concatenate(xs), np.asarray(ys))
    with (d / meta).open("wb") as fh:
        pickle.dump(names, fh)
    return (*out["train"], *out["test"])
