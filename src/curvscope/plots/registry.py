"""Figures of registered studies: each study's figure builder, registered under its name.

A builder takes a study's result and returns its figures by name (``{"densities": Figure}``);
the report shell (:mod:`curvscope.report.shell`) saves them and places them where the study's
sections reference them (:class:`~curvscope.experiments.registry.FigureRef`). Plots read
results; they never compute spectra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from curvscope.errors import InputError

__all__ = ["FIGURE_BUILDERS", "figures_for", "register_figures"]

FigureBuilder = Callable[[Any], dict[str, Figure]]

#: Study name -> builder of its figures.
FIGURE_BUILDERS: dict[str, FigureBuilder] = {}


def register_figures(study: str) -> Callable[[FigureBuilder], FigureBuilder]:
    """Decorator: register ``builder(result) -> {name: Figure}`` as the figures of ``study``."""

    def decorate(builder: FigureBuilder) -> FigureBuilder:
        FIGURE_BUILDERS[study] = builder
        return builder

    return decorate


def figures_for(study: str, result: Any) -> dict[str, Figure]:
    """The figures of ``result`` of ``study`` (none when the study registered no builder)."""
    builder = FIGURE_BUILDERS.get(study)
    if builder is None:
        return {}
    figures = builder(result)
    if not all(isinstance(f, Figure) for f in figures.values()):
        raise InputError(f"the figure builder of {study!r} must return matplotlib Figures")
    return figures
