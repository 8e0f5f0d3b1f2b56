"""Figures of ``hessian-decomposition`` (paper 001 figs. 2-5): the freeness test, H1 with noise
residuals against the product-Wishart density, H0 at init against MP, the gap against 1/phi and
the Hessian at the trained point against the densities of eqs. 18 and 30. The law densities are
evaluated from the parameters the result records (plots never compute spectra)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["decomposition_figures"]


def _freeness(r: Any) -> Figure:
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (name, t) in zip(axes, (("trained", r.trained), ("initialisation", r.initial))):
        lo, hi = min(t.h.min(), t.rotated.min()), max(t.h.max(), t.rotated.max())
        bins = np.linspace(lo, hi, 80)
        ax.hist(t.h, bins=bins, density=True, alpha=0.6, label="H0 + H1")
        ax.hist(t.rotated, bins=bins, density=True, alpha=0.6, label="H0 + Q H1 Qᵀ")
        ax.set_yscale("log")
        ax.set_xlabel("λ")
        ax.set_title(f"{name}: eps {t.eps:.3g}, D/D0 = {t.freeness.ratio:.2f}", fontsize=9)
    axes[0].legend()
    return fig


def _h1_noise(r: Any) -> Figure:
    from curvscope.rmt import product_wishart

    fig = Figure(figsize=(4.0 * len(r.noise), 3.2), layout="constrained")
    axes = fig.subplots(1, len(r.noise), squeeze=False)[0]
    for ax, n in zip(axes, r.noise, strict=True):
        ax.hist(n.eigenvalues, bins=60, density=True, color="0.3", label="H1 (noise residuals)")
        x = np.linspace(n.eigenvalues.min(), n.eigenvalues.max(), 801)
        ax.plot(x, product_wishart(n.eps, n.phi).pdf(x), "r", label="product-Wishart")
        ax.set_title(f"phi = {n.phi:g}, eps = {n.eps:g}: KS {n.ks:.3f}", fontsize=9)
        ax.set_xlabel("λ")
    axes[0].legend(fontsize=8)
    return fig


def _h0_init(r: Any) -> Figure:
    from curvscope.rmt import marchenko_pastur

    i = r.init
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(i.eigenvalues, bins=80, density=True, color="0.3", label="H0 (nulls removed)")
    x = np.linspace(1e-9, i.eigenvalues.max(), 2001)
    ax.plot(
        x, marchenko_pastur(i.phi, i.scale).pdf(x), "r", label=f"MP(phi={i.phi:g}, s={i.scale:.3g})"
    )
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.set_title(f"KS {i.ks:.3f}", fontsize=9)
    ax.legend()
    inset = ax.inset_axes((0.5, 0.35, 0.45, 0.35))
    inset.plot(np.arange(1, min(35, i.eigenvalues.size) + 1), i.eigenvalues[:35], "k.")
    inset.axhline(0, color="0.6", lw=0.8)
    inset.set_title("35 smallest", fontsize=7)
    return fig


def _gap(r: Any) -> Figure:
    g = r.gap
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.errorbar(1 / g.phis, g.mean, yerr=g.sem, fmt="ko", label=f"mean of {g.gaps.shape[1]} runs")
    grid = np.linspace(1 / g.phis.max(), 1 / g.phis.min(), 200)
    ax.plot(
        grid, g.scale * (1 - np.sqrt(1 / grid)) ** 2, "r", label=f"s(1−√phi)², s = {g.scale:.3g}"
    )
    ax.set_xlabel("1/phi")
    ax.set_ylabel("gap of H0")
    ax.legend()
    return fig


def _densities(r: Any) -> Figure:
    from curvscope.rmt import pennington_bahri

    t = r.trained
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(t.h, bins=100, density=True, color="0.3", label="H (trained)")
    x = np.linspace(min(t.h.min(), -0.1 * t.scale), t.h.max(), 2001)
    for model, color in (("wishart+wigner", "C0"), ("improved", "r")):
        law = pennington_bahri(t.eps, t.phi, model=model, scale=t.scale)
        ax.plot(x, law.pdf(x), color=color, label=model)
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-3)
    ax.set_xlabel("λ")
    ax.set_title(
        f"eps {t.eps:.3g}, phi {t.phi:.3g}: index {t.index_reduced:.3f} vs alpha "
        f"{t.alpha_improved:.3f} (improved)",
        fontsize=9,
    )
    ax.legend()
    return fig


@register_figures("hessian-decomposition")
def decomposition_figures(result: Any) -> dict[str, Figure]:
    """The five figures of the study's report."""
    return {
        "freeness": _freeness(result),
        "h1_noise": _h1_noise(result),
        "h0_init": _h0_init(result),
        "gap": _gap(result),
        "densities": _densities(result),
    }
