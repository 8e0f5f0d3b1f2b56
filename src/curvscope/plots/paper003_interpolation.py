"""Figures of the paper-003 study ``small-nets-interpolation``: loss profiles on the segment
between two training runs (paper fig. 10), as lines and heat maps, and the barrier per step."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["interpolation_figures"]


def _profiles(result: Any) -> Figure:
    fig = Figure(figsize=(4.5 * len(result.pairs), 3.6), layout="constrained")
    for i, pair in enumerate(result.pairs):
        ax = fig.add_subplot(1, len(result.pairs), i + 1)
        picks = np.unique(np.linspace(0, len(pair.steps) - 1, 6).round().astype(int))
        cmap = colormaps["viridis"]
        for j, k in enumerate(picks):
            ax.plot(pair.s, pair.losses[k], color=cmap(j / max(len(picks) - 1, 1)),
                    label=f"step {int(pair.steps[k])}")  # fmt: skip
        ax.axvline(0, color="grey", lw=0.5)
        ax.axvline(1, color="grey", lw=0.5)
        ax.set_yscale("log")
        ax.set_xlabel("s")
        ax.set_ylabel("training loss")
        ax.set_title(f"{pair.name}: {pair.methods[0].upper()} → {pair.methods[1].upper()}",
                     fontsize=9)  # fmt: skip
        ax.legend(fontsize=7)
    return fig


def _heatmaps(result: Any) -> Figure:
    fig = Figure(figsize=(4.5 * len(result.pairs), 3.6), layout="constrained")
    for i, pair in enumerate(result.pairs):
        ax = fig.add_subplot(1, len(result.pairs), i + 1)
        im = ax.pcolormesh(pair.s, pair.steps, np.log10(pair.losses), shading="nearest")
        ax.set_xlabel("s")
        ax.set_ylabel("step")
        ax.set_title(pair.name, fontsize=9)
        fig.colorbar(im, ax=ax, label="log10 L")
    return fig


def _barriers(result: Any) -> Figure:
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for pair in result.pairs:
        ax.plot(pair.steps, result.relative_barriers(pair), "o-", ms=2, label=pair.name)
        ax2.plot(pair.steps, pair.distance, "o-", ms=2, label=pair.name)
    ax.axhline(result.config["flat_tol"], color="grey", ls="--", lw=0.8, label="flat_tol")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("step")
    ax.set_ylabel("barrier / max(L(0), L(1))")
    ax.legend(fontsize=7)
    ax2.set_xlabel("step")
    ax2.set_ylabel("‖w_a − w_b‖")
    ax2.legend(fontsize=7)
    return fig


@register_figures("small-nets-interpolation")
def interpolation_figures(result: Any) -> dict[str, Figure]:
    """The study's figures by name."""
    if not result.pairs:
        return {}
    return {
        "profiles": _profiles(result),
        "heatmaps": _heatmaps(result),
        "barriers": _barriers(result),
    }
