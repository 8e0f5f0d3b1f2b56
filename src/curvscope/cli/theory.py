"""``curvscope theory``: the Pennington-Bahri predictions as PNG figures and JSON numbers.

Presentation only: it builds laws and curves with :mod:`curvscope.rmt`, draws them with
:mod:`curvscope.plots.theory` and writes the files; every number comes from the rmt layer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import numpy as np

from curvscope._outputs import OutputFolder, json_text
from curvscope.cli._main import main
from curvscope.cli._options import seed_option
from curvscope.rmt import (
    MODELS,
    critical_energy,
    critical_energy_curve,
    index_curve,
    pennington_bahri,
    sample_spectrum,
)
from curvscope.rmt.pennington_bahri import CHECKED_MAX, CHECKED_MIN

# The range over which the closed forms and the figures are checked to work (far beyond the
# paper's phi <= 1 and eps <= 0.5); values outside it are refused up front with the range.
_PHI_MIN, _LIMIT = CHECKED_MIN, CHECKED_MAX


def _in_range(value: float, flag: str, *, low: float, low_open: bool = False) -> float:
    inside = math.isfinite(value) and (value > low if low_open else value >= low)
    if not inside or value > _LIMIT:
        interval = f"{'(' if low_open else '['}{low:g}, {_LIMIT:g}]"
        what = "energies must be >= 0 and finite: " if flag == "--eps" else ""
        raise click.BadParameter(
            f"{what}expected a finite number in {interval}, got {value:g}; e.g. {flag} 0.5",
            param_hint=flag,
        )
    return value


def _float_list(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    flag = param.opts[0]
    try:
        out = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers, e.g. 0.25,0.5; got {value!r}"
        ) from None
    if not out:
        raise click.BadParameter(
            f"expected at least one number, e.g. {flag} 0.25,0.5; got {value!r}"
        )
    low, low_open = (0.0, False) if flag == "--eps" else (_PHI_MIN, False)
    return [_in_range(v, flag, low=low, low_open=low_open) for v in out]


def _phi(ctx: click.Context, param: click.Parameter, value: float) -> float:
    return _in_range(value, param.opts[0], low=_PHI_MIN)


def _positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    return _in_range(value, param.opts[0], low=0.0, low_open=True)


@main.command()
@click.option(
    "--phi",
    type=float,
    default=0.5,
    show_default=True,
    callback=_phi,
    help="Ratio phi = P/(n m) of the density panel, in [1e-6, 1e6].",
)
@click.option(
    "--eps",
    "eps_values",
    default="0.0,0.05,0.1,0.3",
    show_default=True,
    callback=_float_list,
    help="Comma-separated energies eps of the density panel (001 figure 1).",
)
@click.option(
    "--model",
    type=click.Choice(MODELS),
    default="wishart+wigner",
    show_default=True,
    help="Eq. 18 (Wishart + Wigner) or eq. 29-30 (improved, product-Wishart H1).",
)
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    callback=_phi,
    help="MP scale s of H0 (its mean eigenvalue; the paper's sigma), in [1e-6, 1e6].",
)
@click.option(
    "--index-phis",
    "index_phis",
    default="0.25,0.5,0.75",
    show_default=True,
    callback=_float_list,
    help="Comma-separated phi values of the index curves alpha(eps).",
)
@click.option(
    "--eps-max",
    type=float,
    default=0.5,
    show_default=True,
    callback=_positive,
    help="Largest energy of the index curves, in (0, 1e6].",
)
@click.option(
    "--num-eps",
    type=click.IntRange(min=2, max=10_000),
    default=40,
    show_default=True,
    help="Energies per index curve.",
)
@click.option(
    "--sample-size",
    type=click.IntRange(min=0, max=4000),
    default=0,
    show_default=True,
    help="If > 0, also draw an n x n matrix of the model at the largest eps and overlay its "
    "eigenvalues (sample.png); at most 4000 (a dense eigendecomposition).",
)
@seed_option("Seed of the sampled matrix.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the PNG files (created if missing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON instead of text.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing --out folder (written whole at the end).",
)
def theory(
    phi: float,
    eps_values: list[float],
    model: str,
    scale: float,
    index_phis: list[float],
    eps_max: float,
    num_eps: int,
    sample_size: int,
    seed: int,
    out_dir: Path,
    as_json: bool,
    force: bool,
) -> None:
    """Draw the paper-001 Hessian densities, index curves and eps_c(phi) to PNG files.

    The folder is written whole at the end (an existing --out is replaced only with --force).
    """
    if model == "improved" and max([phi, *index_phis]) > 2.06:
        raise click.BadParameter(
            f"the improved model's eps_c (eq. 32) needs phi <= 2.06, got "
            f"{max([phi, *index_phis]):g}; pass smaller values or --model wishart+wigner",
            param_hint="--phi/--index-phis",
        )
    if sample_size == 1:
        raise click.BadParameter(
            "expected 0 (no sampled matrix) or a matrix size in [2, 4000], got 1; e.g. "
            "--sample-size 400",
            param_hint="--sample-size",
        )
    args = (phi, eps_values, model, scale, index_phis, eps_max, num_eps, sample_size, seed)
    names = ("phi", "eps", "model", "scale", "index_phis", "eps_max", "num_eps", "sample", "seed")
    settings = {"command": "theory", **dict(zip(names, args))}
    with OutputFolder(out_dir, settings=settings, force=force) as folder:
        report = _draw(
            folder.staging,
            phi,
            eps_values,
            model,
            scale,
            index_phis,
            eps_max,
            num_eps,
            sample_size,
            seed,
        )
        folder.commit()
    report["files"] = {name: str(out_dir / f"{name}.png") for name in report.pop("names")}
    _print(report, as_json)


def _draw(
    staging: Path,
    phi: float,
    eps_values: list[float],
    model: str,
    scale: float,
    index_phis: list[float],
    eps_max: float,
    num_eps: int,
    sample_size: int,
    seed: int,
) -> dict[str, Any]:
    """Draw every figure into ``staging``; the numbers, with the figure names under "names"."""
    from curvscope.plots.theory import (
        plot_critical_energy,
        plot_densities,
        plot_density,
        plot_index_curves,
    )

    out_dir = staging
    files: dict[str, str] = {}
    laws = [pennington_bahri(e, phi, model=model, scale=scale) for e in eps_values]
    fig = plot_densities(
        laws,
        labels=[f"ε = {e:g}" for e in eps_values],
        title=f"Hessian density, φ = {phi:g} ({model})",
    )
    files["densities"] = str(out_dir / "densities.png")
    fig.savefig(files["densities"], dpi=120)

    # quadratic spacing: the index changes fastest just above eps_c, which is small
    eps_grid = eps_max * np.linspace(0.0, 1.0, num_eps) ** 2
    curves = [index_curve(p, eps_grid, model=model, scale=scale) for p in index_phis]
    files["index"] = str(out_dir / "index.png")
    plot_index_curves(curves).savefig(files["index"], dpi=120)

    ec_curve = critical_energy_curve(np.linspace(0.01, 0.999, 200), model=model, scale=scale)
    files["critical_energy"] = str(out_dir / "critical_energy.png")
    plot_critical_energy(ec_curve).savefig(files["critical_energy"], dpi=120)

    report: dict = {
        "phi": phi,
        "model": model,
        "scale": scale,
        "critical_energy": critical_energy(phi, model=model, scale=scale),
        "densities": [
            {
                "eps": law.eps,
                "index": law.index,
                "support": [list(iv) for iv in law.intervals],
                "atoms": [list(a) for a in law.atoms],
            }
            for law in laws
        ],
        "index_curves": [
            {
                "phi": c.phi,
                "critical_energy": c.critical_energy,
                "eps": c.eps.tolist(),
                "alpha": c.alpha.tolist(),
            }
            for c in curves
        ],
    }
    if sample_size > 0:
        law = laws[int(np.argmax(eps_values))]
        sample = sample_spectrum(law, sample_size, seed=seed)
        files["sample"] = str(out_dir / "sample.png")
        plot_density(
            law,
            sample.eigenvalues,
            label=f"theory ε = {law.eps:g}",
            title=f"sampled n = {sample.size} vs theory, φ = {phi:g}",
        ).savefig(files["sample"], dpi=120)
        report["sample"] = {
            "size": sample.size,
            "seed": seed,
            "eps": law.eps,
            "index_sampled": sample.index,
            "index_theory": law.index,
        }
    report["names"] = list(files)
    return report


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json_text(report))
        return
    phi, model, scale = report["phi"], report["model"], report["scale"]
    files = report["files"]
    click.echo(f"model {model}, scale {scale:g}, phi {phi:g}: eps_c = {report['critical_energy']}")
    for d in report["densities"]:
        click.echo(f"  eps = {d['eps']:<8g} index alpha = {d['index']:.6f}")
    if "sample" in report:
        s = report["sample"]
        click.echo(
            f"  sampled n = {s['size']}: alpha = {s['index_sampled']:.4f} (theory {s['index_theory']:.4f})"
        )
    for name, path in files.items():
        click.echo(f"wrote {name}: {path}")
