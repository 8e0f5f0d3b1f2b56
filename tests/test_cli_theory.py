"""`curvscope theory`: PNG files and JSON numbers, through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.plots.theory import (
    plot_critical_energy,
    plot_densities,
    plot_density,
    plot_index_curves,
)
from curvscope.rmt import (
    critical_energy_curve,
    index,
    index_curve,
    marchenko_pastur,
    pennington_bahri,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_real_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 10_000


def test_theory_writes_pngs_and_json(tmp_path) -> None:
    out = tmp_path / "figs"
    result = CliRunner().invoke(
        main,
        [
            "theory",
            "--phi",
            "0.5",
            "--eps",
            "0.05,0.1",
            "--index-phis",
            "0.5",
            "--num-eps",
            "6",
            "--sample-size",
            "300",
            "--seed",
            "3",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for name in ("densities", "index", "critical_energy", "sample"):
        assert _is_real_png(out / f"{name}.png"), name
        assert report["files"][name] == str(out / f"{name}.png")
    assert report["critical_energy"] == pytest.approx(0.011271, rel=1e-4)
    assert report["densities"][1]["index"] == pytest.approx(0.11356, abs=6e-6)
    curve = report["index_curves"][0]
    assert len(curve["eps"]) == 6 and curve["alpha"] == pytest.approx(
        index(np.array(curve["eps"]), 0.5).tolist()
    )
    sample = report["sample"]
    assert sample["size"] == 300 and abs(sample["index_sampled"] - sample["index_theory"]) < 0.03


def test_theory_text_output_and_improved_model(tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "theory",
            "--model",
            "improved",
            "--phi",
            "0.4",
            "--eps",
            "1.5",
            "--index-phis",
            "0.4",
            "--num-eps",
            "3",
            "--eps-max",
            "2.0",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "index alpha = 0.1219" in result.output and "wrote densities" in result.output
    assert _is_real_png(tmp_path / "densities.png") and not (tmp_path / "sample.png").exists()


def test_theory_rejects_bad_flags(tmp_path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["theory", "--eps", "0.1,abc", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "comma-separated numbers" in bad.output
    neg = runner.invoke(main, ["theory", "--eps", "-0.1", "--out", str(tmp_path)])
    assert neg.exit_code != 0 and "energies must be >= 0" in neg.output
    imp = runner.invoke(
        main, ["theory", "--model", "improved", "--index-phis", "3", "--out", str(tmp_path)]
    )
    assert imp.exit_code != 0 and "phi <= 2.06" in imp.output
    missing = runner.invoke(main, ["theory"])
    assert missing.exit_code != 0 and "--out" in missing.output


def test_plot_functions_return_figures_and_draw_on_given_axes(tmp_path) -> None:
    law = marchenko_pastur(2.0)
    ev = np.linalg.eigvalsh(law.sample_matrix(200, generator=0))
    fig = plot_density(law, ev)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # the bars leave out the atom's exact zeros yet keep the full-sample normalisation: their
    # area equals the continuous fraction 1/phi
    values, edges, _ = ax.patches[0].get_data()
    assert np.sum(values * np.diff(edges)) == pytest.approx(0.5, abs=1e-12)  # 100 of 200 non-zero
    assert len(ax.lines) >= 2  # the density and the atom's line
    fig.savefig(tmp_path / "d.png")
    assert _is_real_png(tmp_path / "d.png")
    host = Figure()
    axes = host.subplots(1, 3)
    assert plot_densities([pennington_bahri(0.1, 0.5)], labels=["a"], ax=axes[0]) is host
    assert plot_index_curves([index_curve(0.5, [0.0, 0.1])], ax=axes[1]) is host
    assert plot_critical_energy(critical_energy_curve([0.2, 0.5]), ax=axes[2]) is host
    with pytest.raises(InputError, match="at least one law"):
        plot_densities([])
    with pytest.raises(InputError, match="2 labels for 1 laws"):
        plot_densities([law], labels=["a", "b"])
    with pytest.raises(InputError, match="bins must be >= 1"):
        plot_density(law, ev, bins=0)
