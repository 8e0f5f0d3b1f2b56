"""Saving and loading the rmt layer's frozen dataclasses: JSON for scalars, NPZ for arrays.

``save(result, path)`` writes ``path.json`` (the scalar fields, nested results and the class name)
and ``path.npz`` (every ``numpy.ndarray`` field, keyed by its dotted field path). ``load(path)``
reads them back into an equal object. Only classes decorated with :func:`savable` can be loaded, so
a JSON file can never name an arbitrary class.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from curvscope.errors import InputError

__all__ = ["load", "savable", "save"]

_REGISTRY: dict[str, type] = {}
T = TypeVar("T")


def savable(cls: type[T]) -> type[T]:
    """Register a frozen dataclass so that :func:`load` may rebuild it; adds ``save``/``load``."""
    _REGISTRY[cls.__name__] = cls

    def _save(self: Any, path: str | Path) -> tuple[Path, Path]:
        return save(self, path)

    def _load(klass: type, path: str | Path) -> Any:
        obj = load(path)
        if not isinstance(obj, klass):
            raise InputError(
                f"{path} holds a {type(obj).__name__}, not a {klass.__name__}; "
                f"load it with curvscope.rmt.load or {type(obj).__name__}.load"
            )
        return obj

    cls.save = _save  # type: ignore[attr-defined]
    cls.load = classmethod(_load)  # type: ignore[attr-defined]
    return cls


def _encode(obj: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if _REGISTRY.get(name) is not type(obj):
            raise InputError(f"{name} is not a savable curvscope result")
        fields = {
            f.name: _encode(getattr(obj, f.name), f"{prefix}{f.name}.", arrays)
            for f in dataclasses.fields(obj)
        }
        return {"__class__": name, "fields": fields}
    if isinstance(obj, np.ndarray):
        key = prefix.rstrip(".")
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, (tuple, list)):
        items = [_encode(v, f"{prefix}{i}.", arrays) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _encode(obj.item(), prefix, arrays)
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise InputError(f"cannot save a field of type {type(obj).__name__} (at {prefix!r})")


def _decode(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if "__class__" in obj:
            cls = _REGISTRY.get(obj["__class__"])
            if cls is None:
                raise InputError(f"unknown result class {obj['__class__']!r} in the JSON file")
            return cls(**{k: _decode(v, arrays) for k, v in obj["fields"].items()})
        if "__array__" in obj:
            return np.asarray(arrays[obj["__array__"]])
        if "__tuple__" in obj:
            return tuple(_decode(v, arrays) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
        raise InputError(f"unexpected object {obj!r} in the JSON file")
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def _stem(path: str | Path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npz") else path


def save(result: Any, path: str | Path) -> tuple[Path, Path]:
    """Write ``result`` to ``<path>.json`` and ``<path>.npz``; returns both paths."""
    stem = _stem(path)
    arrays: dict[str, np.ndarray] = {}
    payload = _encode(result, "", arrays)
    json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    json_path.write_text(json.dumps(payload, indent=1, sort_keys=True, allow_nan=False))
    np.savez(npz_path, **arrays)
    return json_path, npz_path


def load(path: str | Path) -> Any:
    """Read a result written by :func:`save` (give the stem, the .json or the .npz path)."""
    stem = _stem(path)
    json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    if not json_path.exists() or not npz_path.exists():
        raise InputError(
            f"expected {json_path} and {npz_path} (written by save); at least one is missing"
        )
    payload = json.loads(json_path.read_text())
    with np.load(npz_path, allow_pickle=False) as arrays:
        return _decode(payload, arrays)
