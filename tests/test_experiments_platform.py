"""The experiment platform: typed study configs (dict, TOML, key=value), the registry, the one
report shell, ``curvscope experiment list|run`` and ``curvscope reproduce``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from curvscope.cli import main
from curvscope.errors import InputError
from curvscope.experiments import (
    STUDIES,
    Claim,
    FigureRef,
    Section,
    Study,
    StudyConfig,
    Table,
    Text,
    get_study,
    register,
)
from curvscope.persistence import savable
from curvscope.plots.registry import FIGURE_BUILDERS, register_figures
from curvscope.report.shell import write_study

# --------------------------------------------------------------------- a toy study


@dataclass(frozen=True)
class _Inner(StudyConfig):
    width: int = 3
    names: tuple[str, ...] = ("a", "b")


@dataclass(frozen=True)
class ToyConfig(StudyConfig):
    seed: int = 0
    size: int = 6
    scale: float = 1.0
    exact: bool = True
    kind: str = "diag"
    inner: _Inner = field(default_factory=_Inner)


@savable
@dataclass(frozen=True)
class ToyResult:
    eigenvalues: np.ndarray
    seed: int


def _run_toy(config: ToyConfig, *, progress: bool = False, state_dir=None) -> ToyResult:
    rng = np.random.default_rng(config.seed)
    a = rng.standard_normal((config.size, config.size))
    return ToyResult(np.linalg.eigvalsh(config.scale * (a + a.T) / 2), config.seed)


def _toy_claims(r: ToyResult) -> tuple[Claim, ...]:
    mean = float(r.eigenvalues.mean())
    return (
        Claim(
            "the eigenvalues of a GOE matrix average to about 0",
            "0 (Wigner)",
            f"{mean:.3g}",
            "agrees" if abs(mean) < 1 else "disagrees",
            "|mean| < 1",
        ),
    )


_TOY = Study(
    name="toy-goe",
    paper="test",
    title="Toy GOE spectrum",
    description="eigenvalues of a symmetric Gaussian matrix",
    config_class=ToyConfig,
    run=_run_toy,
    presets={"laptop": {"size": 8}, "paper": {"size": 40, "inner.width": 5}},
    sections=lambda r: (
        Section(
            "Eigenvalues",
            (
                Table(("i", "λ"), tuple((i, float(v)) for i, v in enumerate(r.eigenvalues))),
                Text("Sorted ascending."),
                FigureRef("hist", "histogram of the eigenvalues"),
            ),
        ),
    ),
    claims=_toy_claims,
    summary=lambda r: {"largest": float(r.eigenvalues.max()), "nan": float("nan")},
    result_class=ToyResult,
)


@pytest.fixture
def toy():
    register(_TOY)

    @register_figures("toy-goe")
    def _figures(result: ToyResult) -> dict[str, Figure]:
        fig = Figure()
        fig.add_subplot().hist(result.eigenvalues)
        return {"hist": fig}

    yield _TOY
    STUDIES.pop("toy-goe", None)
    FIGURE_BUILDERS.pop("toy-goe", None)


# --------------------------------------------------------------------- configs
def test_overrides_are_typed_and_reach_nested_configs() -> None:
    c = ToyConfig().with_overrides(
        ["size=12", "scale=2.5e-1", "exact=false", "inner.width=7", "inner.names=x,y,z"]
    )
    assert (c.size, c.scale, c.exact, c.inner.width) == (12, 0.25, False, 7)
    assert c.inner.names == ("x", "y", "z")
    assert ToyConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("items", "match"),
    [
        (["size=big"], r"size must be an integer \(e.g. 10\); got 'big'"),
        (["scale=fast"], r"scale must be a number"),
        (["exact=maybe"], r"exact must be true or false"),
        (["colour=red"], r"unknown setting\(s\) 'colour' for ToyConfig; known: "),
        (["inner.depth=2"], r"unknown setting\(s\) 'inner.depth' for _Inner"),
        (["size"], r"expected key=value"),
    ],
)
def test_bad_overrides_say_what_is_wrong(items, match) -> None:
    with pytest.raises(InputError, match=match):
        ToyConfig().with_overrides(items)


def test_toml_file_sits_on_the_preset_and_under_the_overrides(toy, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('scale = 3.0\nkind = "goe"\n[inner]\nwidth = 9\n')
    c = toy.config("paper", file=path, overrides=["scale=4"])
    assert (c.size, c.scale, c.kind, c.inner.width) == (40, 4.0, "goe", 9)
    (tmp_path / "bad.toml").write_text("scale = = 3")
    with pytest.raises(InputError, match="is not a readable TOML file"):
        toy.config(file=tmp_path / "bad.toml")
    with pytest.raises(InputError, match="has no preset 'huge'; presets: laptop, paper"):
        toy.config("huge")


def test_registry_refuses_unknown_names_and_studies_without_presets(toy) -> None:
    assert get_study("toy-goe") is toy
    with pytest.raises(InputError, match=r"no study named 'nope'; registered: .*toy-goe"):
        get_study("nope")
    bare = Study(**{**_TOY.__dict__, "name": "bare", "presets": {"laptop": {}}})
    with pytest.raises(InputError, match="needs a 'paper' preset"):
        register(bare)
    with pytest.raises(InputError, match="verdict must be one of"):
        Claim("c", "p", "o", "maybe")


# --------------------------------------------------------------------- the shell
def test_shell_writes_a_self_contained_report_with_claims_and_figures(toy, tmp_path) -> None:
    config = toy.config("laptop")
    result = toy.run(config)
    paths = write_study(toy, config, result, tmp_path)
    page = paths["report"].read_text(encoding="utf-8")
    assert "Paper vs ours" in page and "GOE matrix average" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 1
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page
    assert json.loads((tmp_path / "summary.json").read_text()) == {
        "largest": float(result.eigenvalues.max()),
        "nan": None,
    }
    assert json.loads((tmp_path / "claims.json").read_text())[0]["verdict"] == "agrees"
    assert ToyResult.load(tmp_path / "result").eigenvalues.tolist() == result.eigenvalues.tolist()


# --------------------------------------------------------------------- the CLI
def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_experiment_list_names_the_paper_000_study() -> None:
    res = _cli("experiment", "list")
    assert res.exit_code == 0 and "true-vs-empirical" in res.output and "paper 000" in res.output
    listed = json.loads(_cli("experiment", "list", "--json").output)
    assert {"name": "true-vs-empirical", "paper": "000"}.items() <= listed[0].items()


_SMALL = ("--set", "epochs=3", "--set", "views=2", "--set", "num_steps=12")
_SMALL += ("--set", "num_probes=1", "--set", "noise_probes=2")


def test_experiment_run_reproduces_curvscope_run(tmp_path: Path) -> None:
    res = _cli(
        "experiment",
        "run",
        "true-vs-empirical",
        "--preset",
        "laptop",
        *_SMALL,
        "--seed",
        "3",
        "--out",
        str(tmp_path / "exp"),
        "--json",
    )
    assert res.exit_code == 0, res.output
    exp = json.loads((tmp_path / "exp" / "summary.json").read_text())
    ran = _cli(
        "run",
        "--epochs",
        "3",
        "--views",
        "2",
        "--steps",
        "12",
        "--probes",
        "1",
        "--noise-probes",
        "2",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "run"),
    )
    assert ran.exit_code == 0, ran.output
    run = json.loads((tmp_path / "run" / "summary.json").read_text())
    for name in ("empirical", "augmented", "test"):
        # float32 products; the engine's timed choice among verified methods may differ
        for key, rel in (("smallest", 1e-5), ("largest", 1e-5), ("negative_mass", 1e-3)):
            assert exp["sets"][name][key] == pytest.approx(run["sets"][name][key], rel=rel)
    claims = json.loads((tmp_path / "exp" / "claims.json").read_text())
    assert len(claims) >= 3 and {c["verdict"] for c in claims} <= {
        "agrees",
        "partly",
        "disagrees",
        "not comparable",
    }
    for name in ("report.html", "result.json", "result.npz", "config.json", "training.png"):
        assert (tmp_path / "exp" / name).is_file(), name
    assert json.loads((tmp_path / "exp" / "config.json").read_text())["seed"] == 3


def test_experiment_run_bad_inputs_are_clean_errors(tmp_path: Path) -> None:
    for args, code, match in (
        (("nope",), 2, "no study named 'nope'"),
        (("true-vs-empirical", "--preset", "huge"), 2, "has no preset 'huge'"),
        (("true-vs-empirical", "--set", "views=many"), 2, "views must be an integer"),
        (("true-vs-empirical", "--config", str(tmp_path / "no.toml")), 2, "no config file"),
    ):
        res = _cli("experiment", "run", *args, "--out", str(tmp_path / "o"))
        assert res.exit_code == code and match in res.output, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_reproduce_writes_an_index_with_every_claim(toy, tmp_path: Path) -> None:
    out = tmp_path / "repro"
    res = _cli("reproduce", "--only", "toy-goe", "--out", str(out))
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="toy-goe/report.html"' in page and "Paper vs ours, every study" in page
    assert "GOE matrix average" in page
    assert (out / "toy-goe" / "report.html").is_file()
    assert json.loads((out / "index.json").read_text())[0]["study"] == "toy-goe"
    assert not (out / "toy-goe" / "resume-state").exists()
