"""One persistence for every result of curvscope: JSON for scalars, NPZ for arrays.

A result saved to ``path`` becomes two files written atomically (a temporary file, then a
rename): ``path.json`` holds the class name, the library version and every scalar, string, list,
tuple, dict and nested result, and ``path.npz`` holds every ``numpy.ndarray`` (and every
``torch.Tensor``, as an array; ``allow_pickle=False`` both ways). The two files share a random
save id, so a JSON file is never read with the arrays of another save.

Encoding (strict JSON, lossless):

* a registered frozen dataclass -> ``{"__class__": name, "fields": {...}}`` (only its ``init``
  fields); only classes registered with :func:`savable` can be loaded, so a file can never name
  an arbitrary class;
* a non-finite float -> ``{"__float__": "nan" | "inf" | "-inf"}`` (finite floats are written
  with ``repr``, which reads back bit for bit);
* a tuple -> ``{"__tuple__": [...]}``, a list -> a list;
* a dict with string keys none of which starts with ``__`` -> a JSON object, any other dict ->
  ``{"__dict__": [[key, value], ...]}``;
* an array -> ``{"__array__": key}``, a tensor -> ``{"__tensor__": key, "dtype": ...}``;
* a :class:`pathlib.Path` -> ``{"__path__": str}``; numpy scalars -> Python scalars.

Example:
    >>> import dataclasses, tempfile, numpy as np
    >>> from curvscope.persistence import savable
    >>> @savable
    ... @dataclasses.dataclass(frozen=True)
    ... class Demo:
    ...     values: np.ndarray
    ...     error: float
    >>> path = Demo(np.arange(3.0), float("nan")).save(tempfile.mkdtemp() + "/demo")
    >>> back = Demo.load(path)
    >>> back.values.tolist(), back.error != back.error
    ([0.0, 1.0, 2.0], True)
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from curvscope._outputs import write_atomic
from curvscope._version import __version__
from curvscope.errors import InputError

__all__ = ["load", "registered", "savable", "save"]

_FORMAT = "curvscope-result"
_FORMAT_VERSION = 1
_SAVE_ID = "__save_id__"
_REGISTRY: dict[str, type] = {}
_T = TypeVar("_T")


def savable(cls: type[_T]) -> type[_T]:
    """Register a frozen dataclass as a result; gives it ``save(path)`` and ``Cls.load(path)``.

    Registered names must be unique: a nested result is found by its class name on load.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"savable expects a dataclass, got {cls!r}")
    other = _REGISTRY.get(cls.__name__)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise TypeError(
            f"two result classes are named {cls.__name__!r} ({other.__module__} and "
            f"{cls.__module__}); rename one"
        )
    _REGISTRY[cls.__name__] = cls

    def _save(self: Any, path: str | os.PathLike[str]) -> Path:
        """Write ``<path>.json`` and ``<path>.npz`` (a ``.json``/``.npz`` suffix is dropped).

        Returns the stem; ``load`` takes it (or either file's path).
        """
        return save(self, path)

    def _load(klass: type[_T], path: str | os.PathLike[str]) -> _T:
        """Read a result written by ``save``; refuses a file that holds another class."""
        return load(path, cls=klass)

    if "save" not in cls.__dict__:
        cls.save = _save  # type: ignore[attr-defined]
    if "load" not in cls.__dict__:
        cls.load = classmethod(_load)  # type: ignore[attr-defined]
    return cls


def registered() -> dict[str, type]:
    """Every registered result class by name (a copy)."""
    return dict(_REGISTRY)


# ---------------------------------------------------------------------- encoding
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _key(self, where: str) -> str:
        key = where or "value"
        n = 1
        while key in self.arrays or key == _SAVE_ID:
            n += 1
            key = f"{where}#{n}"
        return key

    def encode(self, obj: Any, where: str) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            name = type(obj).__name__
            if _REGISTRY.get(name) is not type(obj):
                raise InputError(
                    f"cannot save a {name} (at {where or 'top level'!r}): it is not a savable "
                    "curvscope result; decorate its class with curvscope.persistence.savable"
                )
            fields = {
                f.name: self.encode(getattr(obj, f.name), _join(where, f.name))
                for f in dataclasses.fields(obj)
                if f.init
            }
            return {"__class__": name, "fields": fields}
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise InputError(
                    f"cannot save an object array (at {where!r}); convert it to a numeric array"
                )
            key = self._key(where)
            self.arrays[key] = obj
            return {"__array__": key}
        if type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "detach"):
            return self._tensor(obj, where)
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, _join(where, str(i))) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, _join(where, str(i))) for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
            if plain:
                return {k: self.encode(v, _join(where, k)) for k, v in obj.items()}
            return {
                "__dict__": [
                    [self.encode(k, where), self.encode(v, _join(where, str(k)))]
                    for k, v in obj.items()
                ]
            }
        if isinstance(obj, (np.floating, np.integer, np.bool_)):
            return self.encode(obj.item(), where)
        if isinstance(obj, float) and not math.isfinite(obj):
            return {"__float__": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, Path):
            return {"__path__": str(obj)}
        raise InputError(
            f"cannot save a value of type {type(obj).__name__} (at {where!r}); a result holds "
            "numbers, strings, arrays, tensors, lists, tuples, dicts and other results"
        )

    def _tensor(self, tensor: Any, where: str) -> Any:
        import torch

        t = tensor.detach().cpu()
        dtype = str(t.dtype).removeprefix("torch.")
        if t.dtype == torch.bfloat16:
            t = t.float()  # numpy has no bfloat16; float32 holds every bfloat16 value exactly
        key = self._key(where)
        self.arrays[key] = t.numpy()
        return {"__tensor__": key, "dtype": dtype}


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _float(text: Any) -> float:
    if text not in ("nan", "inf", "-inf"):
        raise ValueError(f"bad non-finite float {text!r}")
    return float(text)


