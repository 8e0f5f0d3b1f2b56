"""Figures of the paper-002 study ``noise-toy-models``: the trace rate against η (fig. 2b), T
and log Det under the two designed noises (fig. 2c-d), and θ2 with and without noise (fig. 7)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["toy_models_figures"]


def _trace_rate(result: Any) -> Figure:
    a = result.trace_rate
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.errorbar(a.etas, a.rate, yerr=a.rate_se, fmt="o", color="C0", capsize=3,
                label="measured ± SE")  # fmt: skip
    ax.plot(a.etas, a.exact, "s--", color="C1", mfc="none", label="eta-exact prediction")
    ax.axhline(a.leading, color="k", lw=1, label=f"leading order {a.leading:g}")
    ax.set_xticks(list(a.etas))
    ax.set_xlabel("η")
    ax.set_ylabel("ΔT / (η² K)")
    ax.set_title(f"toy (a): {a.chains} chains, K = {a.steps}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _signs(result: Any) -> Figure:
    b = result.signs
    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    steps = np.asarray(b.record_steps)
    for k, (name, mean, se) in enumerate(
        (("T", b.trace, b.trace_se), ("log Det", b.logdet, b.logdet_se))
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        for j, (label, color) in enumerate((("SGD-like C = κλ", "C3"), ("isotropic", "C0"))):
            change = mean[j] - mean[j][0]
            ax.plot(steps, change, color=color, label=label)
            ax.fill_between(steps, change - se[j], change + se[j], color=color, alpha=0.2)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("step")
        ax.set_ylabel(f"mean change of {name}")
        ax.legend(fontsize=8)
    fig.suptitle(f"toy (b) from (θ3, θ4) = {tuple(b.start)}, {b.chains} chains", fontsize=9)
    return fig


def _theta2(result: Any) -> Figure:
    c = result.theta2
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    steps = np.asarray(c.record_steps)
    ax.plot(steps, c.theta2_mean, color="C3", label="noisy GD, mean over chains")
    ax.fill_between(steps, c.theta2_mean - c.theta2_se, c.theta2_mean + c.theta2_se,
                    color="C3", alpha=0.2)  # fmt: skip
    ax.plot(steps, c.gd_theta2, color="C0", label="GD (no noise)")
    ax.axhline(c.predicted, color="k", lw=1, ls="--", label=f"−2α/(ηκ) = {c.predicted:.3g}")
    ax.axvline(c.burn_in, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("θ2")
    ax.set_title(f"toy (c): ⟨θ2⟩ = {c.mean:.5f} ± {c.se:.1g}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


@register_figures("noise-toy-models")
def toy_models_figures(result: Any) -> dict[str, Figure]:
    """The study's figures by name."""
    return {"trace_rate": _trace_rate(result), "signs": _signs(result), "theta2": _theta2(result)}
