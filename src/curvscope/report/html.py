"""A self-contained HTML page for a True-vs-Empirical result (paper 000 tables and figures).

One file, no remote resources: the figures are PNGs embedded as base64 ``data:`` URIs and the
style sheet is inline. The page only formats what the result holds; it computes nothing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curvscope.experiments import TrueVsEmpiricalResult

__all__ = ["render_html"]

_LABELS = {"empirical": "Empirical", "augmented": "Augmented (“True”)", "test": "Test set"}

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } .figs figure { margin: 0; flex: 1 1 480px; }
img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; font-size: 0.9em; } .ok { color: #060; } .bad { color: #a00; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], *, left: int = 1) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"l" if i < left else ""}">{c if isinstance(c, _Raw) else _fmt(c)}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _config_section(r: TrueVsEmpiricalResult) -> str:
    c, t = r.config, r.train_config
    rows = [
        ["model", f"{r.model.get('name')} {r.model.get('options', {})}"],
        ["data", f"{t.get('data')} (N = {r.num_train:,} train, {r.num_test:,} test)"],
        ["parameters P", r.num_params],
        ["matrix", c["matrix"] + (f" over {c['params']}" if c.get("params") else "")],
        ["frozen views K (seed)", f"{c['views']} (seed {c['seed']}): N·K = {r.num_augmented:,}"],
        ["SLQ", f"m = {c['num_steps']} Lanczos steps, {c['num_probes']} Rademacher probe(s)"],
        ["split-half noise probes", c["noise_probes"]],
        ["precision, device", f"{c['dtype']}, {r.device}"],
        [
            "training",
            f"{t.get('epochs')} epochs, SGD lr {t.get('lr')} (eq. 11 schedule, r = "
            f"{t.get('final_ratio')}), momentum {t.get('momentum')}, weight decay "
            f"{t.get('weight_decay')}, batch {t.get('batch_size')}, augmentation "
            f"{'on' if t.get('augment') else 'off'}, seed {t.get('seed')}",
        ],
        ["checkpoint", c["checkpoint"]],
        ["curvscope", r.version],
    ]
    return "<h2>Configuration</h2>" + _table(["", "value"], rows, left=2)


def _paper_tables(r: TrueVsEmpiricalResult) -> str:
    s = r.summaries
    train, test = s["empirical"], s.get("test")
    rows1 = []
    for name, v in s.items():
        rows1.append(
            [
                _LABELS[name],
                v.num_samples,
                v.smallest,
                v.largest,
                v.loss,
                v.accuracy,
            ]
        )
    part1 = (
        "<h3>Table 1 — extremal Ritz values</h3>"
        + _table(
            ["matrix over", "samples", "λ_min", "λ_max", "loss on set", "accuracy on set"], rows1
        )
        + '<p class="note">Model at these weights: train loss '
        + f"{_fmt(train.loss)}, train accuracy {_fmt(train.accuracy)}"
        + (f"; test loss {_fmt(test.loss)}, test accuracy {_fmt(test.accuracy)}." if test else ".")
        + " Extremal Ritz values are inner bounds of the spectrum (paper 000 §5).</p>"
    )
    rows2 = [
        [
            _LABELS[n],
            v.negative_count,
            v.negative_mass,
            v.negative_mass_naive,
            v.zero_cluster_mass,
        ]
        for n, v in s.items()
    ]
    part2 = (
        "<h3>Table 2 — negative spectral mass</h3>"
        + _table(
            [
                "matrix over",
                "negative Ritz count",
                "negative mass",
                "naive Σ w(θ<0)",
                "zero-cluster mass",
            ],
            rows2,
        )
        + '<p class="note">Counted: negative Ritz values well separated from the near-zero node '
        "(rule of theory.md §1.6, τ = (θ_max − θ_min)/m²), summed over probes; masses averaged "
        "over probes.</p>"
    )
    rows3 = []
    for n, v in s.items():
        cells: list[Any] = [_LABELS[n]]
        for pair in v.top_weights:
            cells.append(_Raw(f"{_fmt(pair.weight)} at θ = {_fmt(pair.node)}"))
        rows3.append(cells)
    part3 = (
        "<h3>Table 3 — the three heaviest Ritz weights (probe 0)</h3>"
        + _table(["matrix over", "1st (w at θ)", "2nd", "3rd"], rows3)
        + '<p class="note">One probe\'s own Gauss weights, as paper 000 table 3 (one probe).</p>'
    )
    return "<h2>Paper-000 tables</h2>" + part1 + part2 + part3


def _theory_section(r: TrueVsEmpiricalResult) -> str:
    th = r.theory
    obs = th.observed
    verdict = (
        '<p class="ok">Observed: both extremes of the augmented matrix are smaller in magnitude '
        "than the empirical ones (the paper's shrinkage).</p>"
        if th.shrinks
        else '<p class="bad">Observed: the augmented extremes are <b>not</b> both smaller in '
        "magnitude than the empirical ones; see the numbers below.</p>"
    )
    rows = [
        [
            "λ_min",
            obs.empirical[0],
            obs.augmented[0],
            th.observed_ratio_empirical_over_augmented[0],
        ],
        [
            "λ_max",
            obs.empirical[1],
            obs.augmented[1],
            th.observed_ratio_empirical_over_augmented[1],
        ],
    ]
    out = (
        "<h2>Theorem 1: prediction beside observation</h2>"
        + verdict
        + _table(["", "empirical", "augmented", "|emp| / |aug|"], rows)
    )
    noise_rows = []
    for name, ne in (("empirical", th.noise_empirical), ("augmented", th.noise_augmented)):
        if ne is not None:
            noise_rows.append([_LABELS[name], ne.s2, ne.s2_stderr, ne.noise_scale, ne.sigma2, ne.q])
    if noise_rows:
        out += (
            "<h3>Noise scale (split-half estimator, theory.md §1.4(a))</h3>"
            + _table(["matrix over", "s²", "stderr", "s", "σ² = s²/q", "q = P/N"], noise_rows)
            + f'<p class="note">q = P/N = {_fmt(th.q_empirical)} for the training set; nominal '
            f"q = P/(N·K) = {_fmt(th.q_augmented_nominal)} for the augmented set"
            + (
                f"; its effective sample count N·s²_emp/s²_aug = {_fmt(th.effective_num_augmented)} "
                f"(nominal N·K = {r.num_augmented:,})"
                if th.effective_num_augmented
                else ""
            )
            + ".</p>"
        )
    fwd, rev = th.forward, th.reverse
    if fwd:
        out += (
            "<h3>Forward: empirical extremes predicted from the augmented ones</h3>"
            + _table(
                [
                    "",
                    "augmented λ (as H_true)",
                    "predicted empirical",
                    "observed empirical",
                    "regime",
                ],
                [
                    [
                        "λ_min",
                        obs.augmented[0],
                        fwd.predicted_smallest,
                        fwd.observed_smallest,
                        "edge −2s (absorbed)" if fwd.smallest_from_noise else "outlier λ + s²/λ",
                    ],
                    [
                        "λ_max",
                        obs.augmented[1],
                        fwd.predicted_largest,
                        fwd.observed_largest,
                        "edge +2s (absorbed)" if fwd.largest_from_noise else "outlier λ + s²/λ",
                    ],
                ],
            )
            + f'<p class="note">λ′ = λ + s²/λ if |λ| &gt; s, else the noise edge ±2s; s = '
            f"{_fmt(fwd.noise_scale)} (theory.md §1.3, curvscope.rmt.spiked_extremes).</p>"
        )
    if rev:
        out += (
            "<h3>Reverse: true extremes implied by the empirical ones</h3>"
            + _table(
                ["", "observed empirical", "implied true", "observed augmented"],
                [
                    ["λ_min", obs.empirical[0], rev.predicted_true[0], obs.augmented[0]],
                    ["λ_max", obs.empirical[1], rev.predicted_true[1], obs.augmented[1]],
                ],
            )
            + '<p class="note">λ = (λ′ + sign(λ′)·√(λ′² − 4s²))/2 where |λ′| &gt; 2s; '
            "otherwise unresolved (–): the value is the noise edge and |λ| ≤ s "
            "(curvscope.rmt.deflated_extremes).</p>"
        )
    if not fwd and not rev:
        out += '<p class="note">No noise estimate (noise probes = 0): no prediction.</p>'
    return out


def render_html(result: TrueVsEmpiricalResult, figures: Mapping[str, Path]) -> str:
    """The report page as a string: configuration, training curves, the paper-000 tables,
    the Theorem-1 comparison and the stem plots, with every figure embedded.

    Args:
        result: the study's result (read, never recomputed).
        figures: PNG paths by name (from :func:`curvscope.report.render_figures`).
    """
    r = result
    title = (
        f"curvscope — Empirical vs augmented {r.config['matrix']} spectra: "
        f"{r.model.get('name')} on {r.train_config.get('data')}"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="note">The Empirical matrix averages over the N training samples; the '
        "augmented one over K frozen random views of each (N·K samples), paper 000's proxy for "
        "the matrix of the data distribution. Theorem 1 (paper 000; theory.md §1.3) predicts "
        "that finite N broadens the spectrum by a noise of scale s = √(P/N)·σ.</p>",
        _config_section(r),
    ]
    if "training" in figures:
        parts += [
            "<h2>Training</h2>",
            '<div class="figs">',
            _image(
                figures["training"],
                "Loss and accuracy per epoch (train: clean training set; test: held-out set).",
            ),
            "</div>",
        ]
    parts.append(_paper_tables(r))
    parts.append(_theory_section(r))
    parts += ["<h2>Spectra</h2>", '<div class="figs">']
    for name in ("empirical", "augmented", "test"):
        key = f"stem_{name}"
        if key in figures:
            parts.append(
                _image(
                    figures[key],
                    f"{_LABELS[name]}: Ritz values and pooled Gauss weights (log scale), as paper 000 figs. 1–8.",
                )
            )
    if "densities" in figures:
        parts.append(
            _image(figures["densities"], "Gaussian-smoothed SLQ densities on a common axis.")
        )
    parts.append("</div>")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    parts.append(
        f'<p class="note">Timings: {html.escape(timing)}. curvscope {html.escape(r.version)}.</p>'
    )
    parts.append("</body></html>")
    return "\n".join(parts)
