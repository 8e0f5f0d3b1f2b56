"""true_vs_empirical: config -> result on a tiny checkpoint; numbers trace back to the spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from curvscope.errors import InputError
from curvscope.experiments import TrueVsEmpiricalConfig, TrueVsEmpiricalResult, true_vs_empirical
from curvscope.training import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ckpt")
    config = TrainConfig(
        batch_size=64, weight_decay=1e-4, epochs=2, lr=0.1, model_options={"hidden": [8]}
    )
    return train(config, out=out, progress=False).checkpoint  # type: ignore[return-value]


@pytest.fixture(scope="module")
def result(checkpoint: Path) -> TrueVsEmpiricalResult:
    torch.set_num_threads(1)
    config = TrueVsEmpiricalConfig(
        checkpoint=str(checkpoint),
        views=2,
        num_steps=12,
        num_probes=2,
        noise_probes=4,
        dtype="float64",
    )
    return true_vs_empirical(config)


def test_result_numbers_come_from_its_spectra(result: TrueVsEmpiricalResult) -> None:
    assert set(result.spectra) == {"empirical", "augmented", "test"}
    assert result.num_params == 64 * 8 + 8 + 8 * 10 + 10
    assert result.num_augmented == 2 * result.num_train == 2 * 1438 and result.num_test == 359
    for name, density in result.spectra.items():
        s = result.summaries[name]
        assert (s.smallest, s.largest) == (density.nodes.min(), density.nodes.max())
        assert s.negative_mass == density.negative_mass().mass
        assert s.top_weights[0].weight == density.top_weights(1, probe=0)[0].weight
        assert density.num_probes == 2 and density.size == result.num_params
    assert result.summaries["empirical"].accuracy == result.history[-1]["train_accuracy"]
    assert result.summaries["test"].loss == pytest.approx(result.history[-1]["test_loss"])
    th = result.theory
    assert th.observed.empirical == (
        result.summaries["empirical"].smallest,
        result.summaries["empirical"].largest,
    )
    assert th.noise_empirical.s2 > 0 and th.forward is not None
    assert th.q_empirical == result.num_params / result.num_train


def test_result_save_load_roundtrip(result: TrueVsEmpiricalResult, tmp_path: Path) -> None:
    stem = result.save(tmp_path / "r.json")
    back = TrueVsEmpiricalResult.load(stem)
    assert back.summary() == result.summary()
    for name in result.spectra:
        np.testing.assert_array_equal(back.spectra[name].nodes, result.spectra[name].nodes)
        np.testing.assert_array_equal(back.spectra[name].weights, result.spectra[name].weights)
    with pytest.raises(InputError, match="at least one is missing"):
        TrueVsEmpiricalResult.load(tmp_path / "nothing")


def test_config_and_checkpoint_errors(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="views must be a positive integer"):
        TrueVsEmpiricalConfig(checkpoint="x", views=0)
    with pytest.raises(InputError, match="num_steps must be a positive integer"):
        TrueVsEmpiricalConfig(checkpoint="x", num_steps=0)
    with pytest.raises(InputError, match="unknown matrix 'hess'"):
        TrueVsEmpiricalConfig(checkpoint="x", matrix="hess")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="noise_probes must be 0"):
        TrueVsEmpiricalConfig(checkpoint="x", noise_probes=1)
    with pytest.raises(InputError, match="holds a 'mlp' model, but 'cnn' was asked"):
        true_vs_empirical(TrueVsEmpiricalConfig(checkpoint=str(checkpoint), model="cnn"))
    with pytest.raises(InputError, match="no checkpoint at"):
        true_vs_empirical(TrueVsEmpiricalConfig(checkpoint=str(tmp_path / "none.pt")))


def test_params_pattern_selects_a_subset(checkpoint: Path) -> None:
    config = TrueVsEmpiricalConfig(
        checkpoint=str(checkpoint),
        views=1,
        num_steps=5,
        num_probes=1,
        noise_probes=0,
        compare_test=False,
        params="net.*.bias",
    )
    torch.set_num_threads(1)
    try:
        out = true_vs_empirical(config)
    except InputError as exc:  # the MLP names its layers differently: say so in the failure
        pytest.fail(f"pattern did not match the MLP's parameter names: {exc}")
    assert out.num_params == 8 + 10 and out.theory.forward is None
    assert set(out.spectra) == {"empirical", "augmented"}


def test_result_rebuilds_its_model_and_data(result: TrueVsEmpiricalResult, tmp_path: Path) -> None:
    """A saved result alone recomputes its recorded losses: weights + architecture + data."""
    back = TrueVsEmpiricalResult.load(result.save(tmp_path / "result"))
    assert back.weights.keys() == result.weights.keys()
    for key, value in result.weights.items():
        np.testing.assert_array_equal(back.weights[key], value)
    assert back.data == result.data and back.data.views == 2 and back.data.view_seed == 0
    model, loss_fn = back.rebuild_model(), back.rebuild_loss()
    batch_size = back.config["batch_size"]
    for split, name in (("train", "empirical"), ("augmented", "augmented"), ("test", "test")):
        data = back.rebuild_data(split)
        assert len(data) == back.summaries[name].num_samples
        loss, accuracy = evaluate(model, data, loss_fn, batch_size=batch_size)
        assert loss == back.summaries[name].loss, split
        assert accuracy == back.summaries[name].accuracy, split
    with pytest.raises(InputError, match="split 'train', 'test' or 'augmented', got 'val'"):
        back.rebuild_data("val")  # type: ignore[arg-type]


def test_a_subset_is_named_in_the_result_and_checked_on_rebuild(tmp_path) -> None:
    import dataclasses

    import numpy as np
    import pytest

    from curvscope.errors import InputError
    from curvscope.experiments.paper000 import (
        TrueVsEmpiricalStudyConfig,
        run_true_vs_empirical_study,
    )
    from curvscope.experiments.true_vs_empirical_results import TrueVsEmpiricalResult

    config = TrueVsEmpiricalStudyConfig(
        data_options={"per_class": 5},
        model_options={"hidden": [8], "activation": "tanh"},
        epochs=1,
        views=1,
        num_steps=4,
        num_probes=1,
        noise_probes=0,
        estimator_samples=0,
        noise_spectrum_steps=0,
    )
    result = run_true_vs_empirical_study(config)
    indices = result.data.subset_indices
    assert indices is not None and len(indices) == 50 and result.num_train == 50
    result.save(tmp_path / "r")
    back = TrueVsEmpiricalResult.load(tmp_path / "r")
    np.testing.assert_array_equal(back.data.subset_indices, indices)
    assert len(back.rebuild_data("train")) == 50
    other = dataclasses.replace(
        back, data=dataclasses.replace(back.data, subset_indices=indices[::-1].copy())
    )
    with pytest.raises(InputError, match="training subset is not the one the result"):
        other.rebuild_data("train")
