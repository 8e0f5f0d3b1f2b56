"""curvscope.report: the files of a study — summary, arrays, figures and one HTML page.

One HTML shell renders every registered study (:mod:`curvscope.report.shell`): the study
supplies its sections and claims (``experiments``) and its figures (``plots``).
:func:`write_outputs` is that shell for the paper-000 study as ``curvscope spectrum`` and
``curvscope run`` use it: ``summary.json``, ``claims.json``, ``config.json``, ``result.json`` +
``result.npz`` (``TrueVsEmpiricalResult.load``), ``spectra.npz`` (Ritz nodes and weights per
set), the PNG figures (PDF on request) and a self-contained ``report.html``. Reports read
results; they never recompute them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from curvscope._outputs import write_atomic
from curvscope.experiments import TrueVsEmpiricalResult, get_study
from curvscope.plots.true_vs_empirical import FIGURE_NAMES
from curvscope.report.shell import render_index, render_study, write_study

__all__ = ["FIGURE_NAMES", "render_index", "render_study", "write_outputs", "write_study"]


def write_outputs(
    result: TrueVsEmpiricalResult, out: str | Path, *, pdf: bool = False
) -> dict[str, Path]:
    """Write every output of a True-vs-Empirical result into ``out``; returns the paths by name."""
    out = Path(out)
    config = {"spectra": dict(result.config), "training": dict(result.train_config)}
    paths = write_study(get_study("true-vs-empirical"), config, result, out, pdf=pdf)
    arrays = {}
    for name, density in result.spectra.items():
        arrays[f"{name}_nodes"] = density.nodes
        arrays[f"{name}_weights"] = density.weights
        arrays[f"{name}_probe_index"] = density.probe_index
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    paths["spectra"] = write_atomic(out / "spectra.npz", buffer.getvalue())
    return paths
