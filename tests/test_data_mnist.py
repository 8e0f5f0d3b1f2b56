"""MNIST from a local folder of IDX files: exact pixels and labels, gz or plain, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from _fake_mnist import NAMES, idx_bytes, write_fake_mnist

from curvscope.data import MNIST_AUGMENTATION, load_dataset, load_mnist, read_idx
from curvscope.errors import InputError


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_mnist_pixels_and_labels_are_exactly_the_files(tmp_path: Path, gz: bool, layout: str):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    written = write_fake_mnist(folder, gz=gz)
    for split, (images, labels) in written.items():
        data = load_dataset("mnist", split, data_dir=tmp_path)
        assert data.name == "mnist" and data.num_classes == 10 and len(data) == len(labels)
        assert data.input_shape == (1, 28, 28) and data.augmentation == MNIST_AUGMENTATION
        assert torch.equal(data.inputs[:, 0], torch.from_numpy(images))
        x, y = data.get_batch(torch.arange(len(data)))
        assert torch.equal(x[:, 0], torch.from_numpy(images).float() * (1.0 / 255.0))
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def test_read_idx_reads_what_was_written(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(tmp_path / "a", ndim=3), array)
    assert np.array_equal(read_idx(tmp_path / "a.gz", ndim=3), array)


def test_missing_folder_or_files_name_what_is_expected_and_where_to_get_it(tmp_path: Path):
    with pytest.raises(
        InputError, match=r"(?s)never downloaded.*--data-dir.*train-images-idx3-ubyte"
    ):
        load_mnist("train", data_dir=None)
    with pytest.raises(InputError, match=r"'.*nowhere' does not exist.*yann\.lecun\.com"):
        load_mnist("train", data_dir=tmp_path / "nowhere")
    write_fake_mnist(tmp_path)
    (tmp_path / NAMES["test"][1]).unlink()
    load_mnist("train", data_dir=tmp_path)  # the train files alone suffice for train
    with pytest.raises(
        InputError, match=r"lacks the test file\(s\) t10k-labels-idx1-ubyte .*MNIST/raw"
    ):
        load_mnist("test", data_dir=tmp_path)


def _corrupt(tmp_path: Path, name: str, data: bytes) -> Path:
    write_fake_mnist(tmp_path)
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda good: good[:-5], r"is truncated: its header announces sizes \(30, 28, 28\)"),
        (lambda good: good + b"xx", "longer than its header says"),
        (lambda good: good[:10], "is truncated: an IDX file with 3 dimension.*16-byte header"),
        (lambda good: b"\x00\x00\x08\x01" + good[4:], "expected the magic number 0x00000803"),
        (lambda good: b"PK\x03\x04" + good[4:], "found 0x504b0304"),
    ],
)
def test_wrong_or_truncated_image_file_is_named(tmp_path: Path, make, match: str) -> None:
    name = NAMES["train"][0]
    write_fake_mnist(tmp_path / "good")
    good = (tmp_path / "good" / name).read_bytes()
    path = _corrupt(tmp_path / "bad", name, make(good))
    with pytest.raises(InputError, match=rf"{path.name}'? .*{match}|{match}"):
        load_mnist("train", data_dir=tmp_path / "bad")
    with pytest.raises(InputError, match=str(path).replace("\\", "\\\\")):
        load_mnist("train", data_dir=tmp_path / "bad")


def test_corrupt_gzip_and_mismatched_files_are_named(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, gz=True)
    gz = tmp_path / f"{NAMES['train'][1]}.gz"
    gz.write_bytes(gz.read_bytes()[:12])
    with pytest.raises(InputError, match=r"train-labels-idx1-ubyte\.gz' is not a readable gzip"):
        load_mnist("train", data_dir=tmp_path)
    gz.write_bytes(gzip.compress(idx_bytes(np.zeros(5, dtype=np.uint8))))
    with pytest.raises(InputError, match=r"holds 30 images but .* holds 5 labels"):
        load_mnist("train", data_dir=tmp_path)
    gz.write_bytes(gzip.compress(idx_bytes(np.full(30, 12, dtype=np.uint8))))
    with pytest.raises(InputError, match=r"labels up to 12; MNIST labels lie in \[0, 10\)"):
        load_mnist("train", data_dir=tmp_path)
