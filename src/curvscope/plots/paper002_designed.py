"""Figures of the paper-002 study ``noise-designed``: T_k and log Det_k along training under GD,
SGD-like and isotropic noise, on toy model (b) and on the digits MLP."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["designed_figures"]

_COLORS = {"gd": "k", "sgd-like": "C3", "isotropic": "C0"}


def _panels(
    title: str, steps: np.ndarray, series: dict[str, tuple[Any, Any, Any, Any]], burn_in: int
) -> Figure:
    """series: arm -> (trace, trace_se, logdet, logdet_se), each (m,)."""
    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    for k, name in enumerate(("T_k", "log Det_k")):
        ax = fig.add_subplot(1, 2, k + 1)
        for arm, values in series.items():
            mean, se = np.asarray(values[2 * k]), np.asarray(values[2 * k + 1])
            change = mean - mean[0]
            ax.plot(steps, change, color=_COLORS[arm], label=arm)
            ax.fill_between(steps, change - se, change + se, color=_COLORS[arm], alpha=0.2)
        ax.axhline(0, color="0.5", lw=0.5)
        ax.axvline(burn_in, color="0.5", lw=0.8, ls=":")  # changes are measured from here
        ax.set_xlabel("step")
        ax.set_ylabel(f"change of {name}")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def _toy(result: Any) -> Figure:
    t = result.toy
    series = {
        arm: (t.trace[j], t.trace_se[j], t.logdet[j], t.logdet_se[j])
        for j, arm in enumerate(("gd", "sgd-like", "isotropic"))
    }
    return _panels(
        f"toy (b), {t.chains} chains per arm", np.asarray(t.record_steps), series, t.burn_in
    )


def _net(result: Any) -> Figure:
    n = result.net
    zero = np.zeros(len(n.record_steps))
    gd_t, gd_d = n.gd_eigs.sum(-1), np.log(n.gd_eigs).sum(-1)
    series = {"gd": (gd_t, zero, gd_d, zero)}
    s = len(n.seeds)
    for j, arm in enumerate(("sgd-like", "isotropic")):
        tr = n.noisy_eigs[j].sum(-1) - n.noisy_eigs[j][:, :1].sum(-1)  # (S, m) change per seed
        ld = np.log(n.noisy_eigs[j]).sum(-1)
        ld = ld - ld[:, :1]
        t0, d0 = n.noisy_eigs[j][0, 0].sum(), np.log(n.noisy_eigs[j][0, 0]).sum()
        series[arm] = (
            tr.mean(0) + t0,
            tr.std(0, ddof=1) / np.sqrt(s),
            ld.mean(0) + d0,
            ld.std(0, ddof=1) / np.sqrt(s),
        )
    return _panels(
        f"digits MLP, P = {n.num_params}, {s} seeds", np.asarray(n.record_steps), series, n.burn_in
    )


@register_figures("noise-designed")
def designed_figures(result: Any) -> dict[str, Figure]:
    """The study's figures by name."""
    return {"toy": _toy(result), "net": _net(result)}
