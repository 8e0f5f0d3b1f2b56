"""Every docstring example in the package runs and prints what it says (curvlinops runs its
doctests; style.md: "every docstring example in the package runs")."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import curvscope

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(curvscope.__path__, prefix="curvscope.")
)


def test_every_module_is_collected() -> None:
    assert "curvscope.operators.hessian" in MODULES and "curvscope.rmt.laws" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=True
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
