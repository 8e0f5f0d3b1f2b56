"""Memory of a block product on a batch prepared afresh, and the sub-blocks that fit a budget.

Without a cached graph, a block ``V`` of k columns costs one forward and one first backward per
batch (the *state*, shared by all k columns) and then the column work. The vmapped methods
(``rev-rev-batched``, ``fwd-rev``, ``rev-batched``, ``fwd``) hold the intermediates of all k
columns at once, so their peak grows linearly in k; the column loops (``rev-rev``, ``rev``) free
each column's intermediates before the next. Measured on the small CNN of issue 16 (256 samples,
float32): the retained graph is 321 MB, ``rev-rev`` peaks at 658 MB for any k, ``rev-rev-batched``
at 658, 899, 1477 MB for k = 1, 2, 4 and ``fwd-rev`` at 859, 1324, 2255 MB.

The memory model: for each method m, the peak bytes allocated while preparing the first
uncached batch (:math:`b_0` samples) and applying w = 1, 2, 3 columns, :math:`p_m(w)`, are
measured once by counting the bytes of every tensor allocated meanwhile (:class:`PeakBytes`, a
dispatch mode: exact tensor bytes on every device, not the allocator's rounding), and

.. math:: \\mathrm{peak}_m(k, b) = \\max(1, b / b_0)\\,
          \\bigl(p_m(3) + (k - 3)\\,\\max(p_m(3) - p_m(2), 0)\\bigr) \\quad (k > 3),

the measured values for k <= 3. Two widths above one because a vmap of width one is cheaper per
column than wider ones (241 MB for the second column, 289 MB for each further one, on the CNN);
the whole batch, not a slice, because peak memory is convex in the samples (the peak moves from
parameter-sized buffers to activations as the batch grows: a line through 32 and 64 samples
under-predicted 1024 samples by 27 % on an MLP). A width is measured only when a generous
guess of its peak (:func:`guess_next`) fits the budget, so the measurement itself stays within
it; an unmeasured width is predicted not to fit.

A block is then applied in sub-blocks of the largest width k' <= k whose predicted peak fits the
budget (k' >= 1 always); every sub-block reuses the batch's state, so the forward and first
backward stay shared across all k columns. The widths are measured with the graph retained, as
every sub-block but the last runs; the last frees the graph as it goes (``GraphState.last_use``),
so a block run as one sub-block peaks up to ~18 % below its prediction (a safe side).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from curvscope._memory import format_bytes, parse_bytes
from curvscope.errors import InputError

__all__ = ["BlockMemoryReport", "BlockPlan", "PeakBytes", "parse_block_memory"]

#: the block widths the memory model is measured at
CALIBRATION_WIDTHS = (1, 2, 3)

#: Process memory per byte of a block product's short-lived tensors, against the graph cache's
#: long-lived ones, which is what ``block_memory="auto"`` is compared with. The allocator rounds
#: and fragments what is allocated and freed within a product: on the N = 2048 CNN of issue 16
#: (fresh processes, glibc, freed heap trimmed between methods) the resident peak of a sub-block
#: rose 1.08-1.22x its counted tensor bytes above the resident memory before it, while a cached
#: graph's resident memory is its bytes. The ``"auto"`` budget is divided by this factor.
TRANSIENT_OVERHEAD = 1.25


def parse_block_memory(value: Any) -> int | Literal["auto"]:
    """``block_memory=``: ``"auto"``, a positive byte count, or a size string like ``"2GB"``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(
            f"block_memory must be 'auto', a number of bytes or a size like '2GB'; got "
            f"{type(value).__name__} {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"block_memory must be a finite number of bytes, got {value}")
    try:
        budget = parse_bytes(value)
    except ValueError as err:
        raise InputError(f"block_memory: {err}") from None
    if budget < 1:
        raise InputError(
            f"block_memory must be at least one byte, got {value!r}; pass 'auto' for the "
            "default budget or a size like '2GB'"
        )
    return budget


class PeakBytes(TorchDispatchMode):
    """Counts the bytes of the tensors allocated under it that are still alive, and their peak.

    Each storage is counted once, from the op that created it until it is freed (a weak
    reference's finaliser); views and in-place results add nothing. Tensors allocated before the
    mode was entered are not counted, so ``peak`` is the extra memory of what ran under it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def reset_peak(self) -> None:
        """Start a new peak from the bytes alive now."""
        self.peak = self.current

    def _track(self, tensor: torch.Tensor) -> None:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without storage
            return
        key = storage._cdata
        if key in self._live:
            return
        size = storage.nbytes()
        self._live[key] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        size = self._live.pop(key, None)
        if size is not None:
            self.current -= size

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor):
                self._track(item)
        return out


def measure_widths(
    prepare: Callable[[], Any],
    apply: Callable[[Any, int], Any],
    widths: tuple[int, ...] = CALIBRATION_WIDTHS,
    affordable: Callable[[int, dict[int, int]], bool] | None = None,
    settle: Callable[[], Any] | None = None,
) -> dict[int, int]:
    """Peak extra bytes of ``prepare()`` then ``apply(state, w)``, for each width ``w``.

    The state is prepared once and kept alive while each width is applied, as a block product
    keeps it; each width's peak is ``max(peak of preparing, peak of applying w columns)``.
    ``affordable(w, peaks so far)`` may stop before a width whose measurement would itself
    exceed the budget (the first width is always measured). ``settle()`` runs after each
    width's result is freed (the operator hands the freed heap back to the system there).
    """
    peaks: dict[int, int] = {}
    with PeakBytes() as meter:
        state = prepare()
        prepared = meter.peak
        for width in widths:
            if peaks and affordable is not None and not affordable(width, peaks):
                break
            meter.reset_peak()
            result = apply(state, width)
            del result
            peaks[width] = max(prepared, meter.peak)
            if settle is not None:
                settle()
        del state
    return peaks


def guess_next(width: int, peaks: dict[int, int]) -> float:
    """A generous guess of the peak at ``width`` from the smaller widths measured, used to skip
    a calibration width that would itself break the budget: twice one column for two (as if
    nothing were shared), and 1.5 times the last step further on (the step grew by 20 % from
    the second to the third column of ``rev-rev-batched`` on the CNN)."""
    if width == 2:
        return 2.0 * peaks[1]
    return peaks[width - 1] + 1.5 * max(peaks[width - 1] - peaks[width - 2], 0)


@dataclass
class BlockPlan:
    """How one method applies a block of ``k`` columns to a batch prepared afresh.

    ``sub_block``: the columns per sub-block (1 <= sub_block <= k); ``predicted_bytes``: the
    predicted peak bytes of one batch of the calibration size at that width; ``fits``: whether
    that is within the budget (``False`` only when even one column exceeds it).
    """

    sub_block: int
    predicted_bytes: int
    fits: bool


@dataclass
class BlockMemoryReport:
    """The memory model and budget of block products on uncached batches (``block_memory=``).

    Fields:
        requested: the ``block_memory`` option (``"auto"`` or bytes).
        budget_bytes: the budget in force, resolved at the first uncached block product
            (``None`` before). ``"auto"``: the bytes the graph cache would hold for this rank's
            data (graph bytes per sample x samples, capped by ``cache_memory``) less what it
            already holds, and at least the reference method's single-column peak, so that a
            block without the cache peaks no higher than a single column with it.
        samples: the size of the batch the model was measured on (the first uncached one).
        measured: method -> block width w -> the peak bytes of preparing that batch and
            applying w columns (w = 1, 2, 3; the wider ones only where the narrower ones
            left room in the budget; see :mod:`._blockmem`).
        plans: block width k -> method -> :class:`BlockPlan` for a batch of
            ``plan_samples[k]`` samples (the first uncached batch; other batch sizes are
            planned alike when they come). Only the methods within the budget are listed (or
            the leanest one, when none is); the engine's ``report.chosen`` says which of them
            ran (key ``("fresh", k)``).
        plan_samples: block width k -> the batch size of ``plans[k]``.
    """

    requested: int | str = "auto"
    budget_bytes: int | None = None
    samples: int | None = None
    measured: dict[str, dict[int, int]] = field(default_factory=dict)
    plans: dict[int, dict[str, BlockPlan]] = field(default_factory=dict)
    plan_samples: dict[int, int] = field(default_factory=dict)

    def predict(self, method: str, k: int, samples: int) -> float:
        """Predicted peak bytes of preparing a batch of ``samples`` and applying ``k`` columns
        with ``method``; ``inf`` beyond what the measured widths can extrapolate to.

        Measured widths are used as measured; wider blocks extend the line through the
        widths 2 and 3. Batches no larger than the measured one are predicted at its peak
        (an over-estimate for a ragged last batch), larger ones in proportion to samples."""
        if method not in self.measured or self.samples is None:
            raise KeyError(f"no memory model for {method!r} yet")
        p = self.measured[method]
        if k in p:
            peak = float(p[k])
        elif 3 in p:
            peak = p[3] + (k - 3) * max(p[3] - p[2], 0)
        else:
            return math.inf
        return peak * max(samples / self.samples, 1.0)

    def plan(self, method: str, k: int, samples: int) -> BlockPlan:
        """The largest sub-block width within the budget (at least 1) and its predicted peak on
        a batch of ``samples``."""
        assert self.budget_bytes is not None  # resolved before planning
        width = k
        while width > 1 and self.predict(method, width, samples) > self.budget_bytes:
            width -= 1
        predicted = self.predict(method, width, samples)
        return BlockPlan(width, math.ceil(predicted), predicted <= self.budget_bytes)

    def __str__(self) -> str:
        if self.budget_bytes is None:
            return f"block_memory={self.requested!r}: no uncached block product yet"
        lines = [
            f"block budget {format_bytes(self.budget_bytes)} (block_memory={self.requested!r})"
        ]
        for k, plans in sorted(self.plans.items()):
            lines.append(f"  a block of {k} columns, on a batch of {self.plan_samples[k]}:")
            for method, plan in plans.items():
                note = "" if plan.fits else " (over budget even at one column)"
                lines.append(
                    f"    {method}: sub-blocks of {plan.sub_block}, predicted peak "
                    f"{format_bytes(plan.predicted_bytes)} per batch{note}"
                )
        return "\n".join(lines)
