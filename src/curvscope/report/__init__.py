"""curvscope.report: the files of a study — summary, arrays, figures and one HTML page.

:func:`write_outputs` writes, for a :class:`~curvscope.experiments.TrueVsEmpiricalResult`,
``summary.json`` (headline numbers), ``result.json`` + ``result.npz`` (the full result, loadable
with ``TrueVsEmpiricalResult.load``), ``spectra.npz`` (Ritz nodes and weights per set), the PNG
figures (PDF on request) and ``report.html``, self-contained. Reports read results; they never
recompute them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curvscope._outputs import json_text
from curvscope.experiments import TrueVsEmpiricalResult
from curvscope.report.figures import FIGURE_NAMES, build_figures, render_figures
from curvscope.report.html import render_html

__all__ = ["FIGURE_NAMES", "build_figures", "render_figures", "render_html", "write_outputs"]


def write_outputs(
    result: TrueVsEmpiricalResult, out: str | Path, *, pdf: bool = False
) -> dict[str, Path]:
    """Write every output of a True-vs-Empirical study into ``out``; returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    summary = out / "summary.json"
    summary.write_text(json_text(result.summary()))  # strict JSON: NaN/inf -> null
    paths["summary"] = summary
    stem = result.save(out / "result")
    paths["result_json"], paths["result_npz"] = stem.with_suffix(".json"), stem.with_suffix(".npz")
    arrays = {}
    for name, density in result.spectra.items():
        arrays[f"{name}_nodes"] = density.nodes
        arrays[f"{name}_weights"] = density.weights
        arrays[f"{name}_probe_index"] = density.probe_index
    np.savez(out / "spectra.npz", **arrays)
    paths["spectra"] = out / "spectra.npz"
    figures = render_figures(result, out, pdf=pdf)
    paths.update({f"figure_{k}": v for k, v in figures.items()})
    report = out / "report.html"
    report.write_text(render_html(result, figures), encoding="utf-8")
    paths["report"] = report
    return paths
