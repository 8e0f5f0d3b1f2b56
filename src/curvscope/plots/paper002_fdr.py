"""Figure of ``noise-fdr``: |O_L/O_R − 1| per epoch in the full parameter space and in the
top-1 Hessian eigenspace, with the stationarity threshold (paper 002 fig. 6)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["fdr_figures"]


@register_figures("noise-fdr")
def fdr_figures(result: Any) -> dict[str, Figure]:
    """Log-scale |O_L/O_R − 1| against epoch, both spaces, with ± SE bands."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    epochs = np.arange(len(result.ratio_full))
    for ratio, se, label, colour in (
        (result.ratio_full, result.ratio_full_stderr, "raw parameters", "C0"),
        (result.ratio_top, result.ratio_top_stderr, "top-1 eigenspace", "C1"),
    ):
        dev = np.abs(ratio - 1)
        ax.errorbar(
            epochs,
            np.maximum(dev, 1e-6),
            yerr=np.nan_to_num(se),
            fmt="o-",
            color=colour,
            capsize=2,
            ms=3,
            label=label,
        )
    ax.axhline(result.config["threshold"], color="0.5", ls="--", lw=0.8, label="threshold")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("|O_L/O_R − 1|")
    ax.legend(fontsize=8)
    return {"fdr": fig}
