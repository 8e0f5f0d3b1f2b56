"""Figures of ``noise-trace-dynamics`` (paper 002 thm 1, fig. 3): the change of the Hessian
trace since θ₀ (mean ± SE over seeds; the same probes along a run) at the GD-projected points
along SGD and GD from one low-loss state, per learning rate, and the rate of decrease against
the learning rate."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["trace_dynamics_figures"]


def _mean_se(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    a = np.stack(rows)
    se = a.std(axis=0, ddof=1) / np.sqrt(a.shape[0]) if a.shape[0] > 1 else np.zeros(a.shape[1])
    return a.mean(axis=0), se


def _trace(result: Any) -> Figure:
    lrs = result.config["lrs"]
    fig = Figure(figsize=(3.4 * len(lrs), 3.2), layout="constrained")
    axes = fig.subplots(1, len(lrs), squeeze=False)[0]
    for ax, lr in zip(axes, lrs, strict=True):
        for kind, color in (("sgd", "C3"), ("gd", "C0")):
            runs = result.select(kind, lr)
            mean, se = _mean_se([r.trace - r.trace[0] for r in runs])
            ax.errorbar(
                runs[0].steps,
                mean,
                yerr=se,
                color=color,
                marker="o",
                ms=3,
                capsize=2,
                label=f"{kind.upper()} ({len(runs)} seeds)",
            )
        ax.set_title(f"η = {lr:g}", fontsize=9)
        ax.set_xlabel("step")
    axes[0].set_ylabel("T − T(θ₀) at the projected point (Hutch++)")
    axes[0].legend(fontsize=8)
    return fig


def _rate(result: Any) -> Figure:
    from curvscope.experiments.paper002_trace import _stats

    lrs = np.asarray(result.config["lrs"], dtype=float)
    fig = Figure(figsize=(4.5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for kind, color in (("sgd", "C3"), ("gd", "C0")):
        stats = np.array([_stats(result, kind, lr) for lr in lrs])
        rate, se = -stats[:, 2], stats[:, 3]
        ax.errorbar(
            lrs,
            rate,
            yerr=se,
            color=color,
            marker="o",
            capsize=2,
            ls="none",
            label=f"−dT/dstep, {kind.upper()}",
        )
    sgd = -np.array([_stats(result, "sgd", lr)[2] for lr in lrs])
    if (sgd > 0).all():
        scale = np.exp(np.mean(np.log(sgd) - 2 * np.log(lrs)))
        ax.plot(lrs, scale * lrs**2, color="0.5", ls="--", label="∝ η² (thm 1)")
        ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("rate of trace decrease per step")
    ax.legend(fontsize=8)
    return fig


@register_figures("noise-trace-dynamics")
def trace_dynamics_figures(result: Any) -> dict[str, Figure]:
    """The trace along SGD and GD per η, and the rate against η."""
    return {"trace": _trace(result), "rate": _rate(result)}
