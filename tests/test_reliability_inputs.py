"""Bad input to the public API gives an InputError saying what was expected, what arrived, the fix.

Devices, seeds, config types, corrupt checkpoints and corrupt CIFAR files (issue: reliability).
"""

from __future__ import annotations

import os
import pathlib
import pickle

import pytest
import torch

from curvscope import InputError, TrainConfig, load_checkpoint, load_dataset, train
from curvscope._validate import check_device
from curvscope.experiments import TrueVsEmpiricalConfig
from tests._fake_cifar import write_fake_cifar

CUDA = torch.cuda.is_available()
MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _config(**kw) -> TrainConfig:
    return TrainConfig(**{"batch_size": 64, "weight_decay": 0.0, **kw})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    return train(_config(epochs=1), out=out).checkpoint


# --- devices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("gpu", r"'gpu' is not a torch device; use cpu, cuda, cuda:<index> or mps"),
        ("cuda:x", r"not a torch device; use cpu"),
        ("meta", r"curvscope runs on cpu, cuda or mps, got 'meta'"),
        (3, r"must be a device string, got 3 \(int\); use cpu"),
    ],
)
def test_unknown_devices_are_refused_with_the_accepted_spellings(device, match) -> None:
    with pytest.raises(InputError, match=match):
        _config(device=device)
    with pytest.raises(InputError, match=match):
        TrueVsEmpiricalConfig("ckpt.pt", device=device)


@pytest.mark.skipif(CUDA, reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_cuda_on_a_cpu_machine_says_no_gpu_and_suggests_cpu(device) -> None:
    match = rf"device '{device}' asked for, but torch sees no CUDA device.*use device cpu"
    with pytest.raises(InputError, match=match):
        _config(device=device)
    with pytest.raises(InputError, match=match):
        TrueVsEmpiricalConfig("ckpt.pt", device=device)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_index_beyond_the_gpus_names_the_count() -> None:
    with pytest.raises(InputError, match=r"has \d+ CUDA device\(s\).*use device cuda:0"):
        check_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(MPS, reason="needs a machine without MPS")
def test_mps_is_blamed_on_the_machine_not_on_the_checkpoint(checkpoint) -> None:
    with pytest.raises(InputError, match=r"'mps' asked for, but the Apple MPS device is not avail"):
        _config(device="mps")
    with pytest.raises(InputError, match=r"map_location 'mps' asked for, but the Apple MPS"):
        load_checkpoint(checkpoint, map_location="mps")


def test_devices_are_stored_in_canonical_form() -> None:
    assert _config(device=torch.device("cpu")).device == "cpu"
    assert TrueVsEmpiricalConfig("c.pt", device=" cpu").device == "cpu"


def test_a_checkpoint_recorded_on_a_gpu_stays_readable_here() -> None:
    record = {**_config().to_dict(), "device": "cuda:3"}
    assert TrainConfig.from_dict(record).device == "cuda:3"  # spelling checked, not presence


# --- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64 + 5, 1.5, "0", True])
def test_seeds_outside_0_to_2_pow_63_are_refused_with_the_range(seed) -> None:
    match = r"seed must be an integer in \[0, 2\*\*63 - 1\].*pass a non-negative integer"
    with pytest.raises(InputError, match=match):
        _config(seed=seed)
    with pytest.raises(InputError, match=match):
        TrueVsEmpiricalConfig("ckpt.pt", seed=seed)


def test_the_largest_seed_is_accepted() -> None:
    assert _config(seed=2**63 - 1).seed == 2**63 - 1


# --- config types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("lr", "fast", r"lr \(alpha_0\) must be a finite number in \(0, inf\), got 'fast' \(str\)"),
        ("lr", float("nan"), r"lr \(alpha_0\) must be a finite number in \(0, inf\), got nan"),
        ("lr", float("inf"), r"lr \(alpha_0\) must be a finite number"),
        ("lr", True, r"got True \(bool\)"),
        ("momentum", "0.9", r"momentum must be a finite number in \[0, 1\), got '0.9' \(str\)"),
        ("momentum", 1.0, r"momentum must be a finite number in \[0, 1\), got 1.0"),
        ("weight_decay", None, r"weight_decay must be a finite number in \[0, inf\), got None"),
        ("final_ratio", 2, r"final_ratio must be a finite number in \[0, 1\], got 2"),
        ("epochs", 2.0, r"epochs must be an integer, got 2.0 \(float\); e.g. 40"),
        ("epochs", "3", r"epochs must be an integer, got '3' \(str\)"),
        ("batch_size", 0, r"batch_size must be an integer >= 1, got 0"),
        ("augment", "no", r"augment must be True or False, got 'no' \(str\); pass augment=True"),
        ("model", 3, r"model must be a name \(a string\), got 3 \(int\); e.g. model='mlp'"),
        ("model", "resnet", r"unknown model 'resnet'; expected one of mlp"),
        ("data", "imagenet", r"unknown dataset 'imagenet'; expected one of digits"),
        ("data_dir", 3, r"data_dir must be a folder path or None, got 3 \(int\)"),
        ("model_options", [32], r"model_options must be a dict of keyword options"),
        ("dtype", "float16", r"dtype must be one of 'float32', 'float64'.*got 'float16'"),
        ("dtype", torch.float16, r"dtype must be one of .*got torch.float16"),
    ],
)
def test_train_config_refuses_wrong_types_and_ranges(field, value, match) -> None:
    with pytest.raises(InputError, match=match):
        _config(**{field: value})


