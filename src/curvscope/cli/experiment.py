"""``curvscope experiment list|run`` and ``curvscope reproduce``: every registered study by name.

Presentation only: a study's config comes from its defaults, a preset, a TOML file and
``--set key=value`` overrides; its run, its report content and its claims come from the
registry (:mod:`curvscope.experiments.registry`); the files are written by
:func:`curvscope.report.shell.write_study` into an :class:`~curvscope._outputs.OutputFolder`
(whole or not at all; a rerun of the same command resumes).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import click

from curvscope._distributed import is_distributed
from curvscope._outputs import OutputFolder, json_text, write_atomic
from curvscope.cli._main import main
from curvscope.cli._options import SEED, threads_option, torch_threads
from curvscope.errors import InputError

_STATE = "resume-state"
#: One thread by default, as `curvscope run`: the laptop presets are fastest with it, and the
#: thread count changes float rounding (so the same seed gives the same numbers as `run`).
_THREADS_HELP = (
    "CPU threads for torch [default: 1, as `curvscope run`; the thread count changes float "
    "rounding, so keep it fixed to compare runs]."
)


@main.group(name="experiment")
def experiment() -> None:
    """The studies of the four papers, by name: `experiment list`, `experiment run NAME`."""


def _studies() -> dict[str, Any]:
    from curvscope.experiments import STUDIES

    return STUDIES


@experiment.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the studies as JSON.")
def list_command(as_json: bool) -> None:
    """List the registered studies: name, paper, presets and what each shows."""
    studies = _studies()
    if as_json:
        click.echo(
            json_text(
                [
                    {
                        "name": s.name,
                        "paper": s.paper,
                        "title": s.title,
                        "description": s.description,
                        "presets": list(s.presets),
                    }
                    for s in studies.values()
                ]
            )
        )
        return
    for s in studies.values():
        click.echo(f"{s.name:<24} paper {s.paper}  [{', '.join(s.presets)}]  {s.description}")


def _study_config(
    study: Any,
    preset: str | None,
    config_file: Path | None,
    sets: tuple[str, ...],
    seed: int | None,
    device: str | None,
) -> Any:
    overrides = list(sets)
    names = {f.name for f in fields(study.config_class)}
    for flag, key, value in (("--seed", "seed", seed), ("--device", "device", device)):
        if value is None:
            continue
        if key not in names:
            raise InputError(
                f"study {study.name!r} has no top-level {key!r} setting, so {flag} cannot be "
                "applied; use --set with one of its settings (`--set KEY=VALUE`)"
            )
        overrides.append(f"{key}={value}")
    return study.config(preset, file=config_file, overrides=overrides)


def run_study_into(
    study: Any, config: Any, folder: Path, *, pdf: bool, progress: bool
) -> tuple[Any, float]:
    """Run ``study`` with its resumable state in ``folder`` and write its outputs there."""
    from curvscope.report.shell import write_study

    tick = time.perf_counter()
    # Under torch.distributed the ranks cannot resume in step: no resumable state then.
    state = None if is_distributed() else folder / _STATE
    result = study.run(config, progress=progress, state_dir=state)
    seconds = time.perf_counter() - tick
    write_study(study, config, result, folder, pdf=pdf)
    write_atomic(folder / "run.json", json_text({"study": study.name, "seconds": seconds}))
    return result, seconds


_common = [
    click.option("--preset", default=None, help="A preset of the study: laptop, paper, ..."),
    click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="A TOML file of settings (nested configs as [tables]).",
    ),
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one setting (dotted keys reach nested configs); repeatable.",
    ),
    click.option("--seed", type=SEED, default=None, help="Sets the study's seed."),
    click.option("--device", default=None, help="Sets the study's device (cpu, cuda, ...)."),
    click.option("--pdf", is_flag=True, help="Also write every figure as PDF."),
    click.option("--force", is_flag=True, help="Replace an existing --out folder whole."),
    threads_option(1, _THREADS_HELP),
    click.option("--json", "as_json", is_flag=True, help="Print summary.json on stdout."),
]


def _with_common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@experiment.command(name="run")
@click.argument("name")
@_with_common
@click.option("--out", type=click.Path(path_type=Path), default=None, help="[runs/NAME]")
def run_command(
    name: str,
    preset: str | None,
    config_file: Path | None,
    sets: tuple[str, ...],
    seed: int | None,
    device: str | None,
    pdf: bool,
    force: bool,
    threads: int | None,
    as_json: bool,
    out: Path | None,
) -> None:
    """Run one registered study and write summary.json, claims.json, result.json/.npz,
    figures and a self-contained report.html into --out (whole, at the end; a rerun of the
    same command resumes an interrupted one).

    \b
    Examples:
      curvscope experiment run true-vs-empirical --preset laptop
      curvscope experiment run true-vs-empirical --set views=3 --set train.epochs=5
    """
    from curvscope.experiments import get_study

    study = get_study(name)
    config = _study_config(study, preset, config_file, sets, seed, device)
    out = out if out is not None else Path("runs") / name
    settings = {"command": "experiment", "study": name, "config": config.to_dict()}
    with OutputFolder(out, settings=settings, force=force) as folder, torch_threads(threads):
        if folder.resumed and folder.path(_STATE).exists():
            click.echo(f"resuming the interrupted run in {folder.staging}", err=True)
        result, _ = run_study_into(study, config, folder.staging, pdf=pdf, progress=not as_json)
        folder.commit(drop=(_STATE,))
    if as_json:
        click.echo(json_text(study.headline(result)))
        return
    for claim in study.claims(result):
        click.echo(f"  [{claim.verdict}] {claim.claim}: paper {claim.paper}; ours {claim.ours}")
    click.echo(f"report: {out / 'report.html'}")


@main.command(name="reproduce")
@click.option(
    "--preset",
    default="laptop",
    show_default=True,
    help="Preset of every study: laptop (minutes on 2 CPU cores) or paper (the papers' sizes).",
)
@click.option("--only", multiple=True, metavar="NAME", help="Run only these studies (repeatable).")
@click.option("--pdf", is_flag=True, help="Also write every figure as PDF.")
@click.option("--force", is_flag=True, help="Replace an existing --out folder whole.")
@threads_option(1, _THREADS_HELP)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/reproduce"), show_default=True
)
def reproduce_command(
    preset: str, only: tuple[str, ...], pdf: bool, force: bool, threads: int | None, out: Path
) -> None:
    """Run every registered study with one preset and write OUT/index.html: each study's
    report linked, and every "paper vs ours" row of every study in one table. Interrupted, the
    same command resumes (finished studies are kept, the running one resumes)."""
    from curvscope.experiments import Claim, get_study
    from curvscope.report.shell import IndexEntry, render_index

    studies = [get_study(n) for n in only] if only else list(_studies().values())
    for study in studies:
        if preset not in study.presets:
            raise InputError(
                f"study {study.name!r} has no preset {preset!r}; presets: "
                f"{', '.join(study.presets)} (or leave it out with --only)"
            )
    configs = {s.name: s.config(preset) for s in studies}
    settings = {
        "command": "reproduce",
        "preset": preset,
        "configs": {name: c.to_dict() for name, c in configs.items()},
    }
    entries: list[IndexEntry] = []
    with OutputFolder(out, settings=settings, force=force) as folder, torch_threads(threads):
        for study in studies:
            sub = folder.path(study.name)
            done = sub / "run.json"
            if done.is_file() and (sub / "report.html").is_file():
                click.echo(f"{study.name}: kept from the interrupted run", err=True)
                seconds = float(json.loads(done.read_text())["seconds"])
                claims = tuple(Claim(**c) for c in json.loads((sub / "claims.json").read_text()))
            else:
                click.echo(f"{study.name} (paper {study.paper}): running", err=True)
                result, seconds = run_study_into(
                    study, configs[study.name], sub, pdf=pdf, progress=True
                )
                claims = tuple(study.claims(result))
                shutil.rmtree(sub / _STATE, ignore_errors=True)
            entries.append(IndexEntry(study, study.name, claims, seconds))
        write_atomic(folder.path("index.html"), render_index(entries, preset=preset))
        write_atomic(
            folder.path("index.json"),
            json_text(
                [
                    {
                        "study": e.study.name,
                        "seconds": e.seconds,
                        "claims": [asdict(c) for c in e.claims],
                    }
                    for e in entries
                ]
            ),
        )
        folder.commit()
    agree = sum(c.verdict == "agrees" for e in entries for c in e.claims)
    total = sum(len(e.claims) for e in entries)
    click.echo(f"{len(entries)} studies, {agree}/{total} claims agree: {out / 'index.html'}")
