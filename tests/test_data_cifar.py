"""CIFAR from a local folder in the python-pickle layout (a tiny fake folder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fake_cifar import write_fake_cifar

from curvscope.data import AugmentedViews, load_dataset
from curvscope.errors import InputError

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)


@pytest.mark.parametrize("which", ["cifar10", "cifar100"])
def test_fake_cifar_folder_loads_exactly(tmp_path, which):
    xtr, ytr, _xte, yte = write_fake_cifar(tmp_path, which=which)
    train = load_dataset(which, "train", data_dir=tmp_path)
    test = load_dataset(which, "test", data_dir=tmp_path)
    assert len(train) == len(ytr) and len(test) == len(yte)
    assert train.num_classes == (10 if which == "cifar10" else 100)
    assert train.input_shape == (3, 32, 32)
    assert np.array_equal(train.targets.numpy(), ytr)
    x, _ = train.get_batch(torch.arange(len(train)))
    ref = (torch.from_numpy(xtr).float().view(-1, 3, 32, 32) / 255 - MEAN) / STD
    assert torch.allclose(x, ref, atol=1e-6)
    assert train.class_names[1] == "c1"
    aug = AugmentedViews(train, views=2, seed=0)
    xa, _ = aug.get_batch(torch.arange(len(aug)))
    # zero padding happens in pixel space: padded pixels equal the normalised black pixel
    black = (-MEAN / STD).view(3)
    shifted = (xa != x.repeat(2, 1, 1, 1)).flatten(1).any(1)
    assert shifted.any()
    corners = xa[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert any(torch.allclose(corners[b, :, k], black) for b in range(len(xa)) for k in range(4))


def test_missing_cifar_files_are_named(tmp_path):
    with pytest.raises(InputError, match=r"(?s)does not exist.*cifar-10-batches-py/data_batch_1"):
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    write_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(InputError, match=r"missing: cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(InputError, match="cifar-100-python/train"):
        load_dataset("cifar100", data_dir=tmp_path)
