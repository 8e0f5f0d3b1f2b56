"""The README's two opening commands are the contract with a new user and with CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.DOTALL)[:2]


def test_readme_opens_with_setup_and_test_commands() -> None:
    setup, test = _readme_commands()
    assert "pip install torch==2.13.0" in setup
    assert "pip install -e" in setup
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = _readme_commands()
    pytest_part = test.split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert pytest_part in ci, f"{pytest_part!r} is not what .ci/run runs"
