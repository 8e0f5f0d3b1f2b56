"""Command-line interface: ``curvscope <command>``. Presentation only; it never computes."""

# Each subcommand module attaches itself to `main` on import.
# (one import per line, so parallel work merges cleanly)
from curvscope.cli import experiment as _experiment  # noqa: F401
from curvscope.cli import run as _run  # noqa: F401
from curvscope.cli import spectrum as _spectrum  # noqa: F401
from curvscope.cli import theory as _theory  # noqa: F401
from curvscope.cli import train as _train  # noqa: F401
from curvscope.cli._main import main

__all__ = ["main"]
