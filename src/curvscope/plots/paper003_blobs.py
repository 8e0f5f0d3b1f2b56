"""Figures of the paper-003 study ``small-nets-blobs``: spectra per architecture (paper figs. 4,
5), Hessian heatmaps (fig. 6), spectra during training (fig. 7) and the top two eigenvalues
against the blobs' std (fig. 9)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["blobs_figures"]


def _spectra(result: Any) -> Figure:
    runs = result.runs
    fig = Figure(figsize=(3.0 * max(len(runs) // 2, 1), 5.0), layout="constrained")
    cols = max((len(runs) + 1) // 2, 1)
    for i, run in enumerate(runs):
        ax = fig.add_subplot(2, cols, i + 1)
        ax.hist(run.eigenvalues, bins=40, color="C0" if run.loss == "nll" else "C1")
        ax.set_yscale("log")
        ax.set_title(f"{run.loss.upper()}, P = {run.num_params}", fontsize=9)
        ax.set_xlabel("λ")
    return fig


def _heatmaps(result: Any) -> Figure:
    runs = [r for r in result.runs if r.hessian is not None]
    fig = Figure(figsize=(4.0 * len(runs), 3.6), layout="constrained")
    for i, run in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), i + 1)
        lim = float(np.abs(run.hessian).max()) or 1.0
        im = ax.imshow(run.hessian, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"Hessian, P = {run.num_params}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _trajectory(result: Any) -> Figure:
    tol = result.config["zero_tol"]
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    lo = min(float(p.eigenvalues.min()) for p in result.trajectory)
    hi = max(float(p.eigenvalues.max()) for p in result.trajectory)
    bins = np.linspace(lo, hi, 41)
    for p in result.trajectory:
        ax.hist(p.eigenvalues, bins=bins, histtype="step", label=f"{p.step} steps")
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.legend(fontsize=7)
    steps = [p.step for p in result.trajectory]
    zf = [float(np.mean(np.abs(p.eigenvalues) <= tol * np.abs(p.eigenvalues).max()))
          for p in result.trajectory]  # fmt: skip
    ax2.plot(steps, zf, "o-")
    ax2.set_xlabel("GD step")
    ax2.set_ylabel(f"fraction |λ| ≤ {tol:g}·λ_max")
    return fig


def _sweep(result: Any) -> Figure:
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    stds = [s.std for s in result.sweep]
    ax.plot(stds, [s.eigenvalues[-1] for s in result.sweep], "o-", label="λ_1")
    ax.plot(stds, [s.eigenvalues[-2] for s in result.sweep], "s-", label="λ_2")
    ax.set_xlabel("blob std")
    ax.set_ylabel("eigenvalue")
    ax.legend()
    return fig


@register_figures("small-nets-blobs")
def blobs_figures(result: Any) -> dict[str, Figure]:
    """The study's figures by name (only those the result has data for)."""
    figures: dict[str, Figure] = {}
    if result.runs:
        figures["spectra"] = _spectra(result)
    if any(r.hessian is not None for r in result.runs):
        figures["heatmaps"] = _heatmaps(result)
    if result.trajectory:
        figures["trajectory"] = _trajectory(result)
    if result.sweep:
        figures["sweep"] = _sweep(result)
    return figures
