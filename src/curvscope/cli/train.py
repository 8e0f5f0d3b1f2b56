"""``curvscope train``: train a model with SGD and the paper-000 schedule, write a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click

from curvscope.cli._main import main
from curvscope.cli._options import (
    device_option,
    dtype_option,
    model_data_options,
    model_options,
    seed_option,
)
from curvscope.data import DATASETS
from curvscope.errors import CurvscopeError
from curvscope.training import SCHEDULE_PRESETS, TrainConfig, train

# Defaults that train the default MLP (64-32-10, P = 2410) on digits to > 90% test accuracy
# in a few seconds on 2 CPU cores; --schedule replaces lr/epochs/final-ratio with a preset.
_DIGITS_DEFAULTS = {"lr": 0.2, "epochs": 40, "final_ratio": 0.01}


@main.command(name="train")
@model_data_options
@click.option(
    "--schedule",
    type=click.Choice(sorted(SCHEDULE_PRESETS)),
    default=None,
    help="Paper-000 preset for lr/epochs/final ratio (normal: 0.1, 225, 0.01; "
    "overfit: 0.001, 1000, 0.01); explicit --lr/--epochs/--final-ratio win.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="T, number of epochs [default: 40, or the preset's].",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="alpha_0, initial learning rate of eq. 11 [default: 0.2, or the preset's].",
)
@click.option(
    "--final-ratio",
    type=click.FloatRange(0, 1),
    default=None,
    help="r: the final learning rate is r * alpha_0 [default: 0.01].",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.9,
    show_default=True,
    help="SGD momentum.",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=1e-4,
    show_default=True,
    help="SGD weight decay (paper 000 does not state it).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="SGD minibatch size (paper 000 does not state it).",
)
@click.option(
    "--no-augment",
    is_flag=True,
    help="Train on the clean images. By default training draws random shifts "
    "(digits: ±1 pixel) or crop+flip (CIFAR), the family of the frozen views.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue from a checkpoint.pt of the same settings.",
)
@seed_option("Fixes initial weights, data split, shuffling and augmentation.")
@device_option
@dtype_option("Training precision.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/train"),
    show_default=True,
    help="Folder for checkpoint.pt and history.json.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def train_command(
    model: str,
    data: str,
    data_dir: Path | None,
    hidden: str,
    activation: str,
    schedule: str | None,
    epochs: int | None,
    lr: float | None,
    final_ratio: float | None,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    no_augment: bool,
    resume: Path | None,
    seed: int,
    device: str,
    dtype: str,
    out: Path,
    as_json: bool,
) -> None:
    """Train a model with SGD (momentum, weight decay) and the learning-rate schedule of paper
    000 eq. 11, evaluating train/test loss and accuracy every epoch, and write OUT/checkpoint.pt
    (config, model, history, optimiser state; resumable with --resume).

    \b
    Examples:
      curvscope train                                  # MLP 64-32-10 on digits, seconds
      curvscope train --model cnn --epochs 10
      curvscope train --model preresnet110 --data cifar10 --data-dir ~/data \\
                      --schedule normal --batch-size 128 --weight-decay 3e-4 --device cuda

    The checkpoint feeds `curvscope spectrum`.
    """
    if data not in DATASETS:
        raise click.UsageError(
            f"unknown dataset {data!r} for --data; expected one of {', '.join(DATASETS)}"
        )
    base = dict(_DIGITS_DEFAULTS)
    preset = "custom"
    if schedule is not None:
        p = SCHEDULE_PRESETS[schedule]
        base = {"lr": p.lr0, "epochs": p.epochs, "final_ratio": p.final_ratio}
        preset = schedule
    for key, value in (("lr", lr), ("epochs", epochs), ("final_ratio", final_ratio)):
        if value is not None:
            base[key] = value
    options = model_options(hidden, activation, model)
    try:
        config = TrainConfig(
            batch_size=batch_size,
            weight_decay=weight_decay,
            model=model,
            data=data,
            epochs=base["epochs"],
            lr=base["lr"],
            final_ratio=base["final_ratio"],
            momentum=momentum,
            augment=not no_augment,
            seed=seed,
            model_options=options,
            data_dir=None if data_dir is None else str(data_dir),
            preset=preset,
            device=device,
            dtype=dtype,
        )
        result = train(config, out=out, resume=resume, progress=True)
    except CurvscopeError as exc:
        raise click.ClickException(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(result.history, indent=1))
    last = result.history[-1] if result.history else {}
    summary = {
        "checkpoint": str(result.checkpoint),
        "model": model,
        "data": data,
        "num_parameters": result.num_parameters,
        "epochs": result.epoch,
        "seconds": round(result.seconds, 3),
        **{k: last.get(k) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
    }
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        click.echo(
            f"{model} (P = {result.num_parameters:,}) on {data}: {result.epoch} epochs in "
            f"{result.seconds:.1f} s; train loss {last.get('train_loss', float('nan')):.4f}"
            f", acc {last.get('train_accuracy', float('nan')):.4f}; test loss "
            f"{last.get('test_loss', float('nan')):.4f}, acc "
            f"{last.get('test_accuracy', float('nan')):.4f}"
        )
        click.echo(f"checkpoint: {result.checkpoint}")
