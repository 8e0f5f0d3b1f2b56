"""Paper 000 Theorem 1: low-rank true Hessian plus GOE noise (theory.md §1.2-1.3).

With ``H_emp = H_true + eps``, ``eps`` GOE with element variance ``sigma^2 / N`` and ``P``
parameters, the noise scale is ``s = sqrt(P/N) sigma``; the noise alone is a semicircle of
radius ``2 s``. An eigenvalue ``lambda`` of the low-rank ``H_true`` with ``|lambda| > s``
produces an outlier at ``lambda + s^2/lambda``; one with ``|lambda| <= s`` is absorbed in the bulk
and the edge ``±2 s`` is set by the noise alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from curvscope._validate import check_int
from curvscope.errors import InputError
from curvscope.persistence import savable

__all__ = [
    "DeflatedExtremes",
    "SpikedExtremes",
    "deflated_extremes",
    "noise_scale",
    "spiked_extremes",
]


def noise_scale(
    *,
    sigma: float | None = None,
    num_params: int | None = None,
    num_data: int | None = None,
    scale: float | None = None,
) -> float:
    """``s = sqrt(P/N) sigma`` (theory.md §1.3), or ``scale`` itself when given instead.

    Only ``s^2 = q sigma^2`` (``q = P/N``) enters Theorem 1.
    """
    if scale is not None:
        if any(v is not None for v in (sigma, num_params, num_data)):
            raise InputError(
                "give either scale= (the noise scale s) or sigma=, num_params=, num_data=; not both"
            )
        value = float(scale)
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"the noise scale must be a positive number; got {scale!r}")
        return value
    missing = [
        n
        for n, v in (("sigma", sigma), ("num_params", num_params), ("num_data", num_data))
        if v is None
    ]
    if missing:
        raise InputError(
            f"missing {', '.join(missing)}: the noise scale is s = sqrt(num_params/num_data) * sigma; "
            "give all three, or the noise scale directly as scale="
        )
    for name, v in (("num_params", num_params), ("num_data", num_data)):
        check_int(name, v, minimum=1, expected="a positive int")
    sig = float(sigma)  # type: ignore[arg-type]
    if not math.isfinite(sig) or sig <= 0:
        raise InputError(
            f"sigma (per-sample Hessian element standard deviation) must be > 0; got {sigma!r}"
        )
    return math.sqrt(num_params / num_data) * sig  # type: ignore[operator]


def _values(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=float))
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a number or a 1-D array of numbers; got {type(values).__name__}"
        ) from None
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be a non-empty 1-D array of finite numbers; got {values!r}")
    return arr


@savable
@dataclass(frozen=True, eq=False)
class SpikedExtremes:
    """Predicted spectrum edges of ``H_emp`` from the spikes of ``H_true`` (000 Theorem 1).

    Attributes:
        true_eigenvalues: the given eigenvalues of ``H_true`` (its non-zero spikes).
        empirical: predicted location of each in ``H_emp``: ``lambda + s^2/lambda`` when it
            separates, else the bulk edge ``±2s`` (sign of ``lambda``) where it is absorbed.
        separated: whether ``|lambda| > s`` (an outlier survives).
        noise_scale: ``s``.
        largest, smallest: predicted ``lambda'_1`` and ``lambda'_P`` of ``H_emp``.
        largest_from_noise, smallest_from_noise: True where that extreme is the edge ``±2s``
            set by the noise alone (no spike above the threshold on that side).
    """

    true_eigenvalues: np.ndarray
    empirical: np.ndarray
    separated: np.ndarray
    noise_scale: float
    largest: float
    smallest: float
    largest_from_noise: bool
    smallest_from_noise: bool


def spiked_extremes(
    true_extremes: Any,
    *,
    sigma: float | None = None,
    num_params: int | None = None,
    num_data: int | None = None,
    scale: float | None = None,
) -> SpikedExtremes:
    """Empirical-Hessian extremes predicted from true-Hessian spikes (000 Theorem 1, §1.3).

    .. math:: \\lambda' = \\lambda + \\frac{s^2}{\\lambda} \\text{ if } |\\lambda| > s,
       \\text{ else the edge } \\pm 2s, \\qquad s = \\sqrt{P/N}\\,\\sigma.

    Ambiguity (theory.md §1.3): the extracted theorem is garbled ("lambda + P sigma^2"); this is
    the form that follows from Lemmas 2-3 and the paper's own threshold ``lambda > sqrt(P/N) sigma``.

    Args:
        true_extremes: eigenvalue(s) of the low-rank ``H_true`` (e.g. ``[lambda_1, lambda_P]``).
        sigma: per-sample Hessian element standard deviation; num_params: P; num_data: N.
        scale: the noise scale ``s`` directly, instead of sigma/num_params/num_data.

    Example:
        >>> from curvscope.rmt import spiked_extremes
        >>> r = spiked_extremes([3.0, 0.6], scale=1.0)
        >>> r.empirical.round(4).tolist(), r.separated.tolist()
        ([3.3333, 2.0], [True, False])
    """
    lam = _values("true_extremes", true_extremes)
    s = noise_scale(sigma=sigma, num_params=num_params, num_data=num_data, scale=scale)
    sep = np.abs(lam) > s
    safe = np.where(lam == 0, 1.0, lam)
    emp = np.where(sep, lam + s**2 / safe, np.where(lam >= 0, 2 * s, -2 * s))
    top = emp[sep & (lam > 0)]
    bottom = emp[sep & (lam < 0)]
    largest = float(max(2 * s, top.max())) if top.size else 2 * s
    smallest = float(min(-2 * s, bottom.min())) if bottom.size else -2 * s
    return SpikedExtremes(lam, emp, sep, s, largest, smallest, top.size == 0, bottom.size == 0)


@savable
@dataclass(frozen=True, eq=False)
class DeflatedExtremes:
    """True-Hessian eigenvalues inferred from measured empirical extremes (inverse of Theorem 1).

    Attributes:
        empirical_eigenvalues: the measured values ``lambda'``.
        true: ``(lambda' + sign(lambda') sqrt(lambda'^2 - 4 s^2)) / 2`` where ``|lambda'| > 2s``;
            NaN where ``|lambda'| <= 2s``: such a value is the noise edge, and the true
            eigenvalue is only known to satisfy ``|lambda| <= s``.
        resolved: ``|lambda'| > 2s``.
        noise_scale: ``s``.
        bound: ``s``, the bound on ``|lambda|`` for the unresolved values.
        notes: one line per unresolved value, saying so.
    """

    empirical_eigenvalues: np.ndarray
    true: np.ndarray
    resolved: np.ndarray
    noise_scale: float
    bound: float
    notes: tuple[str, ...]


def deflated_extremes(
    empirical_extremes: Any,
    *,
    sigma: float | None = None,
    num_params: int | None = None,
    num_data: int | None = None,
    scale: float | None = None,
) -> DeflatedExtremes:
    """Predicted true-Hessian extremes from measured empirical ones (theory.md §1.3, inversion).

    .. math:: \\lambda = \\frac{\\lambda' + \\operatorname{sign}(\\lambda')\\sqrt{\\lambda'^2 - 4s^2}}{2}
       \\quad (|\\lambda'| > 2s).

    Below the threshold the measured value is the noise edge and carries no information about
    the true eigenvalue beyond ``|lambda| <= s``; the result marks it unresolved (NaN) and says so.
    """
    emp = _values("empirical_extremes", empirical_extremes)
    s = noise_scale(sigma=sigma, num_params=num_params, num_data=num_data, scale=scale)
    res = np.abs(emp) > 2 * s
    root = np.sqrt(np.clip(emp**2 - 4 * s**2, 0, None))
    true = np.where(res, (emp + np.sign(emp) * root) / 2, np.nan)
    notes = tuple(
        f"lambda'={v:.6g} is within the noise edge ±2s = ±{2 * s:.6g}: set by the noise alone; "
        f"the true eigenvalue only satisfies |lambda| <= s = {s:.6g}"
        for v in emp[~res]
    )
    return DeflatedExtremes(emp, true, res, s, s, notes)
