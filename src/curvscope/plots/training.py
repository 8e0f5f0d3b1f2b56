"""Training curves from a checkpoint's history: loss and accuracy per epoch, train and test.

The history is the list of per-epoch records that :func:`curvscope.training.train` keeps
(``epoch``, ``train_loss``, ``test_loss``, ``train_accuracy``, ``test_accuracy``, ``lr``).
Functions take ``ax=None`` and return the figure; nothing is recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from curvscope.errors import InputError
from curvscope.plots._axes import figure_axes

__all__ = ["plot_training_curves"]


def plot_training_curves(
    history: Sequence[dict[str, Any]],
    *,
    metric: Literal["loss", "accuracy", "both"] = "both",
    ax: Axes | None = None,
    log_loss: bool = True,
) -> Figure:
    """Train and test loss and/or accuracy against the epoch.

    Args:
        history: per-epoch records with ``epoch`` and ``train_<metric>``/``test_<metric>``.
        metric: ``"loss"``, ``"accuracy"`` or ``"both"`` (loss on ``ax``, accuracy on a twin axis).
        ax: axes to draw on (default: a new figure).
        log_loss: log-scale loss axis.
    """
    if metric not in ("loss", "accuracy", "both"):
        raise InputError(f"metric must be 'loss', 'accuracy' or 'both', got {metric!r}")
    if not history:
        raise InputError("the training history is empty: nothing to plot (train at least 1 epoch)")
    missing = {"epoch", "train_loss"} - set(history[0])
    if missing:
        raise InputError(
            f"history records need the keys epoch, train_loss (and test_loss, *_accuracy); "
            f"missing {sorted(missing)}"
        )
    fig, ax = figure_axes(ax, figsize=(6.0, 3.6))
    epochs = [h["epoch"] for h in history]

    def series(key: str) -> list[float] | None:
        values = [h.get(key) for h in history]
        if any(v is None for v in values) or all(math.isnan(v) for v in values):
            return None
        return values

    loss_ax = ax if metric in ("loss", "both") else None
    acc_ax = ax if metric == "accuracy" else (ax.twinx() if metric == "both" else None)
    handles = []
    if loss_ax is not None:
        for key, style in (("train_loss", "-"), ("test_loss", "--")):
            values = series(key)
            if values is not None:
                handles += loss_ax.plot(
                    epochs, values, style, color="C0", label=key.replace("_", " ")
                )
        if log_loss:
            loss_ax.set_yscale("log")
        loss_ax.set_ylabel("loss", color="C0")
    if acc_ax is not None:
        for key, style in (("train_accuracy", "-"), ("test_accuracy", "--")):
            values = series(key)
            if values is not None:
                handles += acc_ax.plot(
                    epochs, values, style, color="C2", label=key.replace("_", " ")
                )
        acc_ax.set_ylabel("accuracy", color="C2")
    ax.set_xlabel("epoch")
    if handles:
        ax.legend(handles=handles, loc="center right", fontsize=8)
    return fig
