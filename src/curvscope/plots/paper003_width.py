"""Figures of the paper-003 small-network studies (``small-nets-width``,
``small-nets-random-inputs``): eigenvalue histograms on linear and log-|λ| axes (paper 003
figs. 1-2) and the cumulative share of eigenvalues near zero."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["small_nets_figures"]


def _histograms(result: Any, *, log: bool) -> Figure:
    spectra = result.spectra
    fig = Figure(figsize=(3.2 * len(spectra), 3.0), layout="constrained")
    axes = fig.subplots(1, len(spectra), squeeze=False)[0]
    for ax, s in zip(axes, spectra, strict=True):
        if s.method == "slq":
            # SLQ fallback: the pooled Ritz nodes, each weighted by P·w (an estimated count)
            nodes, counts = s.density_nodes, s.density_weights * s.num_params
            if log:
                ax.hist(np.log10(np.maximum(np.abs(nodes), 1e-300)), bins=60, weights=counts)
                ax.set_xlabel("log10 |λ| (SLQ nodes)")
            else:
                ax.hist(nodes, bins=60, weights=counts, color="C1", log=True)
                ax.set_xlabel("λ (SLQ nodes)")
        elif log:
            values = np.log10(np.maximum(np.abs(s.eigenvalues), 1e-300))
            ax.hist(values, bins=60, color="C0")
            ax.set_xlabel("log10 |λ|")
        else:
            ax.hist(s.eigenvalues, bins=60, color="C0", log=True)
            ax.set_xlabel("λ")
        ax.set_title(f"{s.label}: P = {s.num_params:,}, {s.num_outliers} outliers", fontsize=9)
    axes[0].set_ylabel("count")
    return fig


def _cumulative(result: Any) -> Figure:
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for s in result.spectra:
        ax.semilogx(result.cumulative_grid, s.cumulative, label=f"{s.label} (P = {s.num_params:,})")
    ax.axvline(result.config["tol"], color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("t")
    ax.set_ylabel("share of eigenvalues with |λ| ≤ t·λ_max")
    ax.legend()
    return fig


@register_figures("small-nets-width")
@register_figures("small-nets-random-inputs")
def small_nets_figures(result: Any) -> dict[str, Figure]:
    """Histograms (linear, log |λ|) of every spectrum, and the cumulative curves."""
    return {
        "histograms": _histograms(result, log=False),
        "log_histograms": _histograms(result, log=True),
        "cumulative": _cumulative(result),
    }
