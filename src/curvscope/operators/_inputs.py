"""Model inputs of any structure the model accepts: a tensor, a tuple or list, or a mapping.

A batch's inputs are handed to the model as its single argument, ``model(inputs)``, whatever
their structure: a tensor, a tuple or list of tensors (``forward(self, xs)`` unpacks it), or a
mapping of tensors (``dict``, ``collections.UserDict``, a Hugging Face-style ``BatchEncoding``,
nested to any depth). The engine needs four things from such a structure, all defined here:
its tensors (:func:`leaves`), the same structure with every tensor transformed
(:func:`map_tensors`, used to move to the device and cast floating tensors), the number of
samples (:func:`default_batch_size`, or the user's ``batch_size_fn``) and the first n samples
(:func:`take`, used by the small-batch checks). Non-tensor leaves (strings, ints, ``None``) are
passed through unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import torch

from curvscope.errors import InputError

__all__ = [
    "BatchSizeFn",
    "default_batch_size",
    "describe",
    "leaves",
    "map_tensors",
    "same_inputs",
    "take",
]

BatchSizeFn = Callable[[Any], int]


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def leaves(inputs: Any, path: str = "inputs") -> list[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf of ``inputs`` in a fixed order (mapping order, then index).

    Paths read like Python (``inputs['mask']``, ``inputs[1]``) so that error messages can name
    the offending tensor.
    """
    if isinstance(inputs, torch.Tensor):
        return [(path, inputs)]
    if isinstance(inputs, Mapping):
        out: list[tuple[str, Any]] = []
        for key in inputs:
            out += leaves(inputs[key], f"{path}[{key!r}]")
        return out
    if isinstance(inputs, (tuple, list)):
        out = []
        for i, item in enumerate(inputs):
            out += leaves(item, f"{path}[{i}]")
        return out
    return [(path, inputs)]


def _rebuild_mapping(original: Mapping, items: dict[Any, Any]) -> Mapping:
    if type(original) is dict:
        return items
    if isinstance(original, MutableMapping):
        # copy.copy keeps the mapping's class and extra attributes (UserDict, BatchEncoding)
        try:
            new = copy.copy(original)
            for key, value in items.items():
                new[key] = value
            return new
        except (TypeError, AttributeError, KeyError):
            pass
    try:
        return type(original)(items)  # type: ignore[call-arg]
    except (TypeError, ValueError):
        return items


def map_tensors(inputs: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``inputs`` with ``fn`` applied to every tensor, keeping the structure and its types."""
    if isinstance(inputs, torch.Tensor):
        return fn(inputs)
    if isinstance(inputs, Mapping):
        return _rebuild_mapping(inputs, {k: map_tensors(v, fn) for k, v in inputs.items()})
    if _is_namedtuple(inputs):
        return type(inputs)(*(map_tensors(v, fn) for v in inputs))
    if isinstance(inputs, (tuple, list)):
        items = [map_tensors(v, fn) for v in inputs]
        try:
            return type(inputs)(items)
        except TypeError:
            return tuple(items) if isinstance(inputs, tuple) else items
    return inputs


def describe(inputs: Any) -> str:
    """A short description for messages: ``(23, 5)`` for a tensor, shapes by path otherwise."""
    if isinstance(inputs, torch.Tensor):
        return str(tuple(inputs.shape))
    parts = [
        f"{path.removeprefix('inputs')}: "
        + (str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__)
        for path, v in leaves(inputs)
    ]
    return f"a {type(inputs).__name__} {{{', '.join(parts)}}}"


def default_batch_size(inputs: Any) -> int:
    """The shared first dimension of the tensors of ``inputs`` (a tensor, tuple or mapping).

    Raises :class:`InputError` when there is no tensor, a tensor is a scalar, or two tensors
    disagree: then only the user knows how many samples the batch holds (``batch_size_fn``).

    Example:
        >>> default_batch_size({"ids": torch.zeros(4, 7), "pair": (torch.zeros(4), torch.ones(4, 2))})
        4
    """
    tensors = [(p, t) for p, t in leaves(inputs) if isinstance(t, torch.Tensor)]
    fix = (
        "pass batch_size_fn=, a function of a batch's inputs that returns its number of samples "
        "(e.g. batch_size_fn=lambda x: x['input_ids'].shape[0])"
    )
    if not tensors:
        raise InputError(
            f"the inputs of a batch are a {type(inputs).__name__} without any tensor; inputs "
            "must be a tensor, a tuple/list of tensors or a mapping (dict) of tensors with the "
            f"samples along the first dimension, or {fix}"
        )
    scalars = [p for p, t in tensors if t.ndim == 0]
    if scalars:
        raise InputError(
            f"{scalars[0]} is a scalar tensor, so the number of samples in the batch is unknown; "
            f"the samples must lie along the first dimension, or {fix}"
        )
    sizes = {int(t.shape[0]) for _, t in tensors}
    if len(sizes) > 1:
        listed = ", ".join(f"{p} has {int(t.shape[0])}" for p, t in tensors)
        raise InputError(
            f"the tensors of a batch's inputs disagree on the first (batch) dimension ({listed}), "
            f"so the number of samples is ambiguous; {fix}"
        )
    return sizes.pop()


def take(inputs: Any, start: int, stop: int, size: int) -> Any:
    """Samples ``start:stop`` of a batch of ``size``: every tensor whose first dimension is
    ``size`` is sliced, other leaves (shared masks, scalars, strings) are kept whole."""

    def cut(t: torch.Tensor) -> torch.Tensor:
        return t[start:stop] if t.ndim and t.shape[0] == size else t

    return map_tensors(inputs, cut)


def same_inputs(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` have the same structure and bitwise-equal tensors."""
    la, lb = leaves(a), leaves(b)
    if len(la) != len(lb):
        return False
    for (pa, va), (pb, vb) in zip(la, lb):
        if pa != pb or isinstance(va, torch.Tensor) != isinstance(vb, torch.Tensor):
            return False
        if isinstance(va, torch.Tensor):
            if va.shape != vb.shape or va.dtype != vb.dtype or not torch.equal(va, vb):
                return False
        elif va != vb:
            return False
    return True
