"""Figures of the paper-000 study (``true-vs-empirical``): training curves, one stem plot per
set on a common axis (paper 000 figs. 1-8) and the smoothed densities together."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures
from curvscope.plots.spectra import plot_smoothed_density, plot_stem
from curvscope.plots.training import plot_training_curves
from curvscope.rmt import semicircle

__all__ = ["FIGURE_NAMES", "SET_LABELS", "true_vs_empirical_figures"]

SET_LABELS = {"empirical": "Empirical", "augmented": "Augmented (True)", "test": "Test set"}
_COLORS = {"empirical": "C0", "augmented": "C1", "test": "C2"}

#: File stems of the figures, in report order.
FIGURE_NAMES = (
    "training",
    "stem_empirical",
    "stem_augmented",
    "stem_test",
    "densities",
    "noise_spectrum",
    "epoch_extremes",
)


def _title(result: Any, name: str) -> str:
    summary = result.summaries[name]
    return (
        f"{SET_LABELS[name]} {result.config['matrix']}: N = {summary.num_samples:,}, "
        f"P = {result.num_params:,}, m = {result.config['num_steps']}"
    )


@register_figures("true-vs-empirical")
def true_vs_empirical_figures(result: Any) -> dict[str, Figure]:
    """The study's figures by name (only those the result has data for)."""
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
            label=SET_LABELS[name],
        )
    ax.set_title(f"smoothed densities (Gaussian width {width:.2g})")
    figures["densities"] = fig
    if result.noise_spectrum is not None:
        figures["noise_spectrum"] = _noise_spectrum_figure(result.noise_spectrum)
    if result.epoch_spectra:
        figures["epoch_extremes"] = _epoch_figure(result.epoch_spectra)
    return figures


def _noise_spectrum_figure(check: Any) -> Figure:
    """D's Ritz stems (linear weights) over the semicircle density of radius 2s."""
    fig = plot_stem(
        check.density,
        color="C3",
        log=False,
        title=f"D = (H_A − H_B)/2: Ritz values vs semicircle of radius 2s = {check.edge:.3g}",
    )
    ax = fig.axes[0]
    lo = min(check.smallest, -check.edge) * 1.1
    hi = max(check.largest, check.edge) * 1.1
    grid = np.linspace(lo, hi, 600)
    if check.scale > 0:
        density = semicircle(check.scale).pdf(grid)
        twin = ax.twinx()
        twin.plot(grid, density, color="k", lw=1.2, label="semicircle density")
        twin.set_ylabel("semicircle density")
        twin.legend(loc="upper right")
    ax.set_xlim(lo, hi)
    return fig


def _epoch_figure(epochs: Any) -> Figure:
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = [e.epoch for e in epochs]
    ax.plot(x, [e.summary.largest for e in epochs], "o-", color="C0", label="λ_max")
    ax.plot(x, [e.summary.smallest for e in epochs], "s-", color="C3", label="λ_min")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("extremal Ritz value (Empirical)")
    ax.set_title("Empirical spectrum extremes during training")
    ax.legend()
    return fig