def test_train_config_accepts_torch_dtypes_and_ints_for_floats() -> None:
    config = _config(dtype=torch.float64, lr=1, weight_decay=0)
    assert config.dtype == "float64" and isinstance(config.lr, float)
    assert TrueVsEmpiricalConfig("c.pt", dtype=torch.float32).dtype == "float32"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("views", "9", r"views must be a positive integer \(K frozen views.*got '9'"),
        ("num_steps", 0, r"num_steps must be a positive integer"),
        ("noise_probes", 1, r"noise_probes must be 0 \(skip the noise estimate\) or an integer"),
        ("compare_test", "yes", r"compare_test must be True or False, got 'yes'"),
        ("params", 3, r"params must be a string or None, got 3 \(int\); e.g. params='net.2.\*'"),
        ("matrix", ["hessian"], r"unknown matrix \['hessian'\]; expected one of hessian"),
        ("dtype", "half", r"dtype must be one of 'float32', 'float64'"),
    ],
)
def test_true_vs_empirical_config_refuses_wrong_types(field, value, match) -> None:
    with pytest.raises(InputError, match=match):
        TrueVsEmpiricalConfig("ckpt.pt", **{field: value})


def test_true_vs_empirical_config_refuses_a_non_path_checkpoint() -> None:
    with pytest.raises(InputError, match=r"checkpoint must be the path of a checkpoint.pt, got 3"):
        TrueVsEmpiricalConfig(3)  # type: ignore[arg-type]


# --- corrupt checkpoints ----------------------------------------------------------------------

NOT_READABLE = r"is not a readable curvscope checkpoint: torch could not load it"


def test_random_bytes_checkpoint(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(os.urandom(1000))
    with pytest.raises(InputError, match=NOT_READABLE + r" \(it has 1,000 bytes.*corrupt") as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value)


def test_truncated_checkpoint(tmp_path, checkpoint) -> None:
    data = checkpoint.read_bytes()
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=NOT_READABLE + r".*truncated.*pass a checkpoint.pt"):
        load_checkpoint(path)


