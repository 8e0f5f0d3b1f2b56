"""The fast hostile-input cases of ``benchmarks/hostile.py`` all end OK (no traceback, no
silent wrong result, no data loss, no unclear message)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile.py"


def _hostile():
    spec = importlib.util.spec_from_file_location("curvscope_hostile", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


def test_fast_hostile_cases_are_all_ok() -> None:
    hostile = _hostile()
    cases = [c for c in hostile.build_cases() if c.fast]
    assert len(cases) >= 110
    results = hostile.run_cases(cases)
    bad = [f"{v} {c.name}: {d}" for c, v, d, _ in results if v != "OK"]
    assert not bad, "\n".join(bad)


def test_the_full_script_has_at_least_110_distinct_cases() -> None:
    cases = _hostile().build_cases()
    assert len(cases) >= 110
    assert len({c.name for c in cases}) == len(cases)


@pytest.mark.parametrize(
    ("message", "verdict"),
    [
        ("short", "UNCLEAR"),
        ("x" * 50, "UNCLEAR"),
        ("lr must be a finite number in (0, inf), got 'fast'; e.g. 0.1", "OK"),
        ("could not load; Re-running with weights_only=False must be avoided", "UNCLEAR"),
    ],
)
def test_message_heuristic(message, verdict) -> None:
    assert _hostile().message_verdict(message)[0] == verdict
