"""The paper-003 small-network studies: spectra against an independent dense float64 Hessian of
the rebuilt network on the rebuilt data, claims recomputed from the result, the save round trip,
the SLQ + top-k fallback against the dense path, and the laptop preset at width 10."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.func import functional_call

from curvscope.errors import InputError
from curvscope.experiments import get_study
from curvscope.experiments.paper003_width import SmallNetsResult, find_outliers
from curvscope.plots.paper003_width import small_nets_figures

_FAST = ["widths=3,6", "max_steps=300", "grad_tol=1e-2", "data_options.per_class=4"]


@pytest.fixture(scope="module")
def width_run() -> SmallNetsResult:
    study = get_study("small-nets-width")
    return study.run(study.config("laptop", overrides=_FAST))


@pytest.fixture(scope="module")
def random_run() -> SmallNetsResult:
    study = get_study("small-nets-random-inputs")
    return study.run(study.config("laptop", overrides=["width=4", *_FAST[1:]]))


def _dense_hessian(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Reverse-over-reverse Hessian of the mean NLL in the parameter order of the model."""
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in net.named_parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(flat, sizes)
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        logits = functional_call(net, params, (x,))
        return torch.nn.functional.cross_entropy(logits, y)

    return torch.autograd.functional.hessian(loss, theta).numpy()


@pytest.mark.parametrize("which", ["width", "random"])
def test_a_spectrum_is_eigh_of_an_independent_dense_hessian(which, width_run, random_run):
    result = width_run if which == "width" else random_run
    index = len(result.spectra) - 1  # widest net / random inputs after training
    spectrum = result.spectra[index]
    x, y = result.rebuild_data(spectrum.data)
    assert x.dtype == torch.float64
    reference = np.linalg.eigvalsh(_dense_hessian(result.rebuild_model(index), x, y))
    scale = np.abs(reference).max()
    np.testing.assert_allclose(spectrum.eigenvalues, reference, rtol=0, atol=1e-10 * scale)


def test_random_inputs_are_standard_normal_and_seeded(random_run):
    x, _ = random_run.rebuild_data("random")
    again, _ = random_run.rebuild_data("random")
    assert torch.equal(x, again)
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1
    assert [s.label for s in random_run.spectra] == [
        "real/init",
        "real/trained",
        "random/init",
        "random/trained",
    ]


def test_numbers_and_claims_come_from_the_eigenvalues(width_run, random_run):
    for result in (width_run, random_run):
        tol = result.config["tol"]
        window = result.config["outlier_window"] or 4 * result.num_classes
        for s in result.spectra:
            top = s.eigenvalues.max()
            assert s.zero_fraction == np.mean(np.abs(s.eigenvalues) <= tol * top)
            outliers, _ = find_outliers(
                s.eigenvalues, tol=tol, window=window, min_gap=result.config["outlier_gap"]
            )
            np.testing.assert_array_equal(s.outliers, outliers)
    study = get_study("small-nets-width")
    fractions = [s.zero_fraction for s in width_run.spectra]
    rising = all(b > a for a, b in itertools.pairwise(fractions))
    claims = study.claims(width_run)
    assert claims[0].verdict == ("agrees" if rising else claims[0].verdict)
    if not rising:
        assert claims[0].verdict in ("partly", "disagrees")
    counts = [s.num_outliers for s in width_run.spectra]
    c = width_run.num_classes
    expected = (
        "agrees"
        if all(c - 1 <= n <= c for n in counts)
        else ("partly" if all(c / 2 <= n <= 2 * c for n in counts) else "disagrees")
    )
    assert claims[1].verdict == expected
    by = {s.label: s for s in random_run.spectra}
    fewer = by["random/trained"].num_outliers < by["real/trained"].num_outliers
    random_claims = get_study("small-nets-random-inputs").claims(random_run)
    assert random_claims[0].verdict == ("agrees" if fewer else "disagrees")
    for study_name, result in (
        ("small-nets-width", width_run),
        ("small-nets-random-inputs", random_run),
    ):
        assert get_study(study_name).sections(result)
        assert set(small_nets_figures(result)) == {"histograms", "log_histograms", "cumulative"}


def test_outlier_rule():
    values = np.array([-0.01, 0.0, 1e-9, 0.1, 0.11, 0.12, 5.0, 6.0])
    outliers, ratio = find_outliers(values, tol=1e-3, window=4, min_gap=2.0)
    assert outliers.tolist() == [6.0, 5.0] and ratio == pytest.approx(5.0 / 0.12)
    smooth = np.array([1.0, 1.2, 1.4, 1.6])
    assert find_outliers(smooth, tol=1e-3, window=4, min_gap=2.0)[0].size == 0


def test_save_and_load_round_trip(width_run, tmp_path):
    back = SmallNetsResult.load(width_run.save(tmp_path / "r"))
    np.testing.assert_array_equal(back.spectra[0].eigenvalues, width_run.spectra[0].eigenvalues)
    assert back.data == width_run.data
    for a, b in zip(back.spectra[1].state.values(), width_run.spectra[1].state.values()):
        np.testing.assert_array_equal(a, b)


