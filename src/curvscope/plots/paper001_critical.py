"""Figures of the ``critical-points`` study (paper 001 fig. 6): index against energy per φ with
the mean energy per index value and the fits, the small-α fit region, and ε_c(φ) beside the
empirical forms and the theory."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["critical_points_figures"]


def _curve(fit: Any, alpha: np.ndarray) -> np.ndarray:
    return fit.eps_c + (alpha / fit.alpha0) ** (1 / fit.beta)


def _scatter(result: Any, *, small: bool) -> Figure:
    runs = result.runs
    fig = Figure(figsize=(3.6 * len(runs), 3.3), layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    alpha_max = result.config["fit_alpha_max"]
    for ax, s in zip(axes, runs, strict=True):
        P = s.theta.shape[1]
        a = s.index_values / P
        if not small:
            ax.scatter(s.eps[s.kept], s.alpha, s=4, alpha=0.3, color="0.5", label="runs")
        use = a <= alpha_max if small else np.ones_like(a, dtype=bool)
        ax.errorbar(
            s.mean_eps[use],
            a[use],
            xerr=np.nan_to_num(s.sem_eps[use]),
            fmt="o",
            ms=3,
            color="C0",
            label="mean ε per index",
        )
        # the fits hold for small index: drawn over the fit region only
        grid = np.linspace(0, max(alpha_max, 1e-6), 200)
        for fit, color, name in ((s.fit_fixed, "C1", "β = 3/2"), (s.fit_free, "C2", "β free")):
            if fit.ok:
                ax.plot(_curve(fit, grid), grid, color=color, label=f"{name}: β={fit.beta:.2f}")
        ax.axvline((1 - s.phi) ** 2 / 2, color="0.3", ls=":", lw=0.8, label="(1−φ)²/2")
        data = s.mean_eps[use] if small else s.eps[s.kept]
        if data.size:
            pad = 0.05 * (data.max() - data.min() + 1e-3)
            ax.set_xlim(min(data.min(), (1 - s.phi) ** 2 / 2) - pad, data.max() + pad)
        if small:
            ax.set_ylim(-0.005, alpha_max * 1.05)
        ax.set_title(f"φ = {s.phi:.3g}: {s.num_kept} kept", fontsize=9)
        ax.set_xlabel("energy ε")
        ax.set_ylabel("index α")
        ax.legend(fontsize=6)
    return fig


def _eps_c(result: Any) -> Figure:
    from curvscope.experiments.paper001_critical import theory_eps_c

    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    phi = np.array([s.phi for s in result.runs])
    for fit_name, marker in (("fit_fixed", "o"), ("fit_free", "s")):
        fits = [getattr(s, fit_name) for s in result.runs]
        ok = np.array([f.ok for f in fits])
        ax.errorbar(
            phi[ok],
            [f.eps_c for f, k in zip(fits, ok) if k],
            yerr=[f.eps_c_err for f, k in zip(fits, ok) if k],
            fmt=marker,
            capsize=3,
            label=f"fitted ε_c ({'β = 3/2' if fit_name == 'fit_fixed' else 'β free'})",
        )
    grid = np.linspace(0.01, 0.99, 100)
    ax.plot(grid, (1 - grid) ** 2 / 2, color="C1", label="(1−φ)²/2 (tanh, empirical)")
    ax.plot(grid, (1 - grid) / 2, color="C2", label="(1−φ)/2 (linear nets)")
    ax.plot(
        grid,
        [theory_eps_c(p, 1.0)["eq21 s=1"] for p in grid],
        color="C3",
        ls="--",
        label="eq. 21 (s = 1)",
    )
    scales = [float(np.median(s.h0_scale[s.kept])) if s.num_kept else np.nan for s in result.runs]
    for s, sc in zip(result.runs, scales):
        if np.isfinite(sc):
            t = theory_eps_c(s.phi, sc)
            ax.plot([s.phi], [t["eq21 s"]], "x", color="C3")
            ax.plot([s.phi], [t["eq32 s"]], "+", color="C4")
    ax.plot([], [], "x", color="C3", label="eq. 21 at measured s")
    ax.plot([], [], "+", color="C4", label="eq. 32 at measured s")
    ax.set_xlabel("φ")
    ax.set_ylabel("ε_c")
    ax.legend(fontsize=7)
    return fig


@register_figures("critical-points")
def critical_points_figures(result: Any) -> dict[str, Figure]:
    """Index vs energy per φ, the small-α fit region, and ε_c(φ)."""
    return {
        "scatter": _scatter(result, small=False),
        "mean_energy": _scatter(result, small=True),
        "eps_c": _eps_c(result),
    }
