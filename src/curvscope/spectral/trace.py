"""Stochastic trace estimators: Hutchinson and Hutch++ (all probes of a round in one product).

Hutchinson (1989): for probes with :math:`\\mathbb{E}[vv^\\top] = I`,
:math:`\\operatorname{tr} M = \\mathbb{E}[v^\\top M v]`. Hutch++ (Meyer, Musco, Musco & Woodruff
2021, "Hutch++: optimal stochastic trace estimation") first removes a sketched top subspace
exactly and applies Hutchinson to the deflated rest, which has a much smaller variance when the
spectrum decays (spec ``theory.md`` §1.5 gives the per-probe variance).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from curvscope._validate import check_int
from curvscope._version import __version__
from curvscope.errors import InputError, NonFiniteError
from curvscope.operators.adapter import as_operator
from curvscope.persistence import savable
from curvscope.spectral.probes import check_probe_kind, draw_probes, make_generator

__all__ = ["TraceEstimate", "hutchinson_trace", "hutchpp_trace", "mean_and_stderr"]


@savable
@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate with its standard error.

    Attributes:
        value: the estimate of :math:`\\operatorname{tr} M`.
        stderr: its standard error (sample standard deviation of the random part over
            :math:`\\sqrt{n}`); ``|value - tr M| < 4 stderr`` is the usual check.
        num_matvecs: matrix-vector products spent: probe columns multiplied, however many
            block products carried them (``num_matvecs=`` is the budget's name too).
        method: ``"hutchinson"``, ``"hutchpp"`` or ``"slq"``.
        seed, size: the seed and P.
        timings: seconds.
        version: curvscope version.
    """

    value: float
    stderr: float
    num_matvecs: int
    method: str = "hutchinson"
    seed: int = 0
    size: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    version: str = __version__


def _quadratic_forms(op: Any, block: torch.Tensor) -> torch.Tensor:
    """``v_i^T M v_i`` for each column, accumulated in float64 (one block product)."""
    product = op @ block
    forms = (block.double() * product.double()).sum(0)
    if not torch.isfinite(forms).all():
        raise NonFiniteError(
            "a product op @ V contains NaN or inf; check that the operator is finite"
        )
    return forms.cpu()


def mean_and_stderr(forms: torch.Tensor) -> tuple[float, float]:
    """Sample mean of ``forms`` and its standard error (sample standard deviation over sqrt(n)).

    Example:
        >>> mean_and_stderr(torch.tensor([1.0, 3.0]))
        (2.0, 1.0)
    """
    return float(forms.mean()), float(forms.std(correction=1) / math.sqrt(forms.numel()))


