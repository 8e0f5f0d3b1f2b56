"""Command-line interface: ``curvscope <command>``. Presentation only; it never computes."""

from curvscope.cli._main import main

# Each subcommand module attaches itself to `main` on import.
# (one import per line, so parallel work merges cleanly)

__all__ = ["main"]
