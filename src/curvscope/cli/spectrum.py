"""``curvscope spectrum CHECKPOINT``: Empirical vs augmented ("True") spectra at fixed weights.

Presentation only: it parses options, calls :func:`curvscope.experiments.true_vs_empirical`
and writes the outputs with :func:`curvscope.report.write_outputs`. The shared options and the
output/echo helpers here are also used by ``curvscope run``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import torch

from curvscope.cli._main import main
from curvscope.cli._options import (
    check_device_flag,
    device_option,
    dtype_option,
    seed_option,
    threads_option,
)
from curvscope.errors import CurvscopeError
from curvscope.experiments import MATRICES, TrueVsEmpiricalConfig, TrueVsEmpiricalResult

_LABELS = {"empirical": "empirical", "augmented": "augmented", "test": "test"}


def spectrum_options(
    *, threads_default: int | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of the spectral study shared by ``spectrum`` and ``run``."""
    threads_help = (
        "CPU threads for torch [default: torch's choice]"
        if threads_default is None
        else f"CPU threads for torch [default: {threads_default}]"
    ) + "; small models are fastest with 1, especially on busy cores."
    options = [
        click.option(
            "--matrix",
            type=click.Choice(list(MATRICES)),
            default="hessian",
            show_default=True,
            help="Curvature matrix: hessian (paper 000), ggn, fisher (exact) or covariance "
            "(per-sample gradient covariance, the SGD noise).",
        ),
        click.option(
            "--views",
            type=click.IntRange(min=1),
            default=9,
            show_default=True,
            help="K frozen augmentation views per training sample (the augmented set has N*K).",
        ),
        click.option(
            "--steps",
            type=click.IntRange(min=1),
            default=80,
            show_default=True,
            help="Lanczos steps m per SLQ run (paper 000: 80-100).",
        ),
        click.option(
            "--probes",
            type=click.IntRange(min=1),
            default=3,
            show_default=True,
            help="SLQ probes per set (paper 000 uses 1).",
        ),
        click.option(
            "--noise-probes",
            type=click.IntRange(min=0),
            default=8,
            show_default=True,
            help="Rademacher probes of the split-half noise estimate of Theorem 1 (0 skips "
            "it, and with it the prediction; 1 is not allowed).",
        ),
        click.option(
            "--params",
            default=None,
            help="Only the parameters matching this glob pattern, e.g. 'net.2.*' (default: all).",
        ),
        click.option(
            "--curvature-batch-size",
            "curvature_batch_size",
            type=click.IntRange(min=1),
            default=2048,
            show_default=True,
            help="Batch size of the curvature data passes.",
        ),
        click.option("--pdf", is_flag=True, help="Also write every figure as PDF."),
        threads_option(threads_default, threads_help),
        device_option,
        dtype_option("Precision of the curvature products."),
        click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout."),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch CPU threads, restoring the previous number afterwards."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def report_result(
    result: TrueVsEmpiricalResult, out: Path, *, pdf: bool, as_json: bool
) -> dict[str, Path]:
    """Write the outputs and print either the JSON summary or a short human summary."""
    from curvscope.report import write_outputs

    paths = write_outputs(result, out, pdf=pdf)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=1))
        return paths
    click.echo(
        f"{result.config['matrix']} of {result.model.get('name')} (P = {result.num_params:,}) on "
        f"{result.train_config.get('data')}: N = {result.num_train:,}, K = "
        f"{result.config['views']} views (N*K = {result.num_augmented:,})"
    )
    for name, s in result.summaries.items():
        click.echo(
            f"  {_LABELS[name]:>9}: extremes [{s['smallest']:.4g}, {s['largest']:.4g}], "
            f"negative mass {s['negative_mass']:.3g} ({s['negative_count']} Ritz values), "
            f"loss {s['loss']:.4g}, accuracy {s['accuracy']:.4g}"
        )
    th = result.theory
    fwd = th.get("forward")
    if fwd:
        click.echo(
            f"  Theorem 1 (s = {fwd['noise_scale']:.3g}, q = P/N = {th['q_empirical']:.3g}): "
            f"from the augmented extremes predicts empirical [{fwd['predicted_smallest']:.4g}, "
            f"{fwd['predicted_largest']:.4g}], observed [{fwd['observed_smallest']:.4g}, "
            f"{fwd['observed_largest']:.4g}]"
        )
    click.echo(
        "  augmented extremes "
        + ("smaller" if th["shrinks"] else "NOT both smaller")
        + " in magnitude than the empirical ones"
    )
    click.echo(f"report: {paths['report']}")
    return paths


