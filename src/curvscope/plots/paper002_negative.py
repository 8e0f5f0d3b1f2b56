"""Figure of ``noise-negative-eigenvalues``: the sum of negative Hessian eigenvalues against the
excess loss L − L*, by learning rate and batch size, with the fitted line (paper 002 fig. 2a)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["negative_figures"]


@register_figures("noise-negative-eigenvalues")
def negative_figures(result: Any) -> dict[str, Figure]:
    """Scatter of (L − L*, Σ negative λ), marker by S, colour by η; the GD minimum; the line."""
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    ax, zoom = fig.subplots(1, 2)
    lrs = sorted({p.lr for p in result.points})
    sizes = sorted({p.batch_size for p in result.points})
    markers = "osD^v<>ph*"
    for i, lr in enumerate(lrs):
        for j, s in enumerate(sizes):
            pts = [p for p in result.points if p.lr == lr and p.batch_size == s]
            if pts:
                ax.scatter(
                    [p.excess for p in pts],
                    [p.negative_sum for p in pts],
                    color=f"C{i}",
                    marker=markers[j % len(markers)],
                    s=22,
                    label=f"η={lr:g}, S={s}",
                )
    m = result.minimum
    ax.scatter([m.excess], [m.negative_sum], color="k", marker="*", s=80, label="GD minimum")
    f = result.fit_excess
    xs = np.array([0.0, max([p.excess for p in result.points] + [m.excess])])
    ax.plot(
        xs,
        f.slope * xs + f.intercept,
        "r-",
        label=f"y = {f.slope:.3g}x + {f.intercept:.2g} (±{f.intercept_stderr:.1g})",
    )
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set_xlabel("L − L*")
    ax.set_ylabel("sum of negative eigenvalues")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title("with the fitted line to the origin", fontsize=9)
    for i, lr in enumerate(lrs):
        pts = [p for p in result.points if p.lr == lr]
        zoom.scatter([p.excess for p in pts], [p.negative_sum for p in pts], color=f"C{i}", s=14)
    zoom.scatter([m.excess], [m.negative_sum], color="k", marker="*", s=60)
    xs = np.array([min(p.excess for p in result.points), max(p.excess for p in result.points)])
    zoom.plot(xs, f.slope * xs + f.intercept, "r-")
    zoom.set_xlabel("L − L*")
    zoom.set_title("the snapshots (zoom)", fontsize=9)
    return {"negative": fig}
