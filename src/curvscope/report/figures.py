"""The figures of a True-vs-Empirical report, drawn from a result and written as PNG (and PDF)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from curvscope.experiments import TrueVsEmpiricalResult
from curvscope.plots import plot_smoothed_density, plot_stem, plot_training_curves

__all__ = ["FIGURE_NAMES", "render_figures"]

_LABELS = {"empirical": "Empirical", "augmented": "Augmented (True)", "test": "Test set"}
_COLORS = {"empirical": "C0", "augmented": "C1", "test": "C2"}

#: File stems of the figures, in report order.
FIGURE_NAMES = ("training", "stem_empirical", "stem_augmented", "stem_test", "densities")


def _title(result: TrueVsEmpiricalResult, name: str) -> str:
    summary = result.summaries[name]
    return (
        f"{_LABELS[name]} {result.config['matrix']}: N = {summary.num_samples:,}, "
        f"P = {result.num_params:,}, m = {result.config['num_steps']}"
    )


def build_figures(result: TrueVsEmpiricalResult) -> dict[str, Figure]:
    """The report's figures by name (only those the result has data for)."""
    figures: dict[str, Figure] = {}
    if result.history:
        fig = plot_training_curves(result.history)
        fig.axes[0].set_title(
            f"training: {result.model.get('name')} on {result.train_config['data']}"
        )
        figures["training"] = fig
    lo = min(d.extremal[0] for d in result.spectra.values())
    hi = max(d.extremal[1] for d in result.spectra.values())
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    for name, density in result.spectra.items():
        fig = plot_stem(density, color=_COLORS[name], title=_title(result, name))
        fig.axes[0].set_xlim(lo - pad, hi + pad)
        figures[f"stem_{name}"] = fig
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    width = (hi - lo) / 100 if hi > lo else 1e-3
    grid = np.linspace(lo - pad, hi + pad, 800)
    for name, density in result.spectra.items():
        plot_smoothed_density(
            density,
            ax=ax,
            width=width,
            grid=grid,
            color=_COLORS[name],
            log=True,
            label=_LABELS[name],
        )
    ax.set_title(f"smoothed densities (Gaussian width {width:.2g})")
    figures["densities"] = fig
    return figures


def render_figures(
    result: TrueVsEmpiricalResult, out: str | Path, *, pdf: bool = False, dpi: int = 110
) -> dict[str, Path]:
    """Write every figure as ``out/<name>.png`` (and ``.pdf`` when asked); returns the PNG paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, fig in build_figures(result).items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        if pdf:
            fig.savefig(out / f"{name}.pdf")
        paths[name] = path
    return paths
