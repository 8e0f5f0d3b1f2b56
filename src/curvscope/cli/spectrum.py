"""``curvscope spectrum CHECKPOINT``: Empirical vs augmented ("True") spectra at fixed weights.

Presentation only: it parses options, calls :func:`curvscope.experiments.true_vs_empirical`
and writes the outputs with :func:`curvscope.report.write_outputs`. The shared options and the
output/echo helpers here are also used by ``curvscope run``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from curvscope._distributed import is_distributed
from curvscope._outputs import OutputFolder, file_digest, json_text
from curvscope.cli._main import main
from curvscope.cli._options import (
    device_option,
    dtype_option,
    seed_option,
    threads_option,
    torch_threads,
)
from curvscope.errors import InputError
from curvscope.experiments import MATRICES, TrueVsEmpiricalConfig, TrueVsEmpiricalResult
from curvscope.training.checkpoint import read_checkpoint_dict

_LABELS = {"empirical": "empirical", "augmented": "augmented", "test": "test"}
#: Resumable state of the study inside a staging folder (dropped when the run completes).
_STATE = "resume-state"


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
        click.option(
            "--checkpoint-every",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="Lanczos steps between checkpoints; an interrupted run resumes from the last "
            "one when the same command is run again.",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Replace an existing --out folder (written whole at the end) and discard an "
            "interrupted run with other settings.",
        ),
    ]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def report_result(
    result: TrueVsEmpiricalResult, folder: OutputFolder, *, pdf: bool, as_json: bool
) -> Path:
    """Write the outputs, swap the folder into place, print the JSON or a short summary."""
    from curvscope.report import write_outputs

    write_outputs(result, folder.staging, pdf=pdf)
    out = folder.commit(drop=(_STATE,))
    if as_json:
        click.echo(json_text(result.summary()))
        return out
    click.echo(
        f"{result.config['matrix']} of {result.model.get('name')} (P = {result.num_params:,}) on "
        f"{result.train_config.get('data')}: N = {result.num_train:,}, K = "
        f"{result.config['views']} views (N*K = {result.num_augmented:,})"
    )
    for name, s in result.summaries.items():
        accuracy = "" if s.accuracy is None else f", accuracy {s.accuracy:.4g}"
        click.echo(
            f"  {_LABELS[name]:>9}: extremes [{s.smallest:.4g}, {s.largest:.4g}], "
            f"negative mass {s.negative_mass:.3g} ({s.negative_count} Ritz values), "
            f"loss {s.loss:.4g}{accuracy}"
        )
    th = result.theory
    fwd = th.forward
    if fwd:
        click.echo(
            f"  Theorem 1 (s = {fwd.noise_scale:.3g}, q = P/N = {th.q_empirical:.3g}): "
            f"from the augmented extremes predicts empirical [{fwd.predicted_smallest:.4g}, "
            f"{fwd.predicted_largest:.4g}], observed [{fwd.observed_smallest:.4g}, "
            f"{fwd.observed_largest:.4g}]"
        )
    click.echo(
        "  augmented extremes "
        + ("smaller" if th.shrinks else "NOT both smaller")
        + " in magnitude than the empirical ones"
    )
    click.echo(f"report: {out / 'report.html'}")
    return out


def run_study(
    config: TrueVsEmpiricalConfig, folder: OutputFolder, *, checkpoint_every: int
) -> TrueVsEmpiricalResult:
    """Run the study with its resumable state in the staging folder."""
    from curvscope.experiments import true_vs_empirical

    if folder.resumed and (folder.path(_STATE)).exists():
        click.echo(f"resuming the interrupted spectra in {folder.staging}", err=True)
    return true_vs_empirical(
        config,
        progress=True,
        # Under torch.distributed the ranks cannot resume in step: no resumable state then.
        state_dir=None if is_distributed() else folder.path(_STATE),
        checkpoint_every=checkpoint_every,
    )


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
    "--expect-model",
    "--model",
    "expected_model",
    default=None,
    help="Refuse a checkpoint that does not hold this model (e.g. mlp, preresnet110); the "
    "model itself always comes from the checkpoint.",
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
    checkpoint_every: int,
    force: bool,
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
    if noise_probes == 1:
        raise click.BadParameter(
            "1 probe gives no standard error; use 0 (skip) or >= 2", param_hint="--noise-probes"
        )
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
    out = out if out is not None else checkpoint.parent / "spectrum"
    read_checkpoint_dict(checkpoint)  # a readable curvscope checkpoint, before any work
    if checkpoint.resolve().is_relative_to(out.resolve()):
        raise InputError(
            f"--out {str(out)!r} contains the checkpoint being read ({str(checkpoint)!r}); "
            "replacing that folder would delete it: choose another --out"
        )
    # What the spectra are computed from: a partial run resumes only for the same settings
    # and the same checkpoint bytes.
    settings = {
        "command": "spectrum",
        **config.to_dict(),
        "checkpoint_sha256": file_digest(checkpoint),
    }
    with OutputFolder(out, settings=settings, force=force) as folder, torch_threads(threads):
        result = run_study(config, folder, checkpoint_every=checkpoint_every)
        report_result(result, folder, pdf=pdf, as_json=as_json)
