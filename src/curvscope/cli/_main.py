"""The ``curvscope`` command group; subcommands live in sibling modules and attach to it.

Every command's errors end here, so they look and exit the same everywhere:

* exit 2: the input is wrong (click's usage errors and :class:`~curvscope.errors.InputError`);
* exit 1: the computation cannot be trusted or does not fit (the other ``CurvscopeError``\\ s:
  non-finite curvature, data that changed between passes, memory);
* exit 130: interrupted (Ctrl-C); what was computed is kept for a rerun to resume.

A ``CurvscopeError`` is printed as ``Error: <message>`` on a fresh line (open progress bars are
closed first), never as a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import click

from curvscope._distributed import distributed_session, is_writer
from curvscope._version import __version__
from curvscope.errors import CurvscopeError, InputError

#: Exit status of each kind of failure (documented in the README).
EXIT_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


def _close_progress_bars() -> None:
    """Close open tqdm bars so that a message starts on its own line."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.leave = False
        bar.close()


@contextlib.contextmanager
def _quiet_unless_writer() -> Iterator[None]:
    """Ranks other than 0 of a ``torchrun`` job print nothing: no summary, no progress (their
    errors still reach stderr: they are printed after this block)."""
    if is_writer():
        yield
        return
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            yield
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous


class CurvscopeCLIError(click.ClickException):
    """A :class:`CurvscopeError` shown to a CLI user: message only, with its exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            with distributed_session(), _quiet_unless_writer():
                return super().invoke(ctx)
        except CurvscopeError as exc:
            _close_progress_bars()
            code = EXIT_INPUT if isinstance(exc, InputError) else EXIT_FAILURE
            raise CurvscopeCLIError(str(exc), code) from None
        except KeyboardInterrupt:
            _close_progress_bars()
            click.echo(
                "\ninterrupted: finished work is kept; rerun the same command to resume it",
                err=True,
            )
            ctx.exit(EXIT_INTERRUPTED)


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="curvscope")
def main() -> None:
    """curvscope: curvature spectra (Hessian, GGN, Fisher, SGD noise) of neural networks.

    Start with `curvscope run`, which trains a small MLP on the bundled digits data and writes a
    report comparing the Empirical and the augmented ("True") Hessian spectra.

    Exit status: 0 done, 2 bad input, 1 a computation that cannot be trusted or does not fit,
    130 interrupted (rerun the same command to resume).
    """