def test_slq_fallback_agrees_with_the_dense_path():
    """max_dense_params below P forces the SLQ + top-k path on the same trained net: the
    outliers, λ_max and λ_min equal the dense eigenvalues (top_eigenpairs, 1e-8 relative), and
    the SLQ zero fraction is within 4 probe standard errors plus the ambiguous (quadrature)
    mass of the dense one."""
    study = get_study("small-nets-width")
    base = ["widths=5", "max_steps=300", "grad_tol=1e-2", "data_options.per_class=3"]
    dense = study.run(study.config("laptop", overrides=base)).spectra[0]
    result = study.run(study.config("laptop", overrides=[*base, "max_dense_params=100"]))
    approx = result.spectra[0]
    assert (dense.method, approx.method) == ("dense", "slq")
    assert approx.num_params == dense.num_params == 65 * 5 + 6 * 10
    window = result.config["outlier_window"] or 4 * result.num_classes
    assert approx.eigenvalues.size == window + 2  # the top_k largest and the smallest
    scale = float(dense.eigenvalues.max())
    np.testing.assert_allclose(approx.eigenvalues[1:], dense.eigenvalues[-window - 1 :],
                               rtol=0, atol=1e-8 * scale)  # fmt: skip
    assert abs(approx.eigenvalues[0] - dense.eigenvalues[0]) <= 1e-8 * scale
    np.testing.assert_allclose(approx.outliers, dense.outliers, rtol=1e-8)
    band = 4 * approx.zero_fraction_se + approx.zero_fraction_ambiguous
    assert 0 < approx.zero_fraction_se and band < 0.5  # a bound that can fail
    assert abs(approx.zero_fraction - dense.zero_fraction) <= band
    assert approx.density_weights.sum() == pytest.approx(1.0)
    text = str(study.sections(result))
    assert "SLQ + top-k fallback for k=5" in text and "slq" in text
    assert set(small_nets_figures(result)) == {"histograms", "log_histograms", "cumulative"}


def test_bad_slq_settings_are_refused():
    study = get_study("small-nets-width")
    with pytest.raises(InputError, match="slq_probes"):
        study.run(study.config("laptop", overrides=["widths=3", "slq_probes=1"]))


def test_laptop_preset_runs_at_width_10():
    study = get_study("small-nets-width")
    result = study.run(study.config("laptop", overrides=["widths=10", "max_steps=2000"]))
    assert result.spectra[0].num_params == 65 * 10 + 11 * 10


@pytest.mark.parametrize("name", ["small-nets-width", "small-nets-random-inputs"])
def test_paper_preset_runs_on_a_fake_mnist_folder(name, tmp_path):
    """The `paper` preset's code path (MNIST from data_dir, a random per-class subset,
    784 inputs) on a fake MNIST folder, at a reduced size (2 images per class, width 1)."""
    from _fake_mnist import write_fake_mnist

    written = write_fake_mnist(tmp_path / "mnist")
    study = get_study(name)
    width = "widths=1" if name == "small-nets-width" else "width=1"
    overrides = [f"data_dir={tmp_path / 'mnist'}", "data_options.per_class=2", width,
                 "max_steps=20"]  # fmt: skip
    config = study.config("paper", overrides=overrides)
    assert config.data == "mnist" and config.data_options["per_class_seed"] == 0
    result = study.run(config)
    assert (result.num_samples, result.input_dim, result.num_classes) == (20, 784, 10)
    assert all(s.method == "dense" and s.num_params == 785 + 2 * 10 for s in result.spectra)
    x, y = result.rebuild_data("real")
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10
    images = torch.from_numpy(written["train"][0].reshape(30, -1).astype(np.float64))
    # every chosen image is one of the fake folder's, up to the loader's affine scaling
    corr = torch.corrcoef(torch.cat([x, images]))[:20, 20:]
    assert bool((corr.max(dim=1).values > 1 - 1e-9).all())
    assert study.sections(result) and study.claims(result)


def test_memory_decides_the_method(monkeypatch):
    """A P under max_dense_params still goes to SLQ when 3·8·P² bytes exceed the memory."""
    import curvscope._memory
    from curvscope.experiments.paper003_width import _dense_fits, dense_bytes

    config = get_study("small-nets-width").config("paper")
    assert dense_bytes(55_660) == 3 * 8 * 55_660**2  # k = 70 on MNIST: about 69 GiB
    monkeypatch.setattr(curvscope._memory, "available_memory", lambda device: 2**30)
    assert _dense_fits(config, 6000)  # 0.8 GiB
    assert not _dense_fits(config, 7000)  # 1.1 GiB > 1 GiB
    assert not _dense_fits(get_study("small-nets-width").config("laptop"), 6001)
