"""CurvatureOperator and its product engine: one data pass per block, verified, cached, distributed.

:class:`CurvatureOperator` is the base of every model curvature matrix

.. math:: M = c \\sum_{\\text{batches } B} \\sum_{i \\in B} M_i, \\qquad
          c = \\tfrac1N \\ (\\texttt{reduction="mean"}), \\quad c = 1 \\ (\\texttt{reduction="sum"}),

where each batch contributes the *sum* of its per-sample terms, so the average is per sample
whatever the batch sizes (curvlinops' normalisation; not "divide by the number of batches").
The matrix is that of the loss as the user wrote it: with a sum-reduced loss it is the sum
over all N samples of the data, N times the matrix of the mean-reduced loss of the same
per-sample terms (see :mod:`curvscope.operators._losses` for how torch's reductions define
:math:`\\ell_i`). Subclasses say how one batch's state is prepared and how it multiplies a block.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from curvscope._memory import (
    available_memory,
    format_bytes,
    parse_bytes,
    release_freed_memory,
    tune_allocator,
)
from curvscope._precision import full_float32
from curvscope._validate import check_int
from curvscope.errors import (
    CurvscopeError,
    EngineVerificationError,
    InputError,
    NonDeterministicError,
    NonFiniteError,
)
from curvscope.operators._autodiff import BATCHED_TWINS, GraphState, graph_bytes
from curvscope.operators._blockmem import (
    CALIBRATION_WIDTHS,
    TRANSIENT_OVERHEAD,
    BlockMemoryReport,
    guess_next,
    measure_widths,
    parse_block_memory,
)
from curvscope.operators._compile import (
    CompiledProduct,
    CompileMode,
    CompileTiming,
    check_compile,
    setup_compile,
)
from curvscope.operators._data import Batch, BatchSource
from curvscope.operators._inputs import BatchSizeFn, describe
from curvscope.operators._losses import check_loss_on_batch, loss_spec
from curvscope.operators._params import select_parameters
from curvscope.operators._rewrites import RewrittenModel, parse_rewrite, rewrite_model, rewrite_name
from curvscope.operators.base import SymmetricOperator, as_dtype, digest

__all__ = ["CacheInfo", "CurvatureOperator", "EngineReport"]

CacheMode = Literal["auto"] | bool
DETERMINISM_SAMPLES = 32
#: timed batches per candidate method before ``method="auto"`` chooses for uncached batches
TUNING_RUNS = 2


@dataclass
class EngineReport:
    """What the engine found on the user's model: verification and timing of each method."""

    reference: str
    verified: dict[str, str] = field(default_factory=dict)  # method -> "ok" | reason it is unusable
    # (state kind, k) -> method -> seconds; kind is "graph" (cached reverse graph: seconds of the
    # first batch) or "fresh" (prepared for this product: the least seconds per sample over
    # TUNING_RUNS batches per method, the batches dealt round-robin among the candidates)
    timings: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    chosen: dict[tuple[str, int], str] = field(default_factory=dict)
    #: kernel rewrite candidate ("fold-bn", ...) -> "ok" | why it is not used
    rewrites: dict[str, str] = field(default_factory=dict)
    #: rewrite candidate -> seconds of one reference product on the first batch (``"auto"``):
    #: the apply alone with the graph cache on (what repeats), prepare + apply without it
    rewrite_timings: dict[str, float] = field(default_factory=dict)
    #: the rewrite products run with ("none" when the model is evaluated as written)
    rewrite: str = "none"
    #: ``compile=``: "off", "ok" (products run compiled) or why the compiled product is not used
    compile: str = "off"
    #: compile seconds, seconds per product compiled and not, break-even products
    compile_timing: CompileTiming = field(default_factory=CompileTiming)
    #: block products on uncached batches: budget, memory model, sub-block size per method
    blocks: BlockMemoryReport = field(default_factory=BlockMemoryReport)
    #: the CPU allocator policy products ran with (:func:`curvscope._memory.tune_allocator`)
    allocator: str = ""

    def usable(self, methods: Sequence[str]) -> list[str]:
        return [m for m in methods if self.verified.get(m, "ok") == "ok"]


@dataclass
class CacheInfo:
    """Cached batch graphs: how many, and the memory they hold (measured from saved tensors)."""

    budget_bytes: int
    cached_batches: int = 0
    cached_bytes: int = 0
    total_batches: int | None = None
    predicted_bytes_per_sample: float | None = None

    def __str__(self) -> str:
        total = "?" if self.total_batches is None else self.total_batches
        return (
            f"{self.cached_batches}/{total} batch graphs cached, {format_bytes(self.cached_bytes)} "
            f"of a {format_bytes(self.budget_bytes)} budget"
        )


