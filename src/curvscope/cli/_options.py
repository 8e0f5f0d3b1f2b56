"""Options shared by the commands: ``--seed --device --dtype --threads`` (every command, with
the same flags and messages) and the model/data options of ``train`` and ``run``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import torch

from curvscope._validate import DTYPES, SEED_MAX, check_device
from curvscope.data import DATASETS, dataset_options
from curvscope.errors import InputError


class SeedType(click.ParamType):
    """An integer seed in ``[0, 2**63 - 1]``, the range every torch and numpy generator takes."""

    name = "seed"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            seed = value
        else:
            try:
                seed = int(str(value).strip(), 10)
            except ValueError:
                self.fail(
                    f"expected an integer in [0, 2**63 - 1], got {value!r}; e.g. --seed 0",
                    param,
                    ctx,
                )
        if not 0 <= seed <= SEED_MAX:
            self.fail(
                f"expected an integer in [0, 2**63 - 1] = [0, {SEED_MAX}], got {seed}; pass a "
                "non-negative seed such as 0",
                param,
                ctx,
            )
        return seed


SEED = SeedType()


def check_device_flag(value: str) -> str:
    """``--device`` as a canonical device string, or a usage error saying what to pass."""
    try:
        return check_device(value, name="--device")
    except InputError as exc:
        raise click.UsageError(str(exc)) from None


def _device_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    return check_device_flag(value)


def seed_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--seed`` with the shared range check."""
    return click.option("--seed", type=SEED, default=0, show_default=True, help=help)


def device_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--device``, checked before any work: known spelling and present on this machine."""
    return click.option(
        "--device",
        default="cpu",
        show_default=True,
        callback=_device_callback,
        help="torch device: cpu, cuda, cuda:<index> or mps (must exist on this machine).",
    )(func)


def dtype_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--dtype float32|float64``."""
    return click.option(
        "--dtype", type=click.Choice(list(DTYPES)), default="float32", show_default=True, help=help
    )


def threads_option(
    default: int | None, help: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--threads N`` (torch CPU threads), at least 1."""
    return click.option(
        "--threads", type=click.IntRange(min=1, max=1024), default=default, help=help
    )


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


def parse_option_value(text: str) -> bool | int | float | str | None:
    """``"true"``/``"false"`` -> bool, ``"none"`` -> None, then int, float, else the string."""
    word = text.strip()
    lowered = word.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(word)
        except ValueError:
            pass
    return word


def parse_data_options(data: str, pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--data-option key=value`` pairs -> typed keyword options of ``load_dataset(data, ...)``.

    Unknown keys, a missing ``=`` and a key given twice are usage errors that name the
    dataset's options.
    """
    known = dataset_options(data) if data in DATASETS else ()
    listing = ", ".join(known) or "(none)"
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(
                f"expected key=value (e.g. per_class=10), got {pair!r}; the options of "
                f"--data {data} are {listing}",
                param_hint="--data-option",
            )
        if key not in known:
            raise click.BadParameter(
                f"dataset {data!r} has no option {key!r}; its options are {listing}",
                param_hint="--data-option",
            )
        if key in options:
            raise click.BadParameter(
                f"{key} is given twice ({key}={options[key]!r} and {pair!r}); give it once",
                param_hint="--data-option",
            )
        options[key] = parse_option_value(value)
    return options


def model_data_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--model --data --data-dir --data-option --hidden --activation``."""
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
            help="Folder holding cifar-10-batches-py/, cifar-100-python/ or the MNIST IDX "
            "files (never downloaded).",
        ),
        click.option(
            "--data-option",
            "data_option",
            multiple=True,
            metavar="KEY=VALUE",
            help="Dataset option, repeatable: e.g. per_class=10, size=4, grayscale=true, "
            "whiten=zca (mnist, cifar*, digits); std=2.0, num_samples=500 (blobs); "
            "labels=teacher (random-classes). Values are read as int, float, true/false, none "
            "or text.",
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
