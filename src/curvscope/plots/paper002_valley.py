"""Figures of ``noise-valley-paths`` (paper 002 fig. 1, fig. 3, fig. 4): training and test loss
along the projected SGD path (breaks marked), and the Hessian trace at the projected epoch
checkpoints."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["valley_path_figures"]


def _losses(result: Any) -> Figure:
    paths = result.paths
    fig = Figure(figsize=(4.2 * len(paths), 3.4), layout="constrained")
    axes = fig.subplots(1, len(paths), squeeze=False)[0]
    for ax, v in zip(axes, paths, strict=True):
        epochs = v.path.steps / v.steps_per_epoch
        ax.plot(epochs, v.path.losses, color="C0", marker=".", label="train (projected)")
        ax.plot(epochs, v.test_loss, color="C1", marker=".", label="test (projected)")
        raw = np.arange(v.epoch_loss.size)
        ax.plot(raw, v.epoch_loss, color="C0", ls=":", label="train (SGD iterate)")
        ax.axhline(v.path.threshold, color="0.5", lw=0.8, ls="--", label="threshold")
        for i, _ in v.path.breaks:
            ax.axvline(i / v.steps_per_epoch, color="C3", lw=0.8)
        ax.set_title(
            f"{v.variant}: {v.path.steps.size} points, {v.path.num_breaks} breaks", fontsize=9
        )
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=7)
    return fig


def _trace(result: Any) -> Figure:
    fig = Figure(figsize=(4.8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for k, v in enumerate(result.paths):
        epochs = v.trace_steps / v.steps_per_epoch
        ax.errorbar(
            epochs,
            v.trace_values,
            yerr=v.trace_stderr,
            color=f"C{k}",
            marker="o",
            ms=3,
            capsize=2,
            label=v.variant,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("tr H at the projected checkpoint (Hutch++ ± SE)")
    ax.legend(fontsize=8)
    return fig


@register_figures("noise-valley-paths")
def valley_path_figures(result: Any) -> dict[str, Figure]:
    """Losses along the projected path per variant, and the trace along it."""
    return {"losses": _losses(result), "trace": _trace(result)}
