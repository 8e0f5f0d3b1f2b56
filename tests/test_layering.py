"""The layers of design.md: imports point only downward, never into another package's privates.

```
cli / report / plots        presentation
experiments                 studies
rmt | spectral              theory | spectral algorithms (neither imports the other)
operators                   curvature operators and the product engine
data / models / training    datasets, model zoo, training
bottom                      the modules of curvscope itself: errors, _validate, _outputs, ...
```

A module may import from its own layer or below. ``curvscope.<pkg>._name`` is private to
``<pkg>``: other packages use what ``<pkg>`` exports. The bottom modules of curvscope itself are
shared by all. (``curvscope/__init__.py`` and ``__main__.py`` sit above everything.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import curvscope

ROOT = Path(curvscope.__file__).parent

#: package -> level; a package may import packages of its own level or below, except the
#: sibling pairs in SEPARATE.
LEVELS = {
    "cli": 6,
    "report": 6,
    "plots": 6,
    "experiments": 5,
    "rmt": 4,
    "spectral": 4,
    "operators": 3,
    "data": 2,
    "models": 2,
    "training": 2,
}
SEPARATE = {frozenset({"rmt", "spectral"})}
#: the modules at the top of the tree (errors, _validate, _outputs, _memory, _version, ...)
BOTTOM = {p.stem for p in ROOT.glob("*.py")} - {"__init__", "__main__"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (also inside functions), resolved."""
    package = ".".join(("curvscope", *path.relative_to(ROOT).parent.parts))
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base == "curvscope":  # from curvscope import x: the module x if it is one
                out += [(node.lineno, f"curvscope.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, base))
    return out


def _violations() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if len(rel.parts) == 1:  # top-level modules
            if rel.name in {"__init__.py", "__main__.py"}:
                continue
            own, level = None, 1
        else:
            own, level = rel.parts[0], LEVELS[rel.parts[0]]
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "curvscope" or len(parts) < 2:
                continue
            target = parts[1]
            where = f"{rel}:{line} imports {name}"
            if target in BOTTOM:
                continue
            if target not in LEVELS:
                found.append(f"{where} (the curvscope package itself: import from the layer)")
                continue
            if target == own:
                continue
            if LEVELS[target] > level:
                found.append(f"{where} (a layer above)")
            elif frozenset({own, target}) in SEPARATE:
                found.append(f"{where} (a sibling layer kept apart)")
            if any(p.startswith("_") and not p.startswith("__") for p in parts[2:]):
                found.append(f"{where} (a private module of another package)")
    return found


def test_layers_import_only_downward_and_no_foreign_privates() -> None:
    violations = _violations()
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LEVELS)