def hutchinson_trace(
    op: Any,
    *,
    num_matvecs: int,
    seed: int = 0,
    probe: str = "rademacher",
    block_size: int | None = 16,
    rtol: float | None = None,
) -> TraceEstimate:
    """Hutchinson's estimator :math:`\\frac1n \\sum_{i=1}^n v_i^\\top M v_i`, in rounds of block products.

    .. math::

        \\operatorname{tr} M = \\mathbb{E}[v^\\top M v], \\qquad
        \\operatorname{Var}(v^\\top M v) = 2 (\\|M\\|_F^2 - \\textstyle\\sum_i M_{ii}^2)
        \\ \\text{(Rademacher)}.

    Probes are drawn one column at a time from one generator, so the estimate does not depend on
    ``block_size``; each round multiplies ``block_size`` of them in one block product.

    Args:
        op: a symmetric operator (see :func:`~curvscope.spectral.lanczos.lanczos`).
        num_matvecs: number of probes n (>= 2, for a standard error); the budget when ``rtol``
            is given.
        seed: seed of the CPU generator the probes come from.
        probe: ``"rademacher"`` or ``"gaussian"``.
        block_size: probes per block product (``None``: all in one product). Rounds bound the
            memory of the probe and product blocks (``2 * block_size * P`` numbers).
        rtol: stop after the first round (of at least two probes) whose standard error is
            ``<= rtol * |estimate|``; ``None`` spends the whole budget. Unlike a stop on the
            change of the running mean (PyHessian's ``tol``), this is a statement about the error.

    Example:
        >>> import torch
        >>> from curvscope import DenseOperator
        >>> est = hutchinson_trace(DenseOperator(torch.eye(50)), num_matvecs=4)
        >>> round(est.value, 6), est.stderr
        (50.0, 0.0)
    """
    tick = time.perf_counter()
    op = as_operator(op)
    num_matvecs = check_int(
        "num_matvecs",
        num_matvecs,
        minimum=2,
        expected="an integer >= 2 (two probes give a standard error)",
    )
    check_probe_kind(probe)
    if block_size is None:
        block_size = num_matvecs
    block_size = check_int(
        "block_size", block_size, minimum=1, expected="an integer >= 1 (probes per block product)"
    )
    if rtol is not None and not (
        isinstance(rtol, (int, float)) and math.isfinite(rtol) and rtol > 0
    ):
        raise InputError(f"rtol must be a positive finite number or None, got {rtol!r}")
    size = op.shape[0]
    generator = make_generator(seed)
    forms = torch.empty(0, dtype=torch.float64)
    for start in range(0, num_matvecs, block_size):
        columns = [
            draw_probes(size, 1, generator=generator, probe=probe, dtype=op.dtype)
            for _ in range(min(block_size, num_matvecs - start))
        ]
        block = torch.cat(columns, dim=1).to(op.device)
        forms = torch.cat([forms, _quadratic_forms(op, block)])
        if rtol is not None and forms.numel() >= 2:
            mean, err = mean_and_stderr(forms)
            if err <= rtol * abs(mean):
                break
    value, stderr = mean_and_stderr(forms)
    return TraceEstimate(
        value=value,
        stderr=stderr,
        num_matvecs=forms.numel(),
        method="hutchinson",
        seed=seed,
        size=size,
        timings={"total": time.perf_counter() - tick},
    )


def hutchpp_trace(
    op: Any, *, num_matvecs: int, seed: int = 0, probe: str = "rademacher"
) -> TraceEstimate:
    """Hutch++ (Meyer et al. 2021): exact trace on a sketched subspace + Hutchinson on the rest.

    With :math:`s = \\lfloor n/3 \\rfloor`, :math:`S \\in \\mathbb{R}^{P\\times s}`,
    :math:`Q = \\operatorname{orth}(M S)`, :math:`g = n - 2s` probes :math:`G`:

    .. math::

        \\widehat{\\operatorname{tr}} = \\operatorname{tr}(Q^\\top M Q)
        + \\frac1g \\operatorname{tr}\\big(G^\\top (I - QQ^\\top) M (I - QQ^\\top) G\\big).

    Three block products (``MS``, ``MQ``, ``M(I-QQ^T)G``). The standard error is that of the
    Hutchinson part given Q.

    Args:
        op: a symmetric operator.
        num_matvecs: total products n (>= 6, so the Hutchinson part has >= 2 probes).
        seed: seed of the CPU generator.
        probe: ``"rademacher"`` or ``"gaussian"``.
    """
    tick = time.perf_counter()
    op = as_operator(op)
    num_matvecs = check_int(
        "num_matvecs",
        num_matvecs,
        minimum=6,
        expected="an integer >= 6 (Hutch++ splits it in thirds and needs two probes per part)",
    )
    check_probe_kind(probe)
    size = op.shape[0]
    generator = make_generator(seed)
    sketch = num_matvecs // 3
    rest = num_matvecs - 2 * sketch
    kwargs = {"generator": generator, "probe": probe, "dtype": op.dtype, "device": op.device}
    sketch_block = draw_probes(size, sketch, **kwargs)
    probes = draw_probes(size, rest, **kwargs)
    basis, _ = torch.linalg.qr(op @ sketch_block)
    exact_part = float(_quadratic_forms(op, basis).sum())
    deflated = probes - basis @ (basis.T @ probes)
    forms = _quadratic_forms(op, deflated)
    mean, stderr = mean_and_stderr(forms)
    return TraceEstimate(
        value=exact_part + mean,
        stderr=stderr,
        num_matvecs=2 * sketch + rest,
        method="hutchpp",
        seed=seed,
        size=size,
        timings={"total": time.perf_counter() - tick},
    )
