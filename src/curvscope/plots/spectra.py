"""Spectrum plots: SLQ stem plots (paper 000 figs. 1-8), smoothed densities, both together.

Each function takes ``ax=None`` (then draws on a new :class:`~matplotlib.figure.Figure` made
without pyplot, so it works headless and never touches the global backend) and returns the
figure. They draw a :class:`~curvscope.spectral.SpectralDensity` as it is; the Gaussian
smoothing of :meth:`~curvscope.spectral.SpectralDensity.smoothed` is the only arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from curvscope.errors import InputError
from curvscope.plots._axes import figure_axes
from curvscope.spectral import SpectralDensity

__all__ = ["plot_smoothed_density", "plot_spectrum", "plot_stem"]


def _check(density: Any) -> SpectralDensity:
    if not isinstance(density, SpectralDensity):
        raise InputError(
            f"expected a curvscope.spectral.SpectralDensity (from slq), got {type(density).__name__}"
        )
    return density


def plot_stem(
    density: SpectralDensity,
    *,
    ax: Axes | None = None,
    label: str | None = None,
    color: Any = "C0",
    log: bool = True,
    title: str | None = None,
) -> Figure:
    """Stem plot of Ritz values against their pooled Gauss weights (paper 000 figs. 1-8).

    Every probe's Ritz pairs are drawn, each weight divided by the number of probes so that the
    stems carry the pooled measure (total mass 1). Weights on a log scale by default, as in
    the paper, so the small outlying Ritz values stay visible next to the zero peak.

    Args:
        density: an SLQ result.
        ax: axes to draw on (default: a new figure).
        label: legend label.
        color: stem colour.
        log: log-scale weights.
        title: axes title.
    """
    density = _check(density)
    fig, ax = figure_axes(ax)
    weights = density.pooled_weights
    floor = max(float(weights[weights > 0].min()) / 3, 1e-300) if log and (weights > 0).any() else 0
    ax.vlines(density.nodes, floor, np.maximum(weights, floor), colors=color, linewidth=1.0)
    ax.plot(density.nodes, np.maximum(weights, floor), "o", color=color, markersize=3, label=label)
    if log:
        ax.set_yscale("log")
    ax.axvline(0.0, color="0.6", linewidth=0.6, linestyle=":")
    ax.set_xlabel("Ritz value θ")
    ax.set_ylabel("Gauss weight w" + (" (log)" if log else ""))
    if title:
        ax.set_title(title)
    if label:
        ax.legend(loc="best", fontsize=8)
    return fig


def plot_smoothed_density(
    density: SpectralDensity,
    *,
    width: float | None = None,
    grid: Any = None,
    ax: Axes | None = None,
    label: str | None = None,
    color: Any = "C1",
    log: bool = False,
    num_points: int = 800,
) -> Figure:
    """The SLQ measure smoothed by a Gaussian kernel of an explicit ``width``.

    Args:
        density: an SLQ result.
        width: kernel standard deviation (default: 1/100 of the Ritz range); it adds
            ``width^2`` to the second moment, so state it when you show the curve.
        grid: evaluation points (default: ``num_points`` over the Ritz range padded by 5%).
        ax, label, color: as for :func:`plot_stem`.
        log: log-scale density (six decades below the highest peak drawn).
        num_points: size of the default grid.
    """
    density = _check(density)
    fig, ax = figure_axes(ax)
    lo, hi = density.extremal
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    if width is None:
        width = span / 100
    if grid is None:
        grid = np.linspace(lo - 0.05 * span - 3 * width, hi + 0.05 * span + 3 * width, num_points)
    values = density.smoothed(grid, width)
    if log:
        values = np.maximum(values, values.max() * 1e-12)
    ax.plot(
        grid, values, color=color, linewidth=1.2, label=label or f"smoothed (width {width:.2g})"
    )
    if log:
        # Gaussian tails fall to 1e-300 within a few widths: show six decades below the peak,
        # keeping what the axes already show.
        ax.set_yscale("log")
        top = max(float(np.max(line.get_ydata())) for line in ax.get_lines())
        ax.set_ylim(bottom=top * 1e-6, top=top * 3)
    ax.set_ylabel("density")
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_spectrum(
    density: SpectralDensity,
    *,
    ax: Axes | None = None,
    width: float | None = None,
    title: str | None = None,
    color: Any = "C0",
) -> Figure:
    """Stem plot (log weights, left axis) with the smoothed density on a twin right axis."""
    density = _check(density)
    fig, ax = figure_axes(ax)
    plot_stem(density, ax=ax, color=color, title=title, label="Ritz weights")
    twin = ax.twinx()
    plot_smoothed_density(density, ax=twin, width=width, color="C3", log=True)
    twin.set_ylabel("smoothed density (log)")
    return fig
