"""Turning the user's data into validated, re-iterable (inputs, targets) batches.

Accepted: a ``torch.utils.data.DataLoader``, any re-iterable of ``(inputs, targets)`` batches
(a list, a custom object with ``__iter__``), or one ``(inputs, targets)`` pair of tensors, which is
split into batches of ``batch_size``. One-shot iterators (generators) are refused: a curvature
operator passes over its data once per product.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from curvscope._validate import check_int
from curvscope.errors import InputError, NonDeterministicError, NonFiniteError
from curvscope.operators.base import digest

__all__ = ["Batch", "BatchSource"]


@dataclass
class Batch:
    """One validated batch, already on the operator's device and in its dtype."""

    index: int
    inputs: torch.Tensor
    targets: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0])


def _is_tensor_pair(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    )


class BatchSource:
    """Validated, deterministic passes over a finite dataset.

    Args:
        data: a DataLoader, a re-iterable of ``(inputs, targets)`` batches, or one pair of tensors.
        device: where batches are moved.
        dtype: floating inputs (and floating targets) are cast to it.
        batch_size: split size for a single ``(inputs, targets)`` pair (default: one batch).
    """

    def __init__(
        self,
        data: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int | None = None,
    ) -> None:
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1, expected="a positive integer or None")
        if _is_tensor_pair(data):
            inputs, targets = data
            self._check_lengths(inputs, targets, where="the (inputs, targets) pair")
            step = batch_size or max(int(inputs.shape[0]), 1)
            self._data: Iterable[Any] = [
                (inputs[i : i + step], targets[i : i + step])
                for i in range(0, int(inputs.shape[0]), step)
            ]
        elif isinstance(data, torch.Tensor):
            raise InputError(
                "data is a single tensor; curvature needs targets too: pass (inputs, targets), a "
                "DataLoader or a list of (inputs, targets) batches"
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
        self._fingerprints: list[tuple[int, float]] | None = None
        self._probe = torch.Generator().manual_seed(20250)

    @staticmethod
    def _check_lengths(inputs: Any, targets: Any, *, where: str) -> None:
        if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise InputError(
                f"{where} holds {type(inputs).__name__} inputs and {type(targets).__name__} targets; "
                "both must be torch.Tensors with the batch along the first dimension"
            )
        if inputs.ndim == 0 or targets.ndim == 0 or inputs.shape[0] != targets.shape[0]:
            n_in = inputs.shape[0] if inputs.ndim else "a scalar"
            n_t = targets.shape[0] if targets.ndim else "a scalar"
            raise InputError(
                f"{where} has {n_in} inputs and {n_t} targets; each batch must be (inputs, "
                "targets) of the same length along the first dimension"
            )

    def _validate(self, raw: Any, index: int) -> Batch:
        if isinstance(raw, dict) or not isinstance(raw, (tuple, list)) or len(raw) != 2:
            what = f"a {type(raw).__name__}" + (
                f" of length {len(raw)}" if isinstance(raw, (tuple, list)) else ""
            )
            raise InputError(
                f"batch {index} of the data is {what}; each batch must be a pair (inputs, targets). "
                "Wrap a dataset that yields dicts or single tensors so that it yields (inputs, targets)"
            )
        inputs, targets = raw
        self._check_lengths(inputs, targets, where=f"batch {index} of the data")
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        if inputs.is_floating_point():
            inputs = inputs.to(self.dtype)
        if targets.is_floating_point():
            targets = targets.to(self.dtype)
        return Batch(index, inputs, targets)

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
        """Hex digest of the exact bytes of every validated batch, in order (one reading pass)."""
        items: list[Any] = []
        for batch in self.batches():
            items += [batch.index, batch.inputs, batch.targets]
        if not items:
            raise self._empty_error()
        return digest(items)

    # ------------------------------------------------------------------ determinism
    def _fingerprint(self, batch: Batch) -> tuple[int, float]:
        """A cheap content hash: a fixed random projection of inputs and targets (order-aware)."""
        parts = []
        for t in (batch.inputs, batch.targets):
            flat = t.reshape(batch.size, -1).to(torch.float64)
            w = torch.rand(
                flat.shape[1], generator=self._probe.manual_seed(flat.shape[1]), dtype=torch.float64
            )
            pos = torch.linspace(1.0, 2.0, batch.size, dtype=torch.float64)
            parts.append(float((flat @ w.to(flat.device)).cpu() @ pos))
        return batch.size, parts[0] + 1e-3 * parts[1]

    def checked(self, batches: Iterable[Batch]) -> Iterator[Batch]:
        """Pass batches through while comparing their fingerprints with the first full pass.

        Costs a random projection per batch (one read of the batch); raises
        :class:`NonDeterministicError` as soon as a batch differs from the same batch of an
        earlier pass.
        """
        record = self._fingerprints is None
        seen: list[tuple[int, float]] = []
        for batch in batches:
            fp = self._fingerprint(batch)
            if fp[1] != fp[1] or abs(fp[1]) == float("inf"):  # NaN or inf propagate into the hash
                raise NonFiniteError(
                    f"batch {batch.index} of the data holds NaN or inf values in its inputs or "
                    "targets; curvature is undefined there. Clean the data (e.g. torch.nan_to_num "
                    "or drop those samples)"
                )
            if not record:
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
            a.inputs.shape == b.inputs.shape
            and a.targets.shape == b.targets.shape
            and torch.equal(a.inputs, b.inputs)
            and torch.equal(a.targets, b.targets)
        ):
            raise NonDeterministicError(_changed_message("the first batch"))


def _same(a: tuple[int, float], b: tuple[int, float]) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-9 * max(abs(a[1]), abs(b[1]), 1e-300)


def _changed_message(what: str) -> str:
    return (
        f"the data changed between two passes ({what} differed). A curvature operator must be "
        "one fixed matrix for every product, or Lanczos returns garbage. Usual causes: random "
        "augmentation in the dataset's transform, or DataLoader(shuffle=True). Fix: use "
        "shuffle=False and no random transforms; for augmented data use "
        "curvscope.data.AugmentedViews, whose views are frozen. If only the order changes and you "
        "accept rounding differences, pass check_deterministic=False."
    )