def check_device(device: str) -> None:
    """A clear usage error for a device string torch does not know or cannot use."""
    check_device_flag(device)


def run_study(config: TrueVsEmpiricalConfig) -> TrueVsEmpiricalResult:
    """Run the study, turning curvscope's own errors into clean CLI errors."""
    from curvscope.experiments import true_vs_empirical

    try:
        return true_vs_empirical(config, progress=True)
    except CurvscopeError as exc:
        raise click.ClickException(str(exc)) from None


@main.command(name="spectrum")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@spectrum_options()
@click.option(
    "--compare",
    type=click.Choice(["test", "none"]),
    default="test",
    show_default=True,
    help="Also compute the spectrum over the test set ('none' skips it).",
)
@click.option(
    "--model",
    "expected_model",
    default=None,
    help="Refuse a checkpoint that does not hold this model (e.g. mlp, preresnet110).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Override the checkpoint's data folder (CIFAR moved elsewhere).",
)
@seed_option("Fixes the frozen views, the SLQ probes and the noise-estimate split.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder [default: spectrum/ next to the checkpoint].",
)
def spectrum_command(
    checkpoint: Path,
    matrix: str,
    views: int,
    steps: int,
    probes: int,
    noise_probes: int,
    params: str | None,
    curvature_batch_size: int,
    pdf: bool,
    threads: int | None,
    device: str,
    dtype: str,
    as_json: bool,
    compare: str,
    expected_model: str | None,
    data_dir: Path | None,
    seed: int,
    out: Path | None,
) -> None:
    """SLQ spectra of a checkpoint's model at its weights: over the training set (Empirical,
    N samples), over K frozen augmented views of it (the paper-000 proxy of the True matrix,
    N*K samples) and over the test set; with the paper-000 tables and Theorem 1's prediction
    of the broadening from the estimated noise scale s = sqrt(P/N) sigma.

    \b
    Writes into --out: summary.json, result.json/.npz, spectra.npz, PNG figures, report.html.
    Examples:
      curvscope spectrum runs/train/checkpoint.pt
      curvscope spectrum ckpt.pt --matrix ggn --views 30 --steps 100 --probes 1
      curvscope spectrum ckpt.pt --params 'net.2.*' --compare none --json
    """
    check_device(device)
    if noise_probes == 1:
        raise click.BadParameter(
            "1 probe gives no standard error; use 0 (skip) or >= 2", param_hint="--noise-probes"
        )
    try:
        config = TrueVsEmpiricalConfig(
            checkpoint=str(checkpoint),
            matrix=matrix,  # type: ignore[arg-type]
            views=views,
            num_steps=steps,
            num_probes=probes,
            noise_probes=noise_probes,
            compare_test=compare == "test",
            params=params,
            model=expected_model,
            data_dir=None if data_dir is None else str(data_dir),
            batch_size=curvature_batch_size,
            seed=seed,
            device=device,
            dtype=dtype,  # type: ignore[arg-type]
        )
    except CurvscopeError as exc:
        raise click.ClickException(str(exc)) from None
    out = out if out is not None else checkpoint.parent / "spectrum"
    with torch_threads(threads):
        result = run_study(config)
        report_result(result, out, pdf=pdf, as_json=as_json)
