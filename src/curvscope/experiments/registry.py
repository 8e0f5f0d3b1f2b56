"""The registry of studies: every experiment of the four papers, runnable by name.

A study registers what it is (name, paper, one-line description), how it runs (config class,
presets, ``run(config, *, progress, state_dir) -> result``) and what it reports: its content as
data (:class:`Section` of :class:`Table`, :class:`Text` and :class:`FigureRef` blocks) and the
claims it tests as "paper vs ours" rows (:class:`Claim`). Rendering is the report layer's job
(:mod:`curvscope.report.shell`) and drawing the plots layer's (figures registered under the
study's name in :mod:`curvscope.plots.registry`), so a study never imports either; adding a
study touches ``experiments/``, ``plots/`` and a test.

Presets: ``laptop`` (minutes on 2 CPU cores) and ``paper`` (the paper's own sizes) at least.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from curvscope.errors import InputError
from curvscope.experiments.config import read_toml

__all__ = [
    "STUDIES",
    "Claim",
    "FigureRef",
    "Section",
    "Study",
    "Table",
    "Text",
    "get_study",
    "register",
]

Verdict = Literal["agrees", "partly", "disagrees", "not comparable"]
VERDICTS: tuple[str, ...] = ("agrees", "partly", "disagrees", "not comparable")


@dataclass(frozen=True)
class Claim:
    """One "paper vs ours" row.

    Attributes:
        claim: what the paper states, in a sentence.
        paper: the paper's number or statement (with where it is: "fig. 3", "table 1").
        ours: what this run measured (a number with its uncertainty where it has one).
        verdict: ``agrees``, ``partly``, ``disagrees`` or ``not comparable`` — measured, never
            tuned: a disagreement is a result.
        note: how the verdict was decided (the tolerance) and what differs from the paper.
    """

    claim: str
    paper: str
    ours: str
    verdict: Verdict
    note: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InputError(f"verdict must be one of {', '.join(VERDICTS)}; got {self.verdict!r}")


@dataclass(frozen=True)
class Table:
    """A table: ``header`` strings and ``rows`` of cells (numbers, strings, ``None`` for –)."""

    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str = ""
    left: int = 1  # leading text columns


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (escaped when rendered)."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class FigureRef:
    """A figure drawn by the plots layer (registered as ``name`` for the study)."""

    name: str
    caption: str


Block = Table | Text | FigureRef


@dataclass(frozen=True)
class Section:
    """A titled part of a study's report."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Study:
    """A registered study.

    Attributes:
        name: the CLI name (``curvscope experiment run NAME``).
        paper: the paper it reproduces (``"000"`` .. ``"003"``).
        title: a short title for reports.
        description: one line for ``curvscope experiment list``.
        config_class: the frozen config dataclass (a :class:`~.config.StudyConfig`).
        run: ``run(config, *, progress: bool, state_dir: Path | None) -> result``; the result is
            a frozen dataclass with ``save``/``load`` and holds what is needed to recompute
            every number it reports.
        presets: preset name -> settings applied to the config's defaults (dotted keys allowed).
        sections: ``result -> sections`` of the report (tables, text, figure references).
        claims: ``result -> claims`` ("paper vs ours" rows).
        summary: ``result -> dict`` of headline numbers (``summary.json``); ``None`` (the
            default) uses the result's own ``summary()`` method.
    """

    name: str
    paper: str
    title: str
    description: str
    config_class: type
    run: Callable[..., Any]
    presets: dict[str, dict[str, Any]]
    sections: Callable[[Any], Sequence[Section]]
    claims: Callable[[Any], Sequence[Claim]]
    summary: Callable[[Any], dict[str, Any]] | None = None
    result_class: type | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def headline(self, result: Any) -> dict[str, Any]:
        """The headline numbers of ``result`` (what ``summary.json`` holds)."""
        return self.summary(result) if self.summary is not None else result.summary()

    def config(
        self,
        preset: str | None = None,
        *,
        file: Any = None,
        overrides: Sequence[str] = (),
    ) -> Any:
        """The config: defaults, then a preset, then a TOML file, then ``key=value`` overrides."""
        config = self.config_class()
        if preset is not None:
            if preset not in self.presets:
                raise InputError(
                    f"study {self.name!r} has no preset {preset!r}; presets: "
                    f"{', '.join(self.presets)}"
                )
            config = config.with_overrides(self.presets[preset])
        if file is not None:
            config = config.with_overrides(read_toml(file))
        if overrides:
            config = config.with_overrides(list(overrides))
        return config


#: Registered studies by name, in registration order.
STUDIES: dict[str, Study] = {}


def register(study: Study) -> Study:
    """Add ``study`` to :data:`STUDIES` (a second study of the same name is refused)."""
    if study.name in STUDIES and STUDIES[study.name] is not study:
        raise InputError(f"a study named {study.name!r} is already registered")
    for needed in ("laptop", "paper"):
        if needed not in study.presets:
            raise InputError(f"study {study.name!r} needs a {needed!r} preset")
    STUDIES[study.name] = study
    return study


def get_study(name: str) -> Study:
    """The study registered as ``name``."""
    if name not in STUDIES:
        raise InputError(
            f"no study named {name!r}; registered: {', '.join(STUDIES) or 'none'} "
            "(`curvscope experiment list`)"
        )
    return STUDIES[name]
