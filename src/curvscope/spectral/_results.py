"""Saving and loading frozen result dataclasses: JSON for scalars, NPZ for arrays.

A result saved to ``path`` becomes two files, ``path.json`` (every scalar, string, list and dict
field, plus the class name and library version) and ``path.npz`` (every ``numpy.ndarray`` field).
Loading checks the class name so that a ``TraceEstimate`` file is never read as a
``SpectralDensity``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from curvscope._outputs import json_safe, write_atomic
from curvscope._version import __version__
from curvscope.errors import InputError

__all__ = ["SavableResult"]

_T = TypeVar("_T", bound="SavableResult")


def _stem(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npz") else path


class SavableResult:
    """Mixin for frozen dataclasses: :meth:`save` writes ``path.json`` + ``path.npz``.

    Array fields (``numpy.ndarray`` or ``None`` annotated as arrays) go to the NPZ file; all other
    fields must be JSON-serialisable.
    """

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``<path>.json`` and ``<path>.npz`` (any ``.json``/``.npz`` suffix is dropped).

        Returns the stem path; :meth:`load` takes the same path.
        """
        stem = _stem(path)
        stem.parent.mkdir(parents=True, exist_ok=True)
        scalars: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        none_arrays: list[str] = []
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                arrays[field.name] = value
            elif value is None and "ndarray" in str(field.type):
                none_arrays.append(field.name)
            else:
                scalars[field.name] = value
        meta = {
            "class": type(self).__name__,
            "curvscope_version": __version__,
            "none_arrays": none_arrays,
            "fields": scalars,
        }
        # Strict JSON: a NaN or infinite float is written as null (read back as NaN by load).
        write_atomic(
            stem.with_suffix(".json"), json.dumps(json_safe(meta), indent=2, sort_keys=True)
        )
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomic(stem.with_suffix(".npz"), buffer.getvalue())
        return stem

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike[str]) -> _T:
        """Read a result written by :meth:`save` (``path`` with or without suffix)."""
        stem = _stem(path)
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        if not json_path.exists() or not npz_path.exists():
            raise InputError(
                f"{cls.__name__}.load({str(path)!r}) expects {json_path.name} and {npz_path.name} "
                f"in {stem.parent}, written by {cls.__name__}.save; at least one is missing"
            )
        meta = json.loads(json_path.read_text())
        if meta.get("class") != cls.__name__:
            raise InputError(
                f"{json_path} holds a {meta.get('class')!r}, not a {cls.__name__}; load it with "
                f"{meta.get('class')}.load"
            )
        kwargs: dict[str, Any] = dict(meta["fields"])
        for name in meta.get("none_arrays", []):
            kwargs[name] = None
        with np.load(npz_path, allow_pickle=False) as data:
            for name in data.files:
                kwargs[name] = data[name]
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if kwargs.get(field.name, 0) is None and str(field.type) == "float":
                kwargs[field.name] = math.nan
            if isinstance(kwargs.get(field.name), list) and "tuple" in str(field.type):
                kwargs[field.name] = tuple(kwargs[field.name])
        return cls(**kwargs)