def test_empty_checkpoint(tmp_path) -> None:
    (tmp_path / "c.pt").write_bytes(b"")
    with pytest.raises(InputError, match=r"it is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "c.pt")


def test_foreign_pickle_names_the_object_without_weights_only_advice(tmp_path) -> None:
    torch.save({"x": pathlib.Path("a")}, tmp_path / "c.pt")  # an object, not plain data
    with pytest.raises(InputError, match=r"holds a Python object \(pathlib.\w*Path\).*other code"):
        load_checkpoint(tmp_path / "c.pt")
    torch.save({"format": "other"}, tmp_path / "d.pt")
    with pytest.raises(
        InputError, match=r"expected format 'curvscope-checkpoint/1', found 'other'"
    ):
        load_checkpoint(tmp_path / "d.pt")


def test_checkpoint_path_that_is_a_folder(checkpoint) -> None:
    with pytest.raises(InputError, match=r"is a folder, not a file \(it holds a checkpoint.pt"):
        load_checkpoint(checkpoint.parent)


def _tampered(tmp_path, checkpoint, change):
    payload = torch.load(checkpoint, weights_only=True)
    change(payload)
    path = tmp_path / "tampered.pt"
    torch.save(payload, path)
    return path


def test_state_dict_with_a_missing_key(tmp_path, checkpoint) -> None:
    path = _tampered(tmp_path, checkpoint, lambda p: p["model_state"].pop("net.1.weight"))
    with pytest.raises(InputError, match=r"saved weights do not fit.*missing net.1.weight"):
        load_checkpoint(path)


def test_state_dict_with_a_wrong_shape(tmp_path, checkpoint) -> None:
    def change(p):
        p["model_state"]["net.1.weight"] = torch.zeros(3, 3)

    with pytest.raises(InputError, match=r"net.1.weight: \(3, 3\) instead of \(32, 64\)"):
        load_checkpoint(_tampered(tmp_path, checkpoint, change))


def test_checkpoint_lacking_entries_or_with_a_bad_config(tmp_path, checkpoint) -> None:
    path = _tampered(tmp_path, checkpoint, lambda p: p.pop("history"))
    with pytest.raises(InputError, match=r"incomplete curvscope checkpoint: it lacks history"):
        load_checkpoint(path)
    path = _tampered(tmp_path, checkpoint, lambda p: p["config"].update(lr="fast"))
    with pytest.raises(InputError, match=r"records an invalid model or training config \(lr"):
        load_checkpoint(path)
    path = _tampered(tmp_path, checkpoint, lambda p: p["model"].pop("name"))
    with pytest.raises(InputError, match=r"a model record must be a dict with name, input_shape"):
        load_checkpoint(path)


# --- corrupt CIFAR files ----------------------------------------------------------------------


def _fake(tmp_path):
    write_fake_cifar(tmp_path)
    return tmp_path / "cifar-10-batches-py"


def test_random_byte_cifar_batch(tmp_path) -> None:
    folder = _fake(tmp_path)
    (folder / "data_batch_2").write_bytes(os.urandom(500))
    with pytest.raises(
        InputError, match=r"data_batch_2' is not a readable cifar10 file: it has 500"
    ):
        load_dataset("cifar10", data_dir=tmp_path)


def test_truncated_cifar_batch(tmp_path) -> None:
    folder = _fake(tmp_path)
    data = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"could not be unpickled.*corrupt or truncated.*extract"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_cifar_batch_with_wrong_content(tmp_path) -> None:
    folder = _fake(tmp_path)
    (folder / "data_batch_1").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(InputError, match=r"expected a pickled dict, found a list"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": [[1, 2]], b"labels": [0]}))
    with pytest.raises(InputError, match=r"expected data of shape \(n, 3072\) uint8, got shape"):
        load_dataset("cifar10", data_dir=tmp_path)
    bad = {b"data": torch.zeros(2, 3072, dtype=torch.uint8).numpy(), b"labels": [0, 12]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(bad))
    with pytest.raises(InputError, match=r"labels must lie in \[0, 10\), got values from 0 to 12"):
        load_dataset("cifar10", data_dir=tmp_path)
