"""Options shared by the commands that build a model on a dataset (``train``, ``run``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from curvscope.data import DATASETS


def parse_hidden(value: str) -> list[int]:
    """``"64,32"`` -> ``[64, 32]``, with a usage error for anything else."""
    try:
        widths = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated widths like 32 or 64,32, got {value!r}",
            param_hint="--hidden",
        ) from None
    if not widths or any(w < 1 for w in widths):
        raise click.BadParameter(f"widths must be positive, got {value!r}", param_hint="--hidden")
    return widths


def model_options(hidden: str, activation: str, model: str) -> dict[str, Any]:
    """Constructor options from the MLP flags (other models take none from the CLI)."""
    return {"hidden": parse_hidden(hidden), "activation": activation} if model == "mlp" else {}


def model_data_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--model --data --data-dir --hidden --activation``."""
    options = [
        click.option(
            "--model",
            default="mlp",
            show_default=True,
            help="mlp, cnn, vgg16bn or preresnet<depth> (e.g. preresnet110, preresnet20).",
        ),
        click.option(
            "--data",
            default="digits",
            show_default=True,
            help=f"Dataset: {', '.join(DATASETS)}. CIFAR is read from --data-dir; augmented "
            "views need images (digits, cifar*).",
        ),
        click.option(
            "--data-dir",
            type=click.Path(path_type=Path),
            default=None,
            help="Folder holding cifar-10-batches-py/ or cifar-100-python/ (never downloaded).",
        ),
        click.option(
            "--hidden",
            default="32",
            show_default=True,
            help="MLP hidden widths, comma-separated (64-32-10 on digits is --hidden 32).",
        ),
        click.option("--activation", default="tanh", show_default=True, help="MLP activation."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
