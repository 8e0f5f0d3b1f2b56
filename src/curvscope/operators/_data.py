"""Turning the user's data into validated, re-iterable (inputs, targets) batches.

Accepted: a ``torch.utils.data.DataLoader``, any re-iterable of ``(inputs, targets)`` batches
(a list, a custom object with ``__iter__``), or one ``(inputs, targets)`` pair, which is split
into batches of ``batch_size``. One-shot iterators (generators) are refused: a curvature
operator passes over its data once per product.

``inputs`` may be anything the model takes as its one argument: a tensor, a tuple or list of
tensors, or a mapping of tensors (``dict``, ``UserDict``, a Hugging Face-style batch), see
:mod:`curvscope.operators._inputs`. ``targets`` is a tensor with the samples along its first
dimension. The number of samples of a batch is the shared first dimension of its input tensors,
or what the user's ``batch_size_fn(inputs)`` returns.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from curvscope._validate import check_int, is_int
from curvscope.errors import InputError, NonDeterministicError, NonFiniteError
from curvscope.operators._inputs import (
    BatchSizeFn,
    default_batch_size,
    describe,
    leaves,
    map_tensors,
    same_inputs,
    take,
)
from curvscope.operators.base import digest

__all__ = ["Batch", "BatchSource"]


@dataclass
class Batch:
    """One validated batch, already on the operator's device and in its dtype.

    ``inputs`` has the structure the user gave (tensor, tuple, mapping); ``size`` is its number
    of samples, which is also the length of ``targets``.
    """

    index: int
    inputs: Any
    targets: torch.Tensor
    size: int

    def head(self, num: int) -> Batch:
        """The first ``num`` samples as a batch, for the small-batch checks.

        Sliced only where that is unambiguous: when every input tensor has the batch along its
        first dimension. Otherwise (inputs that need a ``batch_size_fn``, where a shared tensor
        may have the batch size by coincidence) the whole batch is returned: correct, only
        slower.
        """
        if num >= self.size or not sliceable(self.inputs, self.size):
            return self
        return Batch(self.index, take(self.inputs, 0, num, self.size), self.targets[:num], num)


def sliceable(inputs: Any, size: int) -> bool:
    """True when every tensor of ``inputs`` has ``size`` rows (the default batch-size rule)."""
    try:
        return default_batch_size(inputs) == size
    except InputError:
        return False


def _is_structure_of_tensors(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return True
    if not isinstance(x, (tuple, list, Mapping)):
        return False
    found = leaves(x)
    return bool(found) and all(isinstance(t, torch.Tensor) for _, t in found)


def _is_single_pair(data: Any) -> bool:
    """One ``(inputs, targets)`` pair: a tensor of targets after a tensor or a structure of
    tensors. A list of batches never has a bare tensor as its second element."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[1], torch.Tensor)
        and _is_structure_of_tensors(data[0])
    )