class _Decoder:
    def __init__(self, arrays: Any, source: Path) -> None:
        self.arrays = arrays
        self.source = source

    def array(self, key: Any) -> np.ndarray:
        if key not in self.arrays.files:
            raise InputError(
                f"{self.source} names an array {key!r} that its .npz file does not hold; the "
                "pair was altered or mixed with another save: save the result again"
            )
        return np.array(self.arrays[key])

    def decode(self, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self.decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if "__class__" in obj:
            name = obj["__class__"]
            cls = _REGISTRY.get(name)
            if cls is None:
                raise InputError(
                    f"{self.source} holds a {name!r}, which is not a curvscope result class "
                    f"(known: {', '.join(sorted(_REGISTRY))}); was it written by another "
                    "version of curvscope?"
                )
            fields = {k: self.decode(v) for k, v in obj["fields"].items()}
            try:
                return cls(**fields)
            except TypeError as exc:
                raise InputError(
                    f"{self.source} holds a {name} whose fields do not match this version of "
                    f"curvscope ({exc}); load it with the version that wrote it"
                ) from None
        if "__array__" in obj:
            return self.array(obj["__array__"])
        if "__tensor__" in obj:
            import torch

            values = torch.from_numpy(self.array(obj["__tensor__"]))
            return values.to(getattr(torch, obj["dtype"]))
        if "__tuple__" in obj:
            return tuple(self.decode(v) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_hashable(self.decode(k)): self.decode(v) for k, v in obj["__dict__"]}
        if "__float__" in obj:
            return _float(obj["__float__"])
        if "__path__" in obj:
            return Path(obj["__path__"])
        return {k: self.decode(v) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


# ---------------------------------------------------------------------- files
def _stem(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npz") else path


def save(result: Any, path: str | os.PathLike[str]) -> Path:
    """Write a registered result to ``<path>.json`` and ``<path>.npz``; returns the stem.

    A ``.json`` or ``.npz`` suffix on ``path`` is dropped. Each file is written through a
    temporary file and a rename (the NPZ first), so a reader never sees half a file.

    Raises:
        InputError: ``result`` is not a registered result or holds a value that cannot be saved.
    """
    stem = _stem(path)
    if not (dataclasses.is_dataclass(result) and not isinstance(result, type)):
        raise InputError(
            f"save expects a curvscope result (a frozen dataclass such as SpectralDensity), "
            f"got {type(result).__name__}"
        )
    encoder = _Encoder()
    data = encoder.encode(result, "")
    save_id = uuid.uuid4().hex
    payload = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "class": type(result).__name__,
        "curvscope_version": __version__,
        "save_id": save_id,
        "data": data,
    }
    text = json.dumps(payload, indent=1, allow_nan=False)  # key order kept: dicts round-trip
    stem.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **encoder.arrays, **{_SAVE_ID: np.array(save_id)})
    write_atomic(stem.with_suffix(".npz"), buffer.getvalue())
    write_atomic(stem.with_suffix(".json"), text)
    return stem


def load(path: str | os.PathLike[str], *, cls: type[_T] | None = None) -> _T:
    """Read a result written by :func:`save` (give the stem or either file's path).

    Args:
        path: the stem, ``<stem>.json`` or ``<stem>.npz``.
        cls: the class expected (``None``: any registered result).

    Raises:
        InputError: a file is missing, corrupt or truncated, the two files come from different
            saves, or the file holds another class than ``cls``.
    """
    stem = _stem(path)
    expected = cls.__name__ if cls is not None else "result"
    json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
    missing = [p.name for p in (json_path, npz_path) if not p.is_file()]
    if missing:
        raise InputError(
            f"loading a {expected} from {str(path)!r} expects {json_path.name} and "
            f"{npz_path.name} in {str(stem.parent)!r} (written by save); missing: "
            f"{', '.join(missing)}; at least one is missing. Check the path"
        )
    try:
        payload = json.loads(json_path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError("not a curvscope result file")
        name = payload["class"]
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{json_path} is not a readable curvscope result ({exc}); the file is corrupt or "
            "truncated, or was not written by curvscope's save: save the result again"
        ) from None
    if cls is not None and name != cls.__name__:
        raise InputError(
            f"{json_path} holds a {name!r}, not a {cls.__name__}; load it with {name}.load "
            "or curvscope.persistence.load"
        )
    try:
        with np.load(npz_path, allow_pickle=False) as arrays:
            if _SAVE_ID not in arrays.files or str(arrays[_SAVE_ID]) != payload.get("save_id"):
                raise InputError(
                    f"{npz_path.name} and {json_path.name} come from different saves (an "
                    "interrupted save or a copied file); save the result again"
                )
            result = _Decoder(arrays, json_path).decode(payload.get("data"))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(
            f"{npz_path} is not a readable array file ({type(exc).__name__}: {exc}); the file is "
            "corrupt or truncated: save the result again"
        ) from None
    if cls is not None and not isinstance(result, cls):
        raise InputError(f"{json_path} holds a {type(result).__name__}, not a {cls.__name__}")
    return result  # type: ignore[no-any-return]