class CurvatureOperator(SymmetricOperator):
    """Base of the curvature matrices of a model over a finite dataset.

    Args:
        model: the network; its parameters are snapshotted at construction (later changes to the
            model do not change the operator), and its mode, parameters and gradients are left
            untouched.
        loss_fn: a mean- or sum-reduced loss, e.g. ``nn.CrossEntropyLoss()`` or
            ``nn.MSELoss(reduction="sum")``. The matrix is that of the loss as written: the
            average over the N samples for ``reduction="mean"``, the sum over them for
            ``reduction="sum"`` (N times larger, and for MSE and BCE-with-logits also summed
            over output entries, as torch sums them). ``reduction="none"`` is refused.
        data: a ``DataLoader``, a re-iterable of ``(inputs, targets)`` batches, or one
            ``(inputs, targets)`` pair (split by ``batch_size``). ``inputs`` is anything the
            model takes as its one argument, ``model(inputs)``: a tensor, a tuple or list of
            tensors, or a mapping of tensors (``dict``, ``UserDict``, a Hugging Face-style
            batch); every tensor in it is moved to the operator's device and floating ones are
            cast to its dtype. ``targets`` is a tensor.
        params: ``None`` (all trainable parameters) or names / glob patterns selecting a subset.
        num_data: the number of samples N, if known; checked against the count of the first pass.
        dtype: the dtype of products (default: the parameters' dtype, usually float32);
            ``torch.float64`` (or ``"float64"``) runs the model in float64 on copies of its
            weights.
        batch_size: split size when ``data`` is a single pair of tensors.
        batch_size_fn: ``inputs -> number of samples`` of a batch, for inputs whose tensors do
            not all have the samples along their first dimension (default: the shared first
            dimension of the input tensors; an error when they disagree).
        check_deterministic: check that data and model do not change between passes (one extra
            small-batch pass at the first product, then a cheap fingerprint of every batch).
        verify: check the fast product methods against the reverse-over-reverse reference on a
            small float64 batch of the user's model before using them.
        method: ``"auto"`` (verify, then time the usable methods on the first batch and keep the
            fastest per block width k) or a method name of the operator's family.
        cache: keep each batch's autograd graph for later products: ``"auto"`` while the measured
            graph memory stays within ``cache_memory``, ``True`` for all batches, ``False`` never.
        cache_memory: the graph-cache budget in bytes or as ``"2GB"`` (default: a quarter of the
            device's available memory).
        block_memory: the peak memory one batch prepared afresh (not in the graph cache) may
            use while a block of k columns is applied, in bytes or as ``"2GB"``: the block is
            applied in sub-blocks of the largest width whose predicted peak fits, all sharing
            the batch's forward and first backward (:mod:`curvscope.operators._blockmem`).
            ``"auto"`` (default): the bytes the graph cache would hold for the whole data
            (capped by ``cache_memory``, less what it holds) over the allocator's overhead on
            short-lived tensors (1.25, measured), at least one column's peak, so that a block
            without the cache peaks no higher than one column with it. The
            memory model is measured on the first uncached batch of the first block product
            (k > 1); see ``report.blocks``.
        train_mode: evaluate the model in train mode (BatchNorm batch statistics, dropout); off by
            default, as curvature is a property of the deterministic network.
        progress: show a progress bar over batches for every product.
        rewrite: exact kernel rewrites of the forward used for products
            (:mod:`curvscope.operators._rewrites`): ``"fold-bn"`` folds each eval-mode
            BatchNorm that directly follows a Conv/Linear into that layer inside the
            functional forward (still differentiated with respect to the original
            parameters), ``"channels-last"`` runs 4-D inputs in channels_last memory, or
            ``"fold-bn+channels-last"``. Every rewrite is verified against the unrewritten
            reverse-over-reverse product (float64 to 1e-8 and in the operator's dtype to
            sqrt(eps)) before use; one that fails is not used (with a warning when it was
            asked for). ``"auto"`` (default) verifies every rewrite that can apply
            (``fold-bn`` in eval mode; with ``nn.Conv2d`` layers also ``channels-last`` and
            both), times one product of each verified one and of the model as written on the
            first batch (with the graph cache on, the double backward through the kept graph,
            which is what repeats; with ``cache=False`` also the forward and first backward),
            and keeps the fastest; ``"none"`` evaluates the model as written.
            The user's model is never changed. See ``report.rewrites``,
            ``report.rewrite_timings`` and ``report.rewrite``.
        compile: ``torch.compile`` the product (:mod:`curvscope.operators._compile`), off by
            default. ``True`` compiles a ``torch.func`` product of one batch (one graph per
            batch shape, ``dynamic=False``), verifies it against the unrewritten
            reverse-over-reverse product (float64 to 1e-8 and the operator's dtype to
            sqrt(eps)), times one product of the first batch compiled and uncompiled, and uses
            it only when it verifies and is faster; ``"always"`` uses it whenever it verifies.
            Every later graph (another batch shape or block width) is checked against the
            uncompiled product on its first batch. A failure or compile error warns once and
            falls back to the uncompiled engine. See ``report.compile`` and
            ``report.compile_timing`` (compile seconds, seconds per product, break-even).
        allow_tf32: CUDA only. ``False`` (default): every product, verification and timing
            runs in IEEE float32, with torch's TF32 switches for cuDNN and CUDA matmuls off for
            its duration and restored after (:mod:`curvscope._precision`); torch's own default
            runs float32 convolutions in TF32, which on an H200 gave the small benchmark CNN's
            Hessian product a relative error of 6.1e-3 against float64 (1.2e-4 without) for
            1.6x the speed. ``True`` keeps whatever torch is set to: faster and inexact.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        data: Any,
        *,
        params: str | Sequence[str] | None = None,
        num_data: int | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int | None = None,
        batch_size_fn: BatchSizeFn | None = None,
        check_deterministic: bool = True,
        verify: bool = True,
        method: str = "auto",
        cache: CacheMode = "auto",
        cache_memory: int | str | None = None,
        train_mode: bool = False,
        progress: bool = False,
        rewrite: str | None = "auto",
        compile: CompileMode = False,
        block_memory: int | str = "auto",
        allow_tf32: bool = False,
    ) -> None:
        block_budget = parse_block_memory(block_memory)
        if not isinstance(allow_tf32, bool):
            raise InputError(
                f"allow_tf32 must be True or False, got {allow_tf32!r} "
                f"({type(allow_tf32).__name__})"
            )
        if not isinstance(model, nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.loss = loss_spec(loss_fn)
        self.layout, fixed_names = select_parameters(model, params)
        all_params = dict(model.named_parameters())
        selected = [all_params[n] for n in self.layout.names]
        devices = {p.device for p in selected}
        dtypes = {p.dtype for p in selected}
        if len(devices) > 1 or len(dtypes) > 1:
            raise InputError(
                f"the selected parameters live on several devices/dtypes ({sorted(map(str, devices))}, "
                f"{sorted(map(str, dtypes))}); move the model with model.to(device, dtype) first"
            )
        self._device = devices.pop()
        self._dtype = as_dtype(dtype) or dtypes.pop()
        if not self._dtype.is_floating_point:
            raise InputError(
                f"the selected parameters are {self._dtype}, not floating; pass a floating "
                "dtype=torch.float64 or convert the model"
            )
        with torch.no_grad():
            self.params: tuple[torch.Tensor, ...] = tuple(
                p.detach().to(self._dtype).clone() for p in selected
            )
            self._fixed = {
                n: all_params[n].detach().to(self._cast(all_params[n])).clone() for n in fixed_names
            }
            self._buffers = {
                n: b.detach().to(self._cast(b)).clone() for n, b in model.named_buffers()
            }
        if method != "auto" and method not in self._methods:
            raise InputError(f"method must be 'auto' or one of {self._methods}, got {method!r}")
        if num_data is not None:
            num_data = check_int("num_data", num_data, minimum=1, expected="a positive integer")
        if cache not in ("auto", True, False):
            raise InputError(f"cache must be 'auto', True or False, got {cache!r}")
        self.source = BatchSource(
            data,
            device=self._device,
            dtype=self._dtype,
            batch_size=batch_size,
            batch_size_fn=batch_size_fn,
        )
        self.num_data_hint = num_data
        self.check_deterministic = check_deterministic
        self.verify = verify
        self.method = method
        self.cache_mode: CacheMode = cache
        budget = (
            parse_bytes(cache_memory)
            if cache_memory is not None
            else available_memory(self._device) // 4
        )
        self.cache_info = CacheInfo(budget_bytes=budget)
        self._cache: dict[int, GraphState] = {}
        self._tuning: dict[tuple[str, int], dict[str, list[float]]] = {}
        self.train_mode = train_mode
        self.progress = progress
        self.report = EngineReport(reference=self._methods[0] if self._methods else "")
        self.report.blocks.requested = block_budget
        self._num_data: int | None = None
        self._checked = False
        self._rewrite_request = parse_rewrite(rewrite)
        self._rewritten: RewrittenModel | None = None
        self._compile_request = check_compile(compile)
        self._compiled: CompiledProduct | None = None
        self.allow_tf32 = allow_tf32

    def _full_float32(self) -> contextlib.AbstractContextManager[None]:
        """IEEE float32 on CUDA for the duration of a product unless ``allow_tf32``."""
        return full_float32(self._device, self.allow_tf32)

    def _cast(self, t: torch.Tensor) -> torch.dtype:
        return self._dtype if t.is_floating_point() else t.dtype

    # ------------------------------------------------------------------ interface
    @property
    def shape(self) -> tuple[int, int]:
        return (self.layout.size, self.layout.size)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def param_names(self) -> tuple[str, ...]:
        """The selected parameters, in the order of every flat vector."""
        return self.layout.names

    @property
    def tuning(self) -> bool:
        """True while a product method is still being chosen on fresh batches (each candidate
        timed on ``TUNING_RUNS`` batches, the batches dealt round-robin across products); the
        products meanwhile are exact but not yet at their steady speed. See ``report.chosen``."""
        return bool(self._tuning)

    @property
    def num_data(self) -> int:
        """N, the number of samples averaged over (all ranks); counts the data if not yet known."""
        if self._num_data is None:
            local = sum(b.size for b in self.source.batches())
            self._set_num_data(local)
        assert self._num_data is not None
        return self._num_data

    def fingerprint(self) -> dict[str, str]:
        """Digests of the operator kind and options, the snapshotted weights, and the data.

        ``"operator"``: class, loss (kind, label smoothing, a sum reduction), dtype, selected
        parameter names, ``train_mode``, a ``batch_size_fn`` (by qualified name) and subclass
        options (e.g. the Fisher's ``mc_samples`` and ``seed``).
        ``"weights"``: exact bytes of the selected and fixed parameters and the buffers
        (BatchNorm statistics) as snapshotted at construction. ``"data"``: exact bytes of every
        validated batch, in order. **Cost**: the data digest is one pass over the data that only
        reads it (no model evaluation; batches on a GPU are copied to the host to be hashed),
        cheaper than one product; call it once per computation, not per product.
        """
        loss: tuple[Any, ...] = (
            self.loss.kind,
            type(self.loss.fn).__name__,
            self.loss.label_smoothing,
        )
        if self.loss.reduction != "mean":  # mean-reduced digests stay those of earlier versions
            loss += (self.loss.reduction,)
        options: dict[str, Any] = {
            "class": type(self).__name__,
            "loss": loss,
            "dtype": str(self._dtype),
            "params": self.layout.names,
            "train_mode": self.train_mode,
            **self._fingerprint_options(),
        }
        if self.allow_tf32:  # TF32 products are another (inexact) matrix; False keeps old digests
            options["allow_tf32"] = True
        size_fn = self.source.batch_size_fn
        if size_fn is not None:
            options["batch_size_fn"] = (
                f"{getattr(size_fn, '__module__', '')}."
                f"{getattr(size_fn, '__qualname__', type(size_fn).__qualname__)}"
            )
        weights: list[Any] = []
        for group in (dict(zip(self.layout.names, self.params)), self._fixed, self._buffers):
            for name in sorted(group):
                weights += [name, group[name]]
        return {
            "operator": digest(sorted(options.items())),
            "weights": digest(weights),
            "data": self.source.digest(),
        }

    def _fingerprint_options(self) -> dict[str, Any]:
        """Subclass options that change the matrix (for :meth:`fingerprint`)."""
        return {}

    # ------------------------------------------------------------------ model evaluation
    def model_fn(self, inputs: Any) -> Callable[[tuple[torch.Tensor, ...]], torch.Tensor]:
        """``theta -> model(inputs; theta)`` for the selected parameters, others fixed.

        ``inputs`` is passed as the model's one argument whatever its structure (tensor, tuple,
        mapping)."""
        names, fixed, buffers, model = self.layout.names, self._fixed, self._buffers, self.model
        fresh_buffers = self.train_mode  # train-mode BatchNorm updates buffers in place
        if self._rewritten is not None:  # an exact rewrite of the same function (verified)
            model = self._rewritten.module
            inputs = self._rewritten.prepare_inputs(inputs)

        def fn(params: tuple[torch.Tensor, ...]) -> torch.Tensor:
            tensors = dict(zip(names, params))
            tensors.update(fixed)
            bufs = {n: b.clone() for n, b in buffers.items()} if fresh_buffers else buffers
            out = torch.func.functional_call(model, (tensors, bufs), (inputs,), strict=False)
            if not isinstance(out, torch.Tensor):
                raise InputError(
                    f"the model returned a {type(out).__name__}; curvscope needs a model that "
                    "returns one output tensor (wrap it to return e.g. the logits)"
                )
            return out

        return fn

    @contextlib.contextmanager
    def _model_mode(self) -> Iterator[None]:
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.train_mode)
        try:
            yield
        finally:
            for module, training in modes:
                module.training = training

    # ------------------------------------------------------------------ subclass hooks
    #: methods of the operator's family; the first is the reverse-only reference.
    _methods: tuple[str, ...] = ()
    #: methods whose per-batch state is a retained reverse-mode graph (cacheable, interchangeable).
    _graph_methods: tuple[str, ...] = ()

    def _prepare(self, method: str, batch: Batch, params: tuple[torch.Tensor, ...]) -> GraphState:
        """The per-batch state for ``method``; it must carry everything ``_apply`` needs."""
        raise NotImplementedError

    def _apply(
        self, state: GraphState, block: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        """The batch's sum of per-sample terms times the block: one ``(k, *shape)`` tensor per
        parameter, optionally followed by auxiliary per-batch sums that the engine adds up over
        batches and ranks and hands to :meth:`_finalize`."""
        raise NotImplementedError

    def _finalize(
        self, total: torch.Tensor, aux: list[torch.Tensor], block: torch.Tensor
    ) -> torch.Tensor:
        """Turn the all-reduced sum over samples into the product; default: times ``c``."""
        return total / self.normaliser

    @property
    def normaliser(self) -> int:
        """``1/c``: N for a mean-reduced loss (the matrix averages its per-sample terms), 1 for a
        sum-reduced loss (it sums them)."""
        return self.num_data if self.loss.reduction == "mean" else 1

    # ------------------------------------------------------------------ first-product checks
    def _first_use(self) -> None:
        if self._checked:
            return
        self.report.allocator = tune_allocator(self._device)
        first = self.source.first_batch()
        small = first.head(DETERMINISM_SAMPLES)
        outputs = self._forward_checked(small)
        if self.check_deterministic:
            self.source.check_first_batch_repeats(first)
            with torch.no_grad():
                again = self.model_fn(small.inputs)(self.params)
            if not torch.equal(outputs.detach(), again):
                raise NonDeterministicError(
                    "the model gave different outputs for the same inputs in two forward passes "
                    f"(train_mode={self.train_mode}): dropout or another random layer is active. "
                    "Curvature must be one fixed matrix; evaluate in eval mode (train_mode=False, "
                    "the default) or remove the random layers. If the difference is only GPU "
                    "non-determinism, pass check_deterministic=False."
                )
        self._choose_rewrite(first)
        if self.verify and len(self._methods) > 1 and self.method != self._methods[0]:
            # verify imports the operator kinds, which import this module
            from curvscope.operators.verify import verify_methods

            verify_methods(self, first)
        if self._compile_request:
            self._compiled = setup_compile(self, first)
        # the rewrite timing and method verification freed whole graphs (one-time work)
        release_freed_memory(self._device)
        self._checked = True

    @contextlib.contextmanager
    def _using(self, rewritten: RewrittenModel | None) -> Iterator[None]:
        saved = self._rewritten
        self._rewritten = rewritten
        try:
            yield
        finally:
            self._rewritten = saved

    def _choose_rewrite(self, first: Batch) -> None:
        """Build, verify and (for ``"auto"``) time the kernel rewrites; keep the chosen one.

        ``"auto"`` tries the fold-bn variants first; once one verifies, the unfolded model and
        channels_last alone are neither verified nor timed (:data:`_FOLD_WINS`), so the first
        batch pays for two timed options instead of four (one, untimed, without convolutions).
        """
        from curvscope.operators.verify import verify_rewrite  # verify imports this module

        request, report = self._rewrite_request, self.report
        if request == ():
            return
        if request is None:  # auto: every rewrite that can apply, verified, then timed
            candidates: list[tuple[str, ...]] = [] if self.train_mode else [("fold-bn",)]
            if any(isinstance(m, nn.Conv2d) for m in self.model.modules()):
                # channels_last only matters to 2-d convolutions (4-d activations)
                candidates += [(*c, "channels-last") for c in candidates] + [("channels-last",)]
        elif "fold-bn" in request and self.train_mode:
            report.rewrites[rewrite_name(request)] = (
                "not applicable: train_mode=True, BatchNorm uses batch statistics and "
                "cannot be folded"
            )
            candidates = []
        else:
            candidates = [request]
        verified: dict[str, RewrittenModel] = {}
        for parts in candidates:
            name = rewrite_name(parts)
            if request is None and "fold-bn" not in parts and verified:
                # candidates list the fold variants first; a verified one replaces the same
                # model unfolded, which is neither verified nor timed (see _FOLD_WINS)
                report.rewrites[name] = f"not timed: {_FOLD_WINS}"
                continue
            try:
                rewritten = rewrite_model(self.model, parts)
            except InputError as err:
                report.rewrites[name] = f"not applicable: {err}"
                continue
            report.rewrites[name] = verify_rewrite(self, first, rewritten)
            if report.rewrites[name] == "ok":
                verified[name] = rewritten
        if request is not None and not verified:
            name = rewrite_name(request)
            warnings.warn(
                f"rewrite={name!r} is not used, products run on the model as written: "
                f"{report.rewrites.get(name)}",
                stacklevel=4,
            )
            return
        if not verified:
            return
        if request is not None:
            report.rewrite = rewrite_name(request)
            self._rewritten = verified[report.rewrite]
            return
        options: dict[str, RewrittenModel | None] = dict(verified)
        if not any("fold-bn" in name for name in verified):
            options["none"] = None
        if len(options) == 1:  # one verified fold and nothing it could lose to: no timing
            ((report.rewrite, self._rewritten),) = options.items()
            return
        report.rewrite_timings = self._time_rewrites(first, options)
        report.rewrite = min(report.rewrite_timings, key=report.rewrite_timings.__getitem__)
        self._rewritten = options[report.rewrite]

    def _time_rewrites(
        self, first: Batch, options: dict[str, RewrittenModel | None], rounds: int = 3
    ) -> dict[str, float]:
        """Seconds a product will cost per batch under each option, timed on the first batch
        (reference method, k = 1; the median over ``rounds`` interleaved runs of each part).

        With the graph cache on, a batch's graph is prepared once and the products that follow
        pay only the apply, so the apply is what counts; without it every product pays both.
        Measured on the N = 2048 CNN (fresh processes): the sum, minimum of two rounds, picked
        fold-bn over fold-bn+channels-last in one of three processes (its prepare was faster
        and one lucky apply took 0.35 s against its usual 0.56-0.57 s), and that cached product
        took 4.6 s against 3.4-3.6 s."""
        gen = torch.Generator().manual_seed(0)
        vec = torch.randn(self.layout.size, 1, generator=gen, dtype=torch.float64)
        pieces = self.layout.split(vec.to(self._device, self._dtype))
        reference = self._methods[0]
        prepare: dict[str, list[float]] = {name: [] for name in options}
        apply: dict[str, list[float]] = {name: [] for name in options}
        for _ in range(rounds):
            for name, rewritten in options.items():
                with self._using(rewritten):
                    start = time.perf_counter()
                    state = self._prepare(reference, first, self.params)
                    self._sync()
                    middle = time.perf_counter()
                    self._apply(state, pieces)
                    self._sync()
                    end = time.perf_counter()
                del state
                prepare[name].append(middle - start)
                apply[name].append(end - middle)
        cached = self.cache_mode is not False and reference in self._graph_methods
        return {
            name: statistics.median(apply[name])
            + (0.0 if cached else statistics.median(prepare[name]))
            for name in options
        }

    def _sync(self) -> None:
        """Wait for the device's queued kernels (CUDA), so that a timer reads their end."""
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def _forward_checked(self, batch: Batch) -> torch.Tensor:
        try:
            with torch.no_grad():
                outputs = self.model_fn(batch.inputs)(self.params)
        except InputError:
            raise
        except (RuntimeError, TypeError, ValueError, LookupError) as err:
            raise InputError(
                f"the model failed on a batch of inputs {_describe_inputs(batch.inputs)}: {err}"
            ) from err
        if outputs.ndim == 0 or outputs.shape[0] != batch.size:
            raise InputError(
                f"the model returned outputs of shape {tuple(outputs.shape)} for a batch of "
                f"{batch.size} samples (inputs {describe(batch.inputs)}); the outputs must hold "
                "the samples along their first dimension. If the batch size is counted wrongly, "
                "pass batch_size_fn="
            )
        value = check_loss_on_batch(self.loss, outputs, batch.targets)
        if not torch.isfinite(value):
            raise NonFiniteError(
                f"the loss is {float(value)} at the given weights on the first batch; curvature "
                "is undefined there. Check the inputs and targets for NaN/inf and that the "
                "weights are finite (a diverged training run?)"
            )
        return outputs

    # ------------------------------------------------------------------ method choice
    def _usable(self, methods: Sequence[str], k: int) -> list[str]:
        if self.method != "auto":
            return [self.method] if self.method in methods else [self._methods[0]]
        usable = self.report.usable(methods) or [self._methods[0]]
        if k == 1:  # a vmapped twin only adds overhead to one column; do not let noise pick it
            usable = [m for m in usable if m not in BATCHED_TWINS] or usable
        return usable

    def _timed(self, key: tuple[str, int], candidates: list[str], run: Callable[[str], Any]) -> Any:
        """Run with the method chosen for ``key``; the first time, time every candidate and keep
        the fastest (its result is used, so tuning wastes only the slower candidates' work)."""
        chosen = self.report.chosen.get(key)
        if chosen is not None:
            return run(chosen)
        if len(candidates) == 1:
            self.report.chosen[key] = candidates[0]
            return run(candidates[0])
        timings: dict[str, float] = {}
        results: dict[str, Any] = {}
        for method in candidates:
            try:
                start = time.perf_counter()
                results[method] = run(method)
                self._sync()
                timings[method] = time.perf_counter() - start
            except RuntimeError as err:  # a method that cannot run at this k is simply not chosen
                self.report.verified[method] = f"failed at k={key[1]}: {str(err).splitlines()[0]}"
        if not timings:
            raise EngineVerificationError(
                f"no product method could run on this model at k={key[1]}"
            )
        self.report.timings[key] = timings
        best = min(timings, key=timings.__getitem__)
        self.report.chosen[key] = best
        result = results.pop(best)
        results.clear()
        release_freed_memory(self._device)  # the slower candidates' products and buffers
        return result

    def _timed_rounds(
        self, key: tuple[str, int], candidates: list[str], run: Callable[[str], Any], size: int
    ) -> Any:
        """Like :meth:`_timed` for batches prepared afresh (no cached graph), where a state's
        forward and first backward are part of the cost: the batches are dealt round-robin to
        the candidates, each batch's result is used (every verified method computes the same
        product), and the method with the least seconds per sample, minimum over
        ``TUNING_RUNS`` batches each, is kept. The minimum discards one-time costs (lazy
        imports, allocator warm-up on a method's first call) that made a single first-batch
        timing pick forward-over-reverse although the double backward was faster over the
        whole data (issue 16)."""
        chosen = self.report.chosen.get(key)
        if chosen is not None:
            return run(chosen)
        if len(candidates) == 1:
            self.report.chosen[key] = candidates[0]
            return run(candidates[0])
        runs = self._tuning.setdefault(key, {m: [] for m in candidates})
        while True:
            live = [m for m in candidates if m in runs]
            if not live:
                raise EngineVerificationError(
                    f"no product method could run on this model at k={key[1]}"
                )
            method = min(live, key=lambda m: len(runs[m]))  # round-robin
            try:
                start = time.perf_counter()
                result = run(method)
                self._sync()
                runs[method].append((time.perf_counter() - start) / max(size, 1))
                break
            except RuntimeError as err:  # a method that cannot run at this k is not chosen
                if method == self._methods[0]:
                    raise  # the reference must run: the batch itself is at fault
                self.report.verified[method] = f"failed at k={key[1]}: {str(err).splitlines()[0]}"
                del runs[method]
        # Tuning alternates methods of different widths and peaks: trim what each one freed,
        # so that the next one's peak does not stack on it (see release_freed_memory).
        release_freed_memory(self._device)
        if all(len(times) >= TUNING_RUNS for times in runs.values()):
            timings = {m: min(times) for m, times in runs.items()}
            self.report.timings[key] = timings
            self.report.chosen[key] = min(timings, key=timings.__getitem__)
            del self._tuning[key]
        return result

    # ------------------------------------------------------------------ the pass
    def _batches(self) -> Iterator[Batch]:
        batches: Iterator[Batch] = self.source.batches()
        if self.check_deterministic:
            batches = self.source.checked(batches)
        if self.progress:
            from tqdm.auto import tqdm

            batches = iter(tqdm(batches, desc=type(self).__name__, unit="batch", leave=False))
        return batches

    def _try_cache(self, batch: Batch) -> GraphState | None:
        """Prepare a reverse-mode state for ``batch`` and keep it if the budget allows."""
        if self.cache_mode is False or not self._graph_methods:
            return None
        info = self.cache_info
        if self.cache_mode == "auto" and info.predicted_bytes_per_sample is not None:
            if info.cached_bytes + info.predicted_bytes_per_sample * batch.size > info.budget_bytes:
                return None
        state, nbytes = graph_bytes(
            lambda: self._prepare(self._graph_methods[0], batch, self.params)
        )
        info.predicted_bytes_per_sample = nbytes / batch.size
        if self.cache_mode == "auto" and info.cached_bytes + nbytes > info.budget_bytes:
            return state  # usable for this product, not kept
        state.batch = batch
        self._cache[batch.index] = state
        info.cached_batches += 1
        info.cached_bytes += nbytes
        return state

    def _batch_product_named(
        self, batch: Batch, pieces: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        """:meth:`_batch_product`; a later batch the model or loss cannot take is named.

        Batch 0 went through :meth:`_forward_checked`; a later batch that fails where it passed
        holds data of another kind (e.g. another feature size). Batches may differ in shape
        (variable-length sequences) as long as the model and the loss accept them.
        """
        try:
            return self._batch_product(batch, pieces)
        except (RuntimeError, LookupError, TypeError, ValueError) as err:
            # LookupError/TypeError: a structured batch without a key or of another structure
            if batch.index == 0 or isinstance(err, CurvscopeError):
                raise
            raise InputError(
                f"batch {batch.index} of the data (inputs {describe(batch.inputs)}, targets "
                f"{tuple(batch.targets.shape)}) failed in the model or the loss, although batch "
                f"0 passed: {type(err).__name__}: {str(err).splitlines()[0]}. Every batch must "
                "hold (inputs, targets) of the kind batch 0 holds; fix the dataset or its collate "
                "function"
            ) from err

    def _batch_product(
        self, batch: Batch, pieces: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        if self._compiled is not None:  # verified; None after a fallback
            parts = self._compiled(batch, pieces)
            if parts is not None:
                return parts
        k = pieces[0].shape[0]
        state = self._cache.get(batch.index)
        if state is None:
            state = self._try_cache(batch)
        if state is not None:  # a reverse-mode graph: pick among the graph methods
            kept, key = batch.index in self._cache, ("graph", k)

            def run(method: str) -> tuple[torch.Tensor, ...]:
                # a state not kept is dropped after its one run once the method is chosen
                # (while methods are timed, every candidate runs on the same graph)
                last = not kept and self.report.chosen.get(key) == method
                return self._apply(_with_method(state, method, last_use=last), pieces)

            return self._timed(key, self._usable(self._graph_methods, k), run)
        methods = self._usable(self._methods, k)
        widths = dict.fromkeys(methods, k)
        if k > 1:
            methods, widths = self._block_widths(batch, methods, pieces)
        return self._timed_rounds(
            ("fresh", k),
            methods,
            lambda m: self._apply_blocks(
                self._prepare(m, batch, self.params), pieces, widths[m], last_use=True
            ),
            batch.size,
        )

    # ------------------------------------------------------------------ block memory
    def _apply_blocks(
        self,
        state: GraphState,
        pieces: tuple[torch.Tensor, ...],
        width: int,
        *,
        last_use: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """:meth:`_apply` in sub-blocks of ``width`` columns on the one prepared ``state``;
        every returned tensor (products and auxiliary sums) is per column along dim 0.
        ``last_use``: the state is dropped after this call, so its last sub-block may free the
        graph as it runs (:attr:`GraphState.last_use`)."""
        k = pieces[0].shape[0]
        parts = []
        for i in range(0, k, width):
            state.last_use = last_use and i + width >= k
            parts.append(self._apply(state, tuple(p[i : i + width] for p in pieces)))
        if len(parts) == 1:
            return parts[0]
        return tuple(torch.cat(columns) for columns in zip(*parts))

    def _block_widths(
        self, batch: Batch, methods: list[str], pieces: tuple[torch.Tensor, ...]
    ) -> tuple[list[str], dict[str, int]]:
        """The methods whose one-column peak fits ``block_memory`` (or the leanest one if none
        does) and each one's sub-block width for this batch; measures the memory model first."""
        k = pieces[0].shape[0]
        blocks = self.report.blocks
        if any(m not in blocks.measured for m in methods):
            self._measure_blocks(batch, [m for m in methods if m not in blocks.measured], pieces)
        if k not in blocks.plans:
            plans = {m: blocks.plan(m, k, batch.size) for m in methods}
            fitting = [m for m in methods if plans[m].fits]
            if not fitting:
                fitting = [min(methods, key=lambda m: plans[m].predicted_bytes)]
            blocks.plans[k] = {m: plans[m] for m in fitting}
            blocks.plan_samples[k] = batch.size
        plans = blocks.plans[k]
        widths = {
            m: plan.sub_block
            if batch.size == blocks.plan_samples[k]
            else blocks.plan(m, k, batch.size).sub_block
            for m, plan in plans.items()
        }
        return list(plans), widths

    def _measure_blocks(
        self, batch: Batch, methods: list[str], pieces: tuple[torch.Tensor, ...]
    ) -> None:
        """Measure each method's peak at widths 1, 2, 3 on ``batch`` (the wider ones while a
        guess of their peak fits the budget) and resolve the budget after the first method's
        single column (once). Costs one prepare and up to 1 + 2 + 3 columns per method, once."""
        blocks = self.report.blocks
        widest = max(CALIBRATION_WIDTHS)
        columns = tuple(p[:1].repeat(widest, *([1] * (p.ndim - 1))) for p in pieces)
        if blocks.samples is None:
            blocks.samples = batch.size
        scale = blocks.samples / batch.size
        graph: dict[str, int] = {}  # method -> bytes its state retains (the cache's measure)

        def prepare(method: str) -> GraphState:
            if method not in self._graph_methods:  # functorch states refuse saved-tensor hooks
                return self._prepare(method, batch, self.params)
            state, graph[method] = graph_bytes(lambda: self._prepare(method, batch, self.params))
            return state

        def affordable(width: int, peaks: dict[int, int]) -> bool:
            if blocks.budget_bytes is None:
                self._resolve_block_budget(batch, peaks[1] * scale, graph)
            assert blocks.budget_bytes is not None
            return guess_next(width, peaks) * scale <= blocks.budget_bytes

        for method in methods:
            peaks = measure_widths(
                lambda m=method: prepare(m),
                lambda state, w: self._apply(state, tuple(c[:w] for c in columns)),
                CALIBRATION_WIDTHS,
                affordable,
                settle=lambda: release_freed_memory(self._device),
            )
            blocks.measured[method] = {w: int(p * scale) for w, p in peaks.items()}
            if blocks.budget_bytes is None:
                self._resolve_block_budget(batch, peaks[1] * scale, graph)
            release_freed_memory(self._device)  # this method's state

    def _resolve_block_budget(self, batch: Batch, one_column: float, graph: dict[str, int]) -> None:
        """``block_memory`` in bytes; ``"auto"``: what the graph cache would hold for this
        rank's data (capped by ``cache_memory``) less what it holds, divided by
        ``TRANSIENT_OVERHEAD`` (a product's short-lived tensors cost the process more than
        their bytes; the cache's long-lived ones do not), at least ``one_column``.
        ``graph``: the retained bytes of the states prepared on ``batch`` so far."""
        blocks = self.report.blocks
        if isinstance(blocks.requested, int):
            blocks.budget_bytes = blocks.requested
            return
        info = self.cache_info
        per_sample = info.predicted_bytes_per_sample
        if per_sample is None:
            reference = self._graph_methods[0] if self._graph_methods else self._methods[0]
            nbytes = next((graph[m] for m in self._graph_methods if m in graph), None)
            if nbytes is None:  # only forward-mode states so far: measure a reverse graph
                _, nbytes = graph_bytes(lambda: self._prepare(reference, batch, self.params))
            per_sample = nbytes / max(batch.size, 1)
        samples = self._local_samples()
        would_cache = min(info.budget_bytes, int(per_sample * samples)) - info.cached_bytes
        blocks.budget_bytes = max(math.ceil(one_column), int(would_cache / TRANSIENT_OVERHEAD))

    def _local_samples(self) -> int:
        """The number of samples on this rank (a pass that only reads the data if unknown)."""
        if self._num_data is not None and not _distributed():
            return self._num_data
        return sum(b.size for b in self.source.batches())

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        pieces = self.layout.split(block)
        total: torch.Tensor | None = None
        aux: list[torch.Tensor] = []
        count = 0
        all_cached = (
            self._checked
            and self.cache_info.total_batches is not None
            and len(self._cache) == self.cache_info.total_batches
        )
        # With every batch's graph in memory there is no forward pass, so the model's mode does
        # not matter: skip switching it (a loop over all modules, per product).
        with self._full_float32(), contextlib.nullcontext() if all_cached else self._model_mode():
            self._first_use()
            if all_cached:  # no data pass at all: every batch's graph is in memory
                batches: Iterator[Batch] = (
                    _cached_batch(self._cache[i]) for i in range(len(self._cache))
                )
                if self.check_deterministic:
                    # The cached batch shares storage with the user's tensors when no copy was
                    # needed: an in-place change of the data must raise, as without a cache.
                    batches = self.source.checked(batches)
            else:
                batches = self._batches()
            num_batches = 0
            num_params = len(self.layout.names)
            for batch in batches:
                parts = self._batch_product_named(batch, pieces)
                joined = self.layout.join(parts[:num_params])
                total = joined if total is None else total.add_(joined)
                aux = (
                    [a + b for a, b in zip(aux, parts[num_params:])]
                    if aux
                    else list(parts[num_params:])
                )
                count += batch.size
                num_batches += 1
            self.cache_info.total_batches = num_batches
        if total is None or count == 0:
            raise BatchSource._empty_error()
        total = self._reduce(total)
        aux = [self._reduce(a) for a in aux]
        if self._num_data is None:
            self._set_num_data(count)
        result = self._finalize(total, aux, block)
        # The sum is one reading pass without a mask; finite entries whose sum overflows (only
        # near the dtype's largest value) fall through to the exact check.
        if not torch.isfinite(result.sum()) and not torch.isfinite(result).all():
            if not torch.isfinite(block).all():
                raise InputError(f"{type(self).__name__} @ V: V holds NaN or inf entries")
            hint = (
                ""
                if self._dtype == torch.float64
                else "; if it is overflow, try dtype=torch.float64"
            )
            raise NonFiniteError(
                f"{type(self).__name__} @ V produced NaN/inf for a finite V: the data holds "
                f"non-finite values or the curvature overflows in {self._dtype} at these weights{hint}"
            )
        return result

    # ------------------------------------------------------------------ distribution
    def _reduce(self, total: torch.Tensor) -> torch.Tensor:
        if _distributed():
            total = total.contiguous()  # collectives need dense storage; join() gives a view
            torch.distributed.all_reduce(total)
        return total

    def _set_num_data(self, local_count: int) -> None:
        count = local_count
        if _distributed():
            t = torch.tensor([local_count], dtype=torch.float64, device=self._device)
            torch.distributed.all_reduce(t)
            count = int(t.item())
        if self.num_data_hint is not None and self.num_data_hint != count:
            raise InputError(
                f"num_data={self.num_data_hint} was given but the data holds {count} samples; "
                "drop num_data (curvscope counts), or check the DataLoader (drop_last=True?)"
            )
        self._num_data = count

    def clear_cache(self) -> None:
        """Free the cached batch graphs."""
        self._cache.clear()
        self.cache_info.cached_batches = 0
        self.cache_info.cached_bytes = 0


def _describe_inputs(inputs: Any) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"{tuple(inputs.shape)} ({inputs.dtype}, {inputs.device})"
    return describe(inputs)


_FOLD_WINS = (
    "a verified fold-bn variant replaces the same model with its BatchNorm unfolded (the fold "
    "removes the BatchNorm kernels and adds only per-weight work; it was faster in every "
    "measurement: a small CNN 2.48 -> 1.87 gp cached and 4.31 -> 2.70 gp uncached, with "
    "channels_last 2.55 -> 1.44 and 4.10 -> 2.30; PreResNet-110's double backward on a batch "
    "of 128 5.39 -> 3.85 s, with channels_last 5.48 -> 4.50 s; benchmarks/results/"
    "rewrites_cpu.md)"
)


def _with_method(state: GraphState, method: str, *, last_use: bool = False) -> GraphState:
    state.method, state.last_use = method, last_use
    return state


def _cached_batch(state: GraphState) -> Batch:
    assert state.batch is not None  # _try_cache keeps a state only with its batch
    return state.batch


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()
