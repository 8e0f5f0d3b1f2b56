"""The rmt layer is pure NumPy/SciPy (design.md): no module in it imports torch (the shared
checks of curvscope._validate import torch only inside the checks that need it)."""

from __future__ import annotations

import ast
from pathlib import Path

import curvscope.rmt


def test_rmt_modules_do_not_import_torch_or_higher_layers() -> None:
    root = Path(curvscope.rmt.__file__).parent
    files = sorted(root.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith("torch"), f"{path.name} imports {name}"
                top = name.split(".")[:2]
                if top[0] == "curvscope" and len(top) > 1:
                    # persistence and _validate are the package's shared bottom (beside errors)
                    assert top[1] in {"rmt", "errors", "persistence", "_validate"}, (
                        f"{path.name} imports {name} (a layer above or beside)"
                    )
