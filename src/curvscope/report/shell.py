"""One HTML shell for every registered study, and the index of a ``reproduce`` run.

:func:`write_study` writes a study's folder: ``summary.json`` (headline numbers),
``claims.json`` ("paper vs ours" rows), ``result.json`` + ``result.npz`` (the full result,
loadable with the result class's ``load``), ``config.json``, the figures (PNG, PDF on request)
and ``report.html`` — self-contained: figures embedded as ``data:`` URIs, inline style, no
remote resource. :func:`render_index` collects the claims of several studies in one table with
links to their reports. Reports format what the result holds; they compute nothing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curvscope._outputs import json_text, write_atomic
from curvscope._version import __version__
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text
from curvscope.plots.registry import figures_for

__all__ = ["STYLE", "IndexEntry", "format_value", "render_index", "render_study", "write_study"]

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } .figs figure { margin: 0; flex: 1 1 480px; }
img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; font-size: 0.9em; } caption { text-align: left; color: #555; }
.agrees { color: #060; font-weight: 600; } .disagrees { color: #a00; font-weight: 600; }
.partly { color: #a60; font-weight: 600; } .not-comparable { color: #555; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""

_VERDICT_CLASS = {
    "agrees": "agrees",
    "partly": "partly",
    "disagrees": "disagrees",
    "not comparable": "not-comparable",
}


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: ``None``/NaN as –, ints with thousands separators, floats to 4 figures."""
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


def _table(table: Table) -> str:
    def cell(i: int, value: Any, tag: str) -> str:
        cls = ' class="l"' if i < table.left else ""
        return f"<{tag}{cls}>{value}</{tag}>"

    head = "".join(cell(i, html.escape(h), "th") for i, h in enumerate(table.header))
    body = "".join(
        "<tr>" + "".join(cell(i, format_value(c), "td") for i, c in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def claims_table(claims: Sequence[Claim], *, studies: Sequence[str] | None = None) -> str:
    """The "paper vs ours" table; with ``studies`` (one name per claim) a study column leads."""
    head = (["study"] if studies is not None else []) + [
        "claim",
        "paper",
        "ours",
        "verdict",
        "how decided",
    ]
    rows = []
    for i, claim in enumerate(claims):
        cells = [html.escape(studies[i])] if studies is not None else []
        cells += [html.escape(claim.claim), html.escape(claim.paper), html.escape(claim.ours)]
        verdict = claim.verdict
        cells.append(f'<span class="{_VERDICT_CLASS[verdict]}">{html.escape(verdict)}</span>')
        cells.append(f'<span class="note">{html.escape(claim.note)}</span>')
        rows.append("<tr>" + "".join(f'<td class="l">{c}</td>' for c in cells) + "</tr>")
    header = "".join(f'<th class="l">{h}</th>' for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _blocks(section: Section, figures: dict[str, Path]) -> str:
    parts: list[str] = []
    pending: list[str] = []  # consecutive figures share one flex row
    for block in section.blocks:
        if isinstance(block, FigureRef):
            if block.name in figures:
                pending.append(_image(figures[block.name], block.caption))
            continue
        if pending:
            parts.append(f'<div class="figs">{"".join(pending)}</div>')
            pending = []
        if isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Text):
            cls = ' class="note"' if block.note else ""
            parts.append(f"<p{cls}>{html.escape(block.text)}</p>")
    if pending:
        parts.append(f'<div class="figs">{"".join(pending)}</div>')
    return f"<h2>{html.escape(section.title)}</h2>" + "".join(parts)


def _config_rows(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            rows += _config_rows(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value if not isinstance(value, list) else str(value)))
    return rows


def render_study(
    study: Study,
    config: dict[str, Any],
    sections: Sequence[Section],
    claims: Sequence[Claim],
    figures: dict[str, Path],
) -> str:
    """The self-contained ``report.html`` of one study run."""
    config_table = Table(("setting", "value"), tuple(_config_rows(config)), left=2)
    body = (
        f"<h1>{html.escape(study.title)}</h1>"
        f'<p class="note">Study <code>{html.escape(study.name)}</code> (paper '
        f"{html.escape(study.paper)}): {html.escape(study.description)} — curvscope "
        f"{__version__}.</p>"
        "<h2>Paper vs ours</h2>"
        + (
            claims_table(claims)
            if claims
            else '<p class="note">This study tests no claim of the paper directly.</p>'
        )
        + "".join(_blocks(s, figures) for s in sections)
        + "<h2>Configuration</h2>"
        + _table(config_table)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(study.title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_study(
    study: Study, config: Any, result: Any, out: str | Path, *, pdf: bool = False
) -> dict[str, Path]:
    """Write every output of one study run into ``out``; returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if isinstance(config, dict):
        config_dict = config
    else:
        config_dict = config.to_dict() if hasattr(config, "to_dict") else asdict(config)
    claims = list(study.claims(result))
    paths["summary"] = write_atomic(out / "summary.json", json_text(study.headline(result)))
    paths["claims"] = write_atomic(out / "claims.json", json_text([asdict(c) for c in claims]))
    paths["config"] = write_atomic(out / "config.json", json_text(config_dict))
    stem = result.save(out / "result")
    paths["result_json"], paths["result_npz"] = stem.with_suffix(".json"), stem.with_suffix(".npz")
    figures: dict[str, Path] = {}
    for name, fig in figures_for(study.name, result).items():
        figures[name] = out / f"{name}.png"
        fig.savefig(figures[name], dpi=110)
        if pdf:
            fig.savefig(out / f"{name}.pdf")
    paths.update({f"figure_{k}": v for k, v in figures.items()})
    page = render_study(study, config_dict, study.sections(result), claims, figures)
    paths["report"] = write_atomic(out / "report.html", page)
    return paths


@dataclass(frozen=True)
class IndexEntry:
    """One study of a ``reproduce`` run: where its report is and what it found."""

    study: Study
    folder: str  # relative to the index
    claims: tuple[Claim, ...]
    seconds: float


def render_index(entries: Sequence[IndexEntry], *, preset: str) -> str:
    """``index.html``: each study's report linked, every "paper vs ours" row in one table."""
    rows = "".join(
        "<tr>"
        f'<td class="l"><a href="{html.escape(e.folder)}/report.html">'
        f"{html.escape(e.study.name)}</a></td>"
        f'<td class="l">{html.escape(e.study.paper)}</td>'
        f'<td class="l">{html.escape(e.study.description)}</td>'
        f"<td>{len(e.claims)}</td>"
        f"<td>{sum(c.verdict == 'agrees' for c in e.claims)}</td>"
        f"<td>{e.seconds:.1f}</td></tr>"
        for e in entries
    )
    studies = (
        '<table><thead><tr><th class="l">study</th><th class="l">paper</th>'
        '<th class="l">what</th><th>claims</th><th>agree</th><th>seconds</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    every = [(e.study.name, c) for e in entries for c in e.claims]
    claim_table = (
        claims_table([c for _, c in every], studies=[n for n, _ in every])
        if every
        else '<p class="note">No study tested a claim.</p>'
    )
    body = (
        "<h1>curvscope reproduce</h1>"
        f'<p class="note">Preset <code>{html.escape(preset)}</code>, curvscope {__version__}. '
        "Every verdict is measured, never tuned: a disagreement is a result.</p>"
        "<h2>Studies</h2>" + studies + "<h2>Paper vs ours, every study</h2>" + claim_table
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>curvscope reproduce</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
