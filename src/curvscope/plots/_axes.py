"""The one "``ax=None`` -> a new figure" rule of every plot function."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["figure_axes"]


def figure_axes(
    ax: Axes | None, *, figsize: tuple[float, float] = (6.0, 4.0)
) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or, for ``None``, a new :class:`~matplotlib.figure.Figure` of
    ``figsize`` inches with one axes. The figure is made without pyplot, so plotting works
    headless, never changes the matplotlib backend and leaves no figure open in pyplot.

    Example:
        >>> fig, ax = figure_axes(None)
        >>> figure_axes(ax)[0] is fig
        True
    """
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return ax.figure, ax  # type: ignore[return-value]