class BatchSource:
    """Validated, deterministic passes over a finite dataset.

    Args:
        data: a DataLoader, a re-iterable of ``(inputs, targets)`` batches, or one pair.
        device: where batches are moved (every tensor of the inputs, recursively).
        dtype: floating input tensors (and floating targets) are cast to it; integer tensors
            (token ids, masks, class labels) keep their dtype.
        batch_size: split size for a single ``(inputs, targets)`` pair (default: one batch).
        batch_size_fn: ``inputs -> number of samples``; default: the shared first dimension of
            the input tensors (an error when they disagree).
    """

    def __init__(
        self,
        data: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int | None = None,
        batch_size_fn: BatchSizeFn | None = None,
    ) -> None:
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1, expected="a positive integer or None")
        if batch_size_fn is not None and not callable(batch_size_fn):
            raise InputError(
                "batch_size_fn must be a function of a batch's inputs that returns its number of "
                f"samples (e.g. lambda x: x['input_ids'].shape[0]); got {type(batch_size_fn).__name__}"
            )
        self.batch_size_fn = batch_size_fn
        if _is_single_pair(data):
            inputs, targets = data
            where = "the (inputs, targets) pair"
            size = self._size(inputs, where=where)
            self._check_lengths(size, targets, where=where)
            step = batch_size or max(size, 1)
            if step < size and not sliceable(inputs, size):
                raise InputError(
                    f"batch_size={batch_size} asks to split the (inputs, targets) pair, but its "
                    f"inputs ({describe(inputs)}) are not all tensors with the {size} samples "
                    "along the first dimension, so where to cut is ambiguous; pass a list of "
                    "(inputs, targets) batches or a DataLoader instead"
                )
            self._data: Iterable[Any] = [
                (take(inputs, i, i + step, size), targets[i : i + step])
                for i in range(0, size, step)
            ]
        elif isinstance(data, torch.Tensor):
            raise InputError(
                "data is a single tensor; curvature needs targets too: pass (inputs, targets), a "
                "DataLoader or a list of (inputs, targets) batches"
            )
        elif isinstance(data, Mapping):
            raise InputError(
                f"data is a {type(data).__name__} (a mapping); curvature needs (inputs, targets): "
                "pass the pair (inputs_mapping, targets), e.g. ({'x': x}, y), a DataLoader or a "
                "list of such pairs"
            )
        elif isinstance(data, Iterator):
            raise InputError(
                f"data is a one-shot iterator ({type(data).__name__}): a curvature operator passes "
                "over its data once per product. Pass a DataLoader, a list of (inputs, targets) "
                "batches, or one (inputs, targets) pair of tensors instead"
            )
        elif isinstance(data, Iterable):
            self._data = data
            # Refuse visibly empty data now, not at the first product (a DataLoader's len is
            # its number of batches; a re-iterable without len is checked at the first pass).
            try:
                empty = len(data) == 0  # type: ignore[arg-type]
            except TypeError:
                empty = False
            if empty:
                raise self._empty_error()
        else:
            raise InputError(
                f"data must be a DataLoader, an iterable of (inputs, targets) batches or an "
                f"(inputs, targets) pair of tensors; got {type(data).__name__}"
            )
        self.device = device
        self.dtype = dtype
        self._fingerprints: list[tuple[int, tuple[float, ...]]] | None = None
        self._probe = torch.Generator().manual_seed(20250)
        self._projections: dict[
            tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]
        ] = {}

    def _size(self, inputs: Any, *, where: str) -> int:
        """The number of samples of ``inputs`` (``batch_size_fn`` or the shared first dimension)."""
        if self.batch_size_fn is None:
            if isinstance(inputs, torch.Tensor) and inputs.ndim == 0:
                raise InputError(
                    f"{where} holds scalar inputs; inputs must have the samples along the first "
                    "dimension"
                )
            try:
                return default_batch_size(inputs)
            except InputError as err:
                raise InputError(f"{where}: {err}") from None
        try:
            size = self.batch_size_fn(inputs)
        except Exception as err:
            raise InputError(
                f"batch_size_fn failed on {where} (inputs {describe(inputs)}): "
                f"{type(err).__name__}: {err}"
            ) from err
        if isinstance(size, torch.Tensor) and size.numel() == 1 and not size.is_floating_point():
            size = int(size)
        if not is_int(size, minimum=0):
            raise InputError(
                f"batch_size_fn returned {size!r} for {where}; it must return the number of "
                "samples in the batch as a non-negative int"
            )
        return int(size)

    @staticmethod
    def _check_lengths(size: int, targets: Any, *, where: str) -> None:
        if not isinstance(targets, torch.Tensor):
            raise InputError(
                f"{where} holds {type(targets).__name__} targets; targets must be a torch.Tensor "
                "with the samples along the first dimension"
            )
        if targets.ndim == 0 or targets.shape[0] != size:
            n_t = targets.shape[0] if targets.ndim else "a scalar"
            raise InputError(
                f"{where} has {size} inputs and {n_t} targets; each batch must be (inputs, "
                "targets) of the same length along the first dimension"
            )

    def _validate(self, raw: Any, index: int) -> Batch:
        if isinstance(raw, Mapping) or not isinstance(raw, (tuple, list)) or len(raw) != 2:
            what = f"a {type(raw).__name__}" + (
                f" of length {len(raw)}" if isinstance(raw, (tuple, list)) else ""
            )
            raise InputError(
                f"batch {index} of the data is {what}; each batch must be a pair (inputs, targets), "
                "where inputs may be a tensor, a tuple or a mapping of tensors. Wrap a dataset "
                "whose batches are dicts holding the labels so that it yields (inputs, targets), "
                "e.g. ({k: v for k, v in batch.items() if k != 'labels'}, batch['labels'])"
            )
        inputs, targets = raw
        where = f"batch {index} of the data"
        if isinstance(targets, torch.Tensor):
            targets = targets.to(self.device, non_blocking=True)
            if targets.is_floating_point():
                targets = targets.to(self.dtype)
        inputs = map_tensors(inputs, self._convert)
        size = self._size(inputs, where=where)
        self._check_lengths(size, targets, where=where)
        return Batch(index, inputs, targets, size)

    def _convert(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.to(self.dtype) if t.is_floating_point() else t

    def first_batch(self) -> Batch:
        """The first non-empty batch of a fresh pass (used by checks, not by products)."""
        for batch in self.batches():
            return batch
        raise self._empty_error()

    @staticmethod
    def _empty_error() -> InputError:
        return InputError(
            "the data is empty: it yielded no samples; curvature is an average over a dataset, "
            "pass at least one (inputs, targets) batch"
        )

    def batches(self) -> Iterator[Batch]:
        """One pass: validated, non-empty batches with their running index."""
        index = 0
        for raw in self._data:
            batch = self._validate(raw, index)
            if batch.size == 0:
                continue
            yield batch
            index += 1

    def digest(self) -> str:
        """Hex digest of the exact bytes of every validated batch, in order (one reading pass).

        Structured inputs contribute every leaf with its path (``inputs['mask']``), so renaming a
        key or reordering a tuple changes the digest; tensor inputs hash as they always have.
        """
        items: list[Any] = []
        for batch in self.batches():
            items.append(batch.index)
            if isinstance(batch.inputs, torch.Tensor):
                items.append(batch.inputs)
            else:
                items.append(type(batch.inputs).__name__)
                for path, leaf in leaves(batch.inputs):
                    items += [path, leaf]
            items.append(batch.targets)
        if not items:
            raise self._empty_error()
        return digest(items)

    # ------------------------------------------------------------------ determinism
    def _project(self, t: torch.Tensor, size: int) -> float:
        """A fixed random projection of ``t``, weighted by sample position (order-aware)."""
        rows = size if t.ndim and t.shape[0] == size else 1
        flat = t.reshape(rows, -1).to(torch.float64)
        key = (rows, flat.shape[1], flat.device)
        if key not in self._projections:  # drawn once per shape: a product re-checks each batch
            w = torch.rand(
                flat.shape[1], generator=self._probe.manual_seed(flat.shape[1]), dtype=torch.float64
            )
            pos = torch.linspace(1.0, 2.0, rows, dtype=torch.float64)
            self._projections[key] = (w.to(flat.device), pos)
        w, pos = self._projections[key]
        return float((flat @ w).cpu() @ pos)

    def _fingerprint(self, batch: Batch) -> tuple[int, tuple[float, ...]]:
        """A cheap content hash: one projection per input tensor and of the targets.

        Non-tensor leaves of structured inputs (strings, ints) count by a CRC of their repr.
        """
        parts = []
        for _, leaf in leaves(batch.inputs):
            if isinstance(leaf, torch.Tensor):
                parts.append(self._project(leaf, batch.size))
            else:
                parts.append(float(zlib.crc32(repr(leaf).encode())))
        parts.append(self._project(batch.targets, batch.size))
        return batch.size, tuple(parts)

    def checked(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        """Pass batches through while comparing their fingerprints with the first full pass.

        Costs a random projection per batch (one read of the batch); raises
        :class:`NonDeterministicError` as soon as a batch differs from the same batch of an
        earlier pass.
        """
        record = self._fingerprints is None
        seen: list[tuple[int, tuple[float, ...]]] = []
        for batch in batches:
            fp = self._fingerprint(batch)
            # NaN or inf propagate into the projections
            if any(v != v or abs(v) == float("inf") for v in fp[1]):
                raise NonFiniteError(
                    f"batch {batch.index} of the data holds NaN or inf values in its inputs or "
                    "targets; curvature is undefined there. Clean the data (e.g. torch.nan_to_num "
                    "or drop those samples)"
                )
            if not record:
                assert self._fingerprints is not None
                if batch.index >= len(self._fingerprints) or not _same(
                    fp, self._fingerprints[batch.index]
                ):
                    raise NonDeterministicError(_changed_message(f"batch {batch.index}"))
            seen.append(fp)
            yield batch
        if record:
            self._fingerprints = seen
        elif len(seen) != len(self._fingerprints):
            raise NonDeterministicError(
                _changed_message(
                    f"the number of batches ({len(self._fingerprints)} then {len(seen)})"
                )
            )

    def check_first_batch_repeats(self, first: Batch) -> None:
        """A fresh pass must start with ``first`` again (random augmentation, shuffling)."""
        a, b = first, self.first_batch()
        if not (
            a.size == b.size
            and a.targets.shape == b.targets.shape
            and torch.equal(a.targets, b.targets)
            and same_inputs(a.inputs, b.inputs)
        ):
            raise NonDeterministicError(_changed_message("the first batch"))


def _same(a: tuple[int, tuple[float, ...]], b: tuple[int, tuple[float, ...]]) -> bool:
    return (
        a[0] == b[0]
        and len(a[1]) == len(b[1])
        and all(abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1e-300) for x, y in zip(a[1], b[1]))
    )


def _changed_message(what: str) -> str:
    return (
        f"the data changed between two passes ({what} differed). A curvature operator must be "
        "one fixed matrix for every product, or Lanczos returns garbage. Usual causes: random "
        "augmentation in the dataset's transform, or DataLoader(shuffle=True). Fix: use "
        "shuffle=False and no random transforms; for augmented data use "
        "curvscope.data.AugmentedViews, whose views are frozen. If only the order changes and you "
        "accept rounding differences, pass check_deterministic=False."
    )
