"""Figure of ``noise-alignment``: CS(H, C) and the PSD baseline CS0 along training, exact and
estimated ± SE, per loss, with the training loss (paper 002 fig. 5)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from curvscope.plots.registry import register_figures

__all__ = ["alignment_figures"]


@register_figures("noise-alignment")
def alignment_figures(result: Any) -> dict[str, Figure]:
    """One panel per loss: CS and CS0 (left axis), training loss (right axis)."""
    runs = result.runs
    fig = Figure(figsize=(4.8 * len(runs), 3.6), layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, run in zip(axes, runs, strict=True):
        epochs = np.array([p.epoch for p in run.points])
        exact = [p.exact for p in run.points]
        est = [p.estimate for p in run.points]
        if all(e is not None for e in exact):
            ax.plot(epochs, [e.cs for e in exact], "o-", color="C0", label="CS exact")
            ax.plot(epochs, [e.cs0 for e in exact], "s-", color="C1", label="CS0 exact")
        if all(e is not None for e in est):
            ax.errorbar(
                epochs + 0.1,
                [e.cs for e in est],
                yerr=[e.cs_stderr for e in est],
                fmt="x",
                color="C2",
                capsize=3,
                label="CS est. ± SE",
            )
            ax.errorbar(
                epochs + 0.1,
                [e.cs0 for e in est],
                yerr=[e.cs0_stderr for e in est],
                fmt="+",
                color="C3",
                capsize=3,
                label="CS0 est. ± SE",
            )
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cosine similarity")
        ax.set_title(f"{run.loss} (lr {run.lr:g})", fontsize=9)
        twin = ax.twinx()
        twin.plot(epochs, [p.loss for p in run.points], ":", color="0.4", label="train loss")
        twin.set_ylabel("train loss")
        ax.legend(fontsize=7, loc="center right")
    return {"alignment": fig}
