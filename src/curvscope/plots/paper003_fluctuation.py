"""Figure of the paper-003 study ``small-nets-init-fluctuation``: the histogram of λ_max over
initialisations (paper fig. 8)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["fluctuation_figures"]


def _histogram(result: Any) -> Figure:
    lam = np.asarray(result.lambda_max)
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(lam, bins=int(result.config.get("bins", 50)), color="C0")
    ax.axvline(float(lam.mean()), color="k", lw=1, label=f"mean {lam.mean():.3g}")
    ax.axvspan(float(lam.mean() - lam.std()), float(lam.mean() + lam.std()), color="k",
               alpha=0.1, label=f"± std {lam.std():.2g}")  # fmt: skip
    ax.set_xlabel("λ_max after training")
    ax.set_ylabel("members")
    ax.set_title(f"P = {result.num_params}, {len(lam)} initialisations", fontsize=9)
    ax.legend(fontsize=8)
    return fig


@register_figures("small-nets-init-fluctuation")
def fluctuation_figures(result: Any) -> dict[str, Figure]:
    """The study's figures by name."""
    return {"histogram": _histogram(result)} if len(result.lambda_max) else {}
