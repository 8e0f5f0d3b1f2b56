"""``curvscope train``: train a model with SGD and the paper-000 schedule, write a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curvscope._outputs import OutputFolder, file_digest, json_text, write_atomic
from curvscope.cli._main import main
from curvscope.cli._options import (
    device_option,
    dtype_option,
    model_data_options,
    model_options,
    parse_data_options,
    seed_option,
    threads_option,
    torch_threads,
)
from curvscope.data import DATASETS
from curvscope.training import (
    DIGITS_DEFAULTS,
    SCHEDULE_PRESETS,
    TrainConfig,
    TrainResult,
    train,
)
from curvscope.training.checkpoint import read_checkpoint_dict

# --schedule replaces lr/epochs/final-ratio of DIGITS_DEFAULTS with a paper-000 preset.
_SCHEDULE_KEYS = ("lr", "epochs", "final_ratio")


def _parse_save_at(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple:
    if value is None or not value.strip():
        return ()
    try:
        epochs = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated epochs such as 0,10,50, got {value!r}"
        ) from None
    if any(e < 0 for e in epochs):
        raise click.BadParameter(f"epochs must be >= 0, got {value!r}")
    return epochs


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
    help=f"T, number of epochs [default: {DIGITS_DEFAULTS.epochs}, or the preset's].",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"alpha_0, initial learning rate of eq. 11 [default: {DIGITS_DEFAULTS.lr:g}, or the "
    "preset's].",
)
@click.option(
    "--final-ratio",
    type=click.FloatRange(0, 1),
    default=None,
    help=f"r: the final learning rate is r * alpha_0 [default: {DIGITS_DEFAULTS.final_ratio:g}].",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0, 1, max_open=True),
    default=DIGITS_DEFAULTS.momentum,
    show_default=True,
    help="SGD momentum.",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=DIGITS_DEFAULTS.weight_decay,
    show_default=True,
    help="SGD weight decay (paper 000 does not state it).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DIGITS_DEFAULTS.batch_size,
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
@click.option(
    "--save-at",
    callback=_parse_save_at,
    default=None,
    metavar="EPOCHS",
    help="Also write snapshot checkpoints after these epochs (comma-separated; 0 = the initial "
    "weights) as OUT/snapshots/epoch-NNNN.pt, loadable like checkpoint.pt.",
)
@seed_option("Fixes initial weights, data split, shuffling and augmentation.")
@threads_option(None, "CPU threads for torch [default: torch's choice].")
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
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing --out folder (written whole at the end) and discard an "
    "interrupted run with other settings.",
)
def train_command(
    model: str,
    data: str,
    data_dir: Path | None,
    data_option: tuple[str, ...],
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
    save_at: tuple[int, ...],
    seed: int,
    threads: int | None,
    device: str,
    dtype: str,
    out: Path,
    as_json: bool,
    force: bool,
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

    The run is written into a staging folder and moved into OUT whole when it ends; an
    existing OUT is replaced only with --force. Interrupted (Ctrl-C, a crash, a kill), the
    same command resumes from the last finished epoch. The checkpoint feeds `curvscope spectrum`.
    """
    if data not in DATASETS:
        raise click.UsageError(
            f"unknown dataset {data!r} for --data; expected one of {', '.join(DATASETS)}"
        )
    base = {k: getattr(DIGITS_DEFAULTS, k) for k in _SCHEDULE_KEYS}
    preset = "custom"
    if schedule is not None:
        p = SCHEDULE_PRESETS[schedule]
        base = {"lr": p.lr0, "epochs": p.epochs, "final_ratio": p.final_ratio}
        preset = schedule
    for key, value in (("lr", lr), ("epochs", epochs), ("final_ratio", final_ratio)):
        if value is not None:
            base[key] = value
    options = model_options(hidden, activation, model)
    data_options = parse_data_options(data, data_option)
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
        data_options=data_options,
        data_dir=None if data_dir is None else str(data_dir),
        preset=preset,
        device=device,
        dtype=dtype,
        save_at=save_at,
    )
    # Continuing a run in its own folder replaces that folder: that is what was asked.
    continuing = resume is not None and resume.resolve().parent == out.resolve()
    with (
        OutputFolder(
            out, settings=train_settings(config, resume), force=force or continuing
        ) as folder,
        torch_threads(threads),
    ):
        result = train_into(config, folder, resume=resume)
        folder.commit()
    last = result.history[-1] if result.history else {}
    checkpoint_path = out / "checkpoint.pt"
    summary = {
        "checkpoint": str(checkpoint_path),
        "model": model,
        "data": data,
        "num_parameters": result.num_parameters,
        "epochs": result.epoch,
        "seconds": round(result.seconds, 3),
        **{k: last.get(k) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
    }
    if as_json:
        click.echo(json_text(summary))
    else:
        click.echo(f"{describe_training(result, model, data)}\ncheckpoint: {checkpoint_path}")


def train_settings(config: TrainConfig, resume: Path | None) -> dict[str, Any]:
    """What a training run computes (where it runs, device and data folder, may change)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("device", "data_dir")}
    settings["command"] = "train"
    if resume is not None and resume.is_file():
        settings["resume_sha256"] = file_digest(resume)
    return settings


def train_into(config: TrainConfig, folder: OutputFolder, *, resume: Path | None) -> TrainResult:
    """Train with checkpoints in the staging folder; resume an interrupted run found there."""
    staged = folder.path("checkpoint.pt")
    if folder.resumed and staged.is_file():
        epoch = int(read_checkpoint_dict(staged)["epoch"])
        click.echo(
            f"resuming the interrupted training in {folder.staging} after epoch {epoch} of "
            f"{config.epochs}",
            err=True,
        )
        resume = staged
    result = train(config, out=folder.staging, resume=resume, progress=True)
    write_atomic(folder.path("history.json"), json_text(result.history))
    return result


def describe_training(result: TrainResult, model: str, data: str) -> str:
    """One line: model, P, epochs, time, and the last epoch's losses (and accuracies)."""
    last = result.history[-1] if result.history else {}

    def metrics(split: str) -> str:
        loss, acc = last.get(f"{split}_loss"), last.get(f"{split}_accuracy")
        text = f"{split} loss " + ("–" if loss is None else f"{loss:.4f}")
        return text if acc is None else f"{text}, acc {acc:.4f}"

    return (
        f"{model} (P = {result.num_parameters:,}) on {data}: {result.epoch} epochs in "
        f"{result.seconds:.1f} s; {metrics('train')}; {metrics('test')}"
    )
