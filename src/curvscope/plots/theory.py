"""Theory plots: densities over eigenvalue histograms, index curves alpha(eps), eps_c(phi).

Each function takes ``ax=None`` (a new figure without pyplot, so it works headless and never
touches the global backend) and returns the figure. They draw results and laws from
:mod:`curvscope.rmt`; they do not compute spectra (evaluating a law's closed-form density on the
plot grid is the only arithmetic).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from curvscope.errors import InputError
from curvscope.plots._axes import figure_axes
from curvscope.rmt import CriticalEnergyCurve, IndexCurve, SpectralLaw

__all__ = ["plot_critical_energy", "plot_densities", "plot_density", "plot_index_curves"]


def _grid(
    laws: Sequence[SpectralLaw], num_points: int, extra: np.ndarray | None = None
) -> np.ndarray:
    lo = min(law.support[0] for law in laws)
    hi = max(law.support[1] for law in laws)
    if extra is not None and extra.size:
        lo, hi = min(lo, float(extra.min())), max(hi, float(extra.max()))
    pad = 0.05 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, num_points)


def _draw_atoms(ax: Axes, law: SpectralLaw, color: Any) -> None:
    for loc, mass in law.atoms:
        ax.axvline(loc, color=color, linestyle=":", linewidth=1.2)
        ax.annotate(
            f"atom {mass:.3g}",
            (loc, 0.95),
            xycoords=("data", "axes fraction"),
            color=color,
            fontsize=8,
            ha="left",
            va="top",
            rotation=90,
        )


def plot_density(
    law: SpectralLaw,
    eigenvalues: Any = None,
    *,
    ax: Axes | None = None,
    bins: int = 80,
    num_points: int = 800,
    label: str | None = None,
    title: str | None = None,
) -> Figure:
    """A law's density (atoms as dotted lines with their mass) over a histogram of eigenvalues.

    Args:
        law: any :class:`~curvscope.rmt.SpectralLaw` (semicircle, MP, Pennington-Bahri, a free
            convolution, ...).
        eigenvalues: sampled or measured eigenvalues to histogram (optional). Exact atoms
            in the sample (e.g. the zeros of a rank-deficient Wishart) are left out of the bars,
            which stay normalised by the full sample size, so bars and density share a scale.
        ax: axes to draw on; a new figure when None.
        bins: histogram bins; num_points: density grid size; label, title: text.
    """
    if bins < 1 or num_points < 2:
        raise InputError(
            f"bins must be >= 1 and num_points >= 2; got bins={bins}, num_points={num_points}"
        )
    fig, ax = figure_axes(ax)
    ev = None if eigenvalues is None else np.asarray(eigenvalues, dtype=float).ravel()
    x = _grid([law], num_points, ev)
    if ev is not None:
        # eigenvalues sitting on an atom of the law are the atom, not the density: leave them out
        # of the bars but keep the normalisation by the full sample size
        scale = max(1.0, float(np.max(np.abs(ev))))
        at_atom = np.zeros(ev.size, dtype=bool)
        for loc, _ in law.atoms:
            at_atom |= np.abs(ev - loc) <= 1e-8 * scale
        counts, edges = np.histogram(ev[~at_atom], bins=bins)
        heights = counts / (ev.size * np.diff(edges))
        ax.stairs(heights, edges, fill=True, color="0.78", label=f"eigenvalues (n={ev.size})")
    ax.plot(x, law.pdf(x), color="C0", linewidth=2, label=label or type(law).__name__)
    _draw_atoms(ax, law, "C0")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density ρ(λ)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_densities(
    laws: Sequence[SpectralLaw],
    *,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    num_points: int = 1200,
    title: str | None = None,
) -> Figure:
    """Several densities on one axis (001 figure 1: the Hessian law for several energies)."""
    laws = list(laws)
    if not laws:
        raise InputError("plot_densities needs at least one law")
    if labels is not None and len(labels) != len(laws):
        raise InputError(f"got {len(labels)} labels for {len(laws)} laws")
    fig, ax = figure_axes(ax)
    x = _grid(laws, num_points)
    for i, law in enumerate(laws):
        color = f"C{i % 10}"
        ax.plot(x, law.pdf(x), color=color, linewidth=1.8, label=labels[i] if labels else None)
        _draw_atoms(ax, law, color)
    ax.axvline(0.0, color="k", linewidth=0.6)
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density ρ(λ)")
    if title:
        ax.set_title(title)
    if labels:
        ax.legend(fontsize=8)
    return fig


def plot_index_curves(
    curves: Sequence[IndexCurve], *, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Index ``alpha(eps)`` (001 eq. 19) for several ``phi``, with ``eps_c`` marked (eq. 21/32)."""
    curves = list(curves)
    if not curves:
        raise InputError("plot_index_curves needs at least one IndexCurve")
    fig, ax = figure_axes(ax)
    for i, c in enumerate(curves):
        color = f"C{i % 10}"
        ax.plot(c.eps, c.alpha, color=color, linewidth=1.8, label=f"φ = {c.phi:g}")
        if c.critical_energy > 0:
            ax.axvline(c.critical_energy, color=color, linestyle="--", linewidth=0.8)
    ax.set_xlabel("energy ε")
    ax.set_ylabel("index α (fraction of negative eigenvalues)")
    ax.set_title(title or f"index α(ε), {curves[0].model} (dashed: ε_c)")
    ax.legend(fontsize=8)
    return fig


def plot_critical_energy(
    curve: CriticalEnergyCurve, *, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """``eps_c(phi)`` with the paper's empirical fits ``(1-phi)^2/2`` and ``(1-phi)/2`` (§6.4)."""
    fig, ax = figure_axes(ax)
    ax.plot(
        curve.phi,
        curve.critical_energy,
        color="C0",
        linewidth=2,
        label=f"ε_c theory ({curve.model})",
    )
    ax.plot(curve.phi, curve.fit_tanh, color="C1", linestyle="--", label="(1-φ)²/2 (tanh fit)")
    ax.plot(curve.phi, curve.fit_linear, color="C2", linestyle=":", label="(1-φ)/2 (linear nets)")
    ax.set_xlabel("φ = P / (n m)")
    ax.set_ylabel("critical energy ε_c")
    ax.set_title(title or "critical energy ε_c(φ)")
    ax.legend(fontsize=8)
    return fig
