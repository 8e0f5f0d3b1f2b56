"""The docstring examples of the rmt layer run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "curvscope.rmt.laws",
    "curvscope.rmt.free",
    "curvscope.rmt.pennington_bahri",
    "curvscope.rmt.spiked",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
