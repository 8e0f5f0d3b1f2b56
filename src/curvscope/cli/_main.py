"""The ``curvscope`` command group; subcommands live in sibling modules and attach to it."""

from __future__ import annotations

import click

from curvscope._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="curvscope")
def main() -> None:
    """curvscope: curvature spectra (Hessian, GGN, Fisher, SGD noise) of neural networks.

    Start with `curvscope run`, which trains a small MLP on the bundled digits data and writes a
    report comparing the Empirical and the augmented ("True") Hessian spectra.
    """
