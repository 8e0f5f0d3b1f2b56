"""Study configurations: frozen dataclasses read from dicts, TOML files and ``key=value`` overrides.

Every study's ``Config`` derives from :class:`StudyConfig`. Fields may be scalars, tuples, dicts
or other ``StudyConfig``/frozen-dataclass configs (nested as TOML tables, addressed with dotted
keys: ``--set train.epochs=10``). Values are converted to the field's declared type, so a TOML
file or the command line cannot hand a study a string where it computes with a number; unknown
keys are refused with the list of known ones.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Toy(StudyConfig):
    ...     steps: int = 10
    ...     rate: float = 0.5
    >>> Toy().with_overrides(["steps=20", "rate=1e-3"])
    Toy(steps=20, rate=0.001)
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from curvscope.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "StudyConfig",
    "config_from_dict",
    "config_to_dict",
    "parse_overrides",
    "read_toml",
]

_C = TypeVar("_C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain nested dict of a dataclass config (tuples as lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def _convert(value: Any, kind: Any, where: str) -> Any:
    """``value`` as the annotated type ``kind`` (int, float, bool, str, tuples, unions, ...)."""
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[-1] if errors else f"{where}: cannot use {value!r}")
    if origin is typing.Literal:
        if value not in get_args(kind):
            allowed = ", ".join(repr(a) for a in get_args(kind))
            raise InputError(f"{where} must be one of {allowed}; got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where} must be a list (e.g. 1,2,3); got {value!r}")
        args = get_args(kind)
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a table/dict; got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a table of {kind.__name__} settings; got {value!r}")
        return config_from_dict(kind, value, where=where)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise InputError(f"{where} must be true or false; got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise InputError(f"{where} must be an integer; got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and number.is_integer():
                return int(number)
            if isinstance(number, int):
                return number
        except ValueError:
            pass
        raise InputError(f"{where} must be an integer (e.g. 10); got {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise InputError(f"{where} must be a number; got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InputError(f"{where} must be a number (e.g. 0.1); got {value!r}") from None
    if kind is str:
        return str(value)
    return value


def config_from_dict(cls: type[_C], data: dict[str, Any], *, where: str = "") -> _C:
    """``cls(**data)`` with nested tables and typed values; unknown keys raise InputError."""
    if not isinstance(data, dict):
        raise InputError(f"{where or cls.__name__} must be a table of settings; got {data!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(
            f"unknown setting(s) {', '.join(repr(f'{where}.{k}'.lstrip('.')) for k in unknown)} "
            f"for {cls.__name__}; known: {', '.join(sorted(known))}"
        )
    values = {
        k: _convert(v, hints.get(k, Any), f"{where}.{k}".lstrip(".")) for k, v in data.items()
    }
    try:
        return cls(**values)
    except TypeError as exc:
        raise InputError(f"cannot build {cls.__name__} from {sorted(data)}: {exc}") from None


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": "1"}, "c": "x"}`` (values typed later)."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected key=value (e.g. train.epochs=10); got {item!r}")
        node = tree
        parts = [p.strip() for p in key.split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"{key!r} sets a field inside {part!r}, which is not a table")
        node[parts[-1]] = value.strip()
    return tree


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file, with a clear error for a missing or malformed file."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no config file at {str(path)!r}; pass a TOML file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(
            f"{str(path)!r} is not a readable TOML file ({exc}); write settings as key = "
            "value lines, nested configs as [table] sections"
        ) from None


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class StudyConfig:
    """Mixin for a study's frozen config dataclass: dict, TOML and override round trips."""

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (JSON- and TOML-friendly)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Inverse of :meth:`to_dict`, converting values to the declared types."""
        return config_from_dict(cls, data)

    @classmethod
    def from_toml(cls: type[_C], path: str | Path) -> _C:
        """Read a config from a TOML file (nested configs as tables)."""
        return config_from_dict(cls, read_toml(path))

    def with_overrides(self: _C, items: list[str] | tuple[str, ...] | dict[str, Any]) -> _C:
        """A copy with ``key=value`` settings (dotted keys reach nested configs) applied."""
        if isinstance(items, dict):  # dotted keys ("inner.width") reach nested configs too
            update: dict[str, Any] = {}
            for key, value in items.items():
                node = update
                *parents, last = key.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[last] = value
        else:
            update = parse_overrides(items)
        return config_from_dict(type(self), _merge(config_to_dict(self), update))
