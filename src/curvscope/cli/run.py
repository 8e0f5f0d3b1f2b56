"""``curvscope run``: the main job — train, then Empirical vs augmented spectra, then the report.

Presentation only: it builds a :class:`~curvscope.training.TrainConfig`, calls
:func:`~curvscope.training.train`, then :func:`~curvscope.experiments.true_vs_empirical` on the
checkpoint, and writes the outputs with :func:`~curvscope.report.write_outputs`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from curvscope._outputs import OutputFolder
from curvscope.cli._main import main
from curvscope.cli._options import (
    model_data_options,
    model_options,
    parse_data_options,
    seed_option,
    torch_threads,
)
from curvscope.cli.spectrum import report_result, run_study, spectrum_options
from curvscope.cli.train import describe_training, train_into, train_settings
from curvscope.data import DATASETS
from curvscope.experiments import TrueVsEmpiricalConfig
from curvscope.experiments.paper000 import check_before_training
from curvscope.training import DIGITS_DEFAULTS, TrainConfig

# The embedded default: MLP 64-32-10 (P = 2410) on digits, trained with ±1-pixel shifts (the
# family of the frozen views) so that the augmented Hessian stands for the training distribution.
_DEFAULTS = {k: getattr(DIGITS_DEFAULTS, k) for k in ("epochs", "lr", "batch_size", "weight_decay")}


@main.command(name="run")
@model_data_options
@click.option(
    "--epochs", type=click.IntRange(min=1), default=_DEFAULTS["epochs"], show_default=True
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS["lr"],
    show_default=True,
    help="alpha_0 of the paper-000 eq.-11 schedule.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_DEFAULTS["batch_size"],
    show_default=True,
    help="SGD minibatch size.",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=_DEFAULTS["weight_decay"],
    show_default=True,
)
@click.option(
    "--no-augment",
    is_flag=True,
    help="Train on clean images (then the augmented set lies off what the net learned).",
)
@spectrum_options(threads_default=1)
@seed_option("Fixes weights, split, shuffles, frozen views and probes.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/run"),
    show_default=True,
    help="Output folder (checkpoint.pt, history.json, summary.json, figures, report.html).",
)
def run_command(
    model: str,
    data: str,
    data_dir: Path | None,
    data_option: tuple[str, ...],
    hidden: str,
    activation: str,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    no_augment: bool,
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
    seed: int,
    out: Path,
) -> None:
    """The main job of paper 000 on a small default: train an MLP (64-32-10) on the bundled
    digits with ±1-pixel shifts (seconds), compute the SLQ spectra of the Hessian over the
    training set (Empirical) and over 9 frozen shifted views of it (augmented, "True"), and
    over the test set, and write a self-contained report.html with the paper's tables and
    Theorem 1's prediction beside the observed shrinkage. About 10 s on 2 CPU cores.

    Written into a staging folder and moved into OUT whole at the end (an existing OUT is
    replaced only with --force); interrupted, the same command resumes it.

    \b
    Examples:
      curvscope run                              # writes runs/run/report.html
      curvscope run --out /tmp/run1 --json
      curvscope run --views 30 --steps 100 --probes 1 --pdf
    """
    if noise_probes == 1:
        raise click.BadParameter(
            "1 probe gives no standard error; use 0 (skip) or >= 2", param_hint="--noise-probes"
        )
    if data not in DATASETS:
        raise click.BadParameter(
            f"unknown dataset {data!r}; expected one of {', '.join(DATASETS)}", param_hint="--data"
        )
    train_config = TrainConfig(
        batch_size=batch_size,
        weight_decay=weight_decay,
        model=model,
        data=data,
        epochs=epochs,
        lr=lr,
        augment=not no_augment,
        seed=seed,
        model_options=model_options(hidden, activation, model),
        data_options=parse_data_options(data, data_option),
        data_dir=None if data_dir is None else str(data_dir),
        device=device,
        dtype=dtype,  # type: ignore[arg-type]
    )
    config = TrueVsEmpiricalConfig(
        checkpoint=str(out / "checkpoint.pt"),
        matrix=matrix,  # type: ignore[arg-type]
        views=views,
        num_steps=steps,
        num_probes=probes,
        noise_probes=noise_probes,
        compare_test=True,
        params=params,
        model=model,
        batch_size=curvature_batch_size,
        seed=seed,
        device=device,
        dtype=dtype,  # type: ignore[arg-type]
    )
    spectrum_settings = {k: v for k, v in config.to_dict().items() if k != "checkpoint"}
    settings = {"command": "run", "train": train_settings(train_config, None), **spectrum_settings}
    with OutputFolder(out, settings=settings, force=force) as folder, torch_threads(threads):
        # Everything that would fail after training is checked before it.
        staged = dataclasses.replace(config, checkpoint=str(folder.path("checkpoint.pt")))
        check_before_training(train_config, staged)
        trained = train_into(train_config, folder, resume=None)
        if not as_json:
            click.echo(describe_training(trained, model, data))
        result = run_study(staged, folder, checkpoint_every=checkpoint_every)
        # The result names the checkpoint where it will live, not where it was staged.
        result = dataclasses.replace(result, config=config.to_dict())
        report_result(result, folder, pdf=pdf, as_json=as_json)
