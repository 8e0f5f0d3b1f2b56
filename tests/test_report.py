"""Report outputs and plot functions: every file written, HTML self-contained with the tables."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from curvscope.errors import InputError
from curvscope.experiments import TrueVsEmpiricalConfig, TrueVsEmpiricalResult, true_vs_empirical
from curvscope.plots import (
    plot_smoothed_density,
    plot_spectrum,
    plot_stem,
    plot_training_curves,
)
from curvscope.report import write_outputs
from curvscope.training import TrainConfig, train


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> TrueVsEmpiricalResult:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rep")
    config = TrainConfig(
        batch_size=64, weight_decay=1e-4, epochs=3, lr=0.1, model_options={"hidden": [8]}
    )
    ckpt = train(config, out=out, progress=False).checkpoint
    return true_vs_empirical(
        TrueVsEmpiricalConfig(
            checkpoint=str(ckpt), views=2, num_steps=10, num_probes=1, noise_probes=2
        )
    )


def test_write_outputs_writes_every_file(result: TrueVsEmpiricalResult, tmp_path: Path) -> None:
    paths = write_outputs(result, tmp_path, pdf=True)
    for name in ("summary.json", "result.json", "result.npz", "spectra.npz", "report.html"):
        assert (tmp_path / name).is_file(), name
    for fig in ("training", "stem_empirical", "stem_augmented", "stem_test", "densities"):
        assert (tmp_path / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"{fig}.pdf").read_bytes()[:4] == b"%PDF"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sets"]["empirical"]["largest"] == result.summaries["empirical"].largest
    assert summary["num_params"] == result.num_params
    arrays = np.load(paths["spectra"])
    np.testing.assert_array_equal(arrays["augmented_nodes"], result.spectra["augmented"].nodes)
    back = TrueVsEmpiricalResult.load(tmp_path / "result")
    assert back.summary() == result.summary()


def test_report_html_is_self_contained_with_tables(
    result: TrueVsEmpiricalResult, tmp_path: Path
) -> None:
    page = write_outputs(result, tmp_path)["report"].read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 5
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no remote resources
    assert "<link" not in page and "<script" not in page
    for heading in (
        "Table 1 — extremal Ritz values",
        "Table 2 — negative spectral mass",
        "Table 3 — the three heaviest Ritz weights",
        "Theorem 1: prediction beside observation",
        "Forward: empirical extremes predicted",
        "Noise scale (split-half estimator",
        "Configuration",
    ):
        assert heading in page, heading
    emp = result.summaries["empirical"]
    assert f"Empirical</td><td>{emp.negative_count:,}</td>" in page  # table 2
    assert f"Empirical</td><td>{result.num_train:,}</td>" in page  # table 1
    # claims, what-is-compared, tables 1-3, extremes, noise, forward, reverse, configuration
    assert page.count("<table>") == 10
    assert "Paper vs ours" in page


def test_spectrum_plots_return_figures_and_draw_on_given_axes(
    result: TrueVsEmpiricalResult,
) -> None:
    density = result.spectra["empirical"]
    fig = plot_stem(density, label="emp")
    assert isinstance(fig, Figure) and fig.axes[0].get_yscale() == "log"
    given = Figure().add_subplot()
    assert plot_smoothed_density(density, ax=given, width=0.01) is given.figure
    (line,) = given.get_lines()
    grid = line.get_xdata()
    np.testing.assert_allclose(line.get_ydata(), density.smoothed(grid, 0.01))
    both = plot_spectrum(density)
    assert len(both.axes) == 2
    with pytest.raises(InputError, match=r"expected a curvscope\.spectral\.SpectralDensity"):
        plot_stem(np.zeros(3))  # type: ignore[arg-type]


def test_stem_heights_are_pooled_weights(result: TrueVsEmpiricalResult) -> None:
    density = result.spectra["augmented"]
    ax = plot_stem(density, log=False).axes[0]
    (markers,) = ax.get_lines()[:1]
    np.testing.assert_allclose(markers.get_ydata(), density.pooled_weights)
    np.testing.assert_allclose(markers.get_xdata(), density.nodes)


def test_training_curves(result: TrueVsEmpiricalResult) -> None:
    fig = plot_training_curves(result.history)
    assert len(fig.axes) == 2  # loss + twin accuracy axis
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert labels == ["train loss", "test loss", "train accuracy", "test accuracy"]
    ax = Figure().add_subplot()
    plot_training_curves(result.history, metric="accuracy", ax=ax)
    np.testing.assert_allclose(
        ax.get_lines()[1].get_ydata(), [h["test_accuracy"] for h in result.history]
    )
    with pytest.raises(InputError, match="history is empty"):
        plot_training_curves([])
    with pytest.raises(InputError, match="metric must be"):
        plot_training_curves(result.history, metric="lr")  # type: ignore[arg-type]
