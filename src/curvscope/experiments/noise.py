"""The noise scale s of paper 000 Theorem 1 (spec ``theory.md`` §1.4): the split-half
estimator (a) (:func:`split_half_noise`, no per-sample products), the per-sample Frobenius (b)
and quadratic-form (c) estimators (:func:`per_sample_noise`), and the spectrum of the split-half
difference D against the semicircle of Assumption 1 (:class:`HalfDifferenceOperator`,
:func:`noise_spectrum_check`).

Split the N samples into halves A and B of equal size n. With ``H_X = H_true + eps_X`` and
``eps_X`` of element variance ``sigma^2 / n``, the matrix

.. math:: D = \\tfrac12 (H_A - H_B)

has element variance ``sigma^2 / (2n)``, that of the noise ``eps`` of the full set of N = 2n
samples; so ``s^2 = ||D||_F^2 / P = P sigma^2 / N`` (Theorem 1's ``s^2 = q sigma^2``). Hutchinson
with Rademacher probes estimates it without per-sample products:

.. math:: \\hat s^2 = \\frac{1}{P n_v} \\sum_{v} \\|D v\\|^2 ,

each ``D v`` costing one product with each half (one full data pass for all probes at once).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from curvscope._validate import check_int, is_int
from curvscope.errors import InputError
from curvscope.operators.base import SymmetricOperator
from curvscope.persistence import savable
from curvscope.spectral import SpectralDensity, draw_probes, make_generator, mean_and_stderr

__all__ = [
    "HalfDifferenceOperator",
    "NoiseEstimate",
    "NoiseSpectrumCheck",
    "PerSampleNoiseEstimate",
    "noise_spectrum_check",
    "per_sample_noise",
    "split_half_noise",
]


@savable
@dataclass(frozen=True)
class NoiseEstimate:
    """Split-half estimate of the Theorem-1 noise scale (spec §1.4(a)).

    Attributes:
        s2: estimate of ``s^2 = ||eps||_F^2 / P`` for the full set of ``num_data`` samples.
        s2_stderr: its standard error over the probes.
        noise_scale: ``s = sqrt(s2)``.
        sigma2: ``sigma^2 = s^2 / q``, the per-sample element variance.
        q: ``P / N``.
        num_params: P.
        num_data: N (distinct samples; an augmented set counts its samples, not its views).
        half_size: samples per half (``N // 2``).
        num_probes: Rademacher probes used.
        seed: seed of the probes.
    """

    s2: float
    s2_stderr: float
    noise_scale: float
    sigma2: float
    q: float
    num_params: int
    num_data: int
    half_size: int
    num_probes: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field."""
        return asdict(self)


def split_half_noise(
    op_a: Any,
    op_b: Any,
    *,
    num_data: int,
    half_size: int,
    num_probes: int = 8,
    seed: int = 0,
) -> NoiseEstimate:
    """Estimate ``s^2`` of Theorem 1 from the operators of two disjoint halves (spec §1.4(a)).

    Args:
        op_a, op_b: the same curvature matrix over halves A and B (each ``half_size`` samples).
        num_data: N, the size of the full set whose noise is wanted.
        half_size: n, the samples in each half; the estimate of ``||D||_F^2 / P``, which is
            the noise of ``2n`` samples, is rescaled by ``2n / N`` to the full set.
        num_probes: Rademacher probes (>= 2, for a standard error), all in one block product.
        seed: seed of the CPU generator the probes come from.

    Returns:
        A :class:`NoiseEstimate`.

    Example:
        >>> import torch
        >>> from curvscope import DenseOperator
        >>> a, b = DenseOperator(torch.eye(4) * 3), DenseOperator(torch.eye(4))
        >>> split_half_noise(a, b, num_data=10, half_size=5, num_probes=2).s2  # ||I||_F^2 / 4
        1.0
    """
    check_int("num_probes", num_probes, minimum=2, expected="an integer >= 2 (for a stderr)")
    if op_a.shape != op_b.shape:
        raise InputError(
            f"the two half operators must have the same size; got {op_a.shape} and {op_b.shape}"
        )
    if not (is_int(half_size, minimum=1) and 2 * half_size <= num_data):
        raise InputError(
            f"half_size must be a positive integer with 2 * half_size <= num_data; got "
            f"half_size={half_size!r}, num_data={num_data!r}"
        )
    size = int(op_a.shape[0])
    probes = draw_probes(
        size, num_probes, generator=make_generator(seed), dtype=op_a.dtype, device=op_a.device
    )
    diff = ((op_a @ probes).double() - (op_b @ probes).double()) / 2
    mean, stderr = mean_and_stderr((diff**2).sum(0).cpu() / size)
    scale = 2 * half_size / num_data
    s2, stderr = mean * scale, stderr * scale
    q = size / num_data
    return NoiseEstimate(
        s2=s2,
        s2_stderr=stderr,
        noise_scale=math.sqrt(max(s2, 0.0)),
        sigma2=s2 / q,
        q=q,
        num_params=size,
        num_data=int(num_data),
        half_size=int(half_size),
        num_probes=num_probes,
        seed=seed,
    )


# ---------------------------------------------------------------------- estimators (b), (c)
@savable
@dataclass(frozen=True)
class PerSampleNoiseEstimate:
    """Per-sample estimates of the element variance ``sigma^2`` (spec §1.4(b) and (c)).

    Both come from the same products ``H_i v`` of ``num_samples`` per-sample matrices with
    ``num_probes`` shared Rademacher probes; standard errors are jackknife (leave one sample
    out), so they include the sampling of both the samples and the probes.

    Attributes:
        sigma2_frobenius, sigma2_frobenius_stderr: (b), the mean element variance
            ``||H_i - Hbar||_F^2 / P^2`` averaged over samples (no structural assumption).
        sigma2_quadratic, sigma2_quadratic_stderr: (c), ``Var_i(u^T H_i u) / 2`` with
            ``u = v / sqrt(P)`` (exact under Assumption 1, GOE-like fluctuations).
        ratio: (c) / (b); about 1 when Assumption 1 holds (a cheap check of it).
        s2_frobenius, s2_quadratic: ``q sigma^2`` of each, Theorem 1's ``s^2`` for N samples.
        q: ``P / N``.
        num_params, num_data: P and N.
        num_samples: n_s, the per-sample matrices used.
        num_probes: k, the shared Rademacher probes.
        seed: seed of the probes.
    """

    sigma2_frobenius: float
    sigma2_frobenius_stderr: float
    sigma2_quadratic: float
    sigma2_quadratic_stderr: float
    ratio: float
    s2_frobenius: float
    s2_quadratic: float
    q: float
    num_params: int
    num_data: int
    num_samples: int
    num_probes: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field."""
        return asdict(self)


def _frobenius(gram: torch.Tensor, size: int) -> torch.Tensor:
    """(b) from the per-probe Gram matrices ``G[v]_ij = (H_i v) . (H_j v)`` (shape k, n, n)."""
    n = gram.shape[-1]
    spread = gram.diagonal(dim1=-2, dim2=-1).sum(-1) - gram.sum((-2, -1)) / n
    return spread.mean() / ((n - 1) * size**2)


def _quadratic(forms: torch.Tensor) -> torch.Tensor:
    """(c) from the quadratic forms ``u^T H_i u`` (shape k, n): the probe mean of Var_i / 2."""
    return forms.var(dim=-1, correction=1).mean() / 2


def _jackknife(statistic: Any, *tensors: torch.Tensor, n: int) -> tuple[float, float]:
    """The statistic on all ``n`` samples and its leave-one-out jackknife standard error
    (``tensors`` index samples on their last dimension, or on the last two for Gram matrices)."""
    full = float(statistic(*tensors))
    if n < 3:
        return full, math.nan
    values = []
    for i in range(n):
        keep = torch.tensor([j for j in range(n) if j != i])
        values.append(
            float(
                statistic(
                    *(
                        t.index_select(-1, keep).index_select(-2, keep)
                        if t.ndim == 3
                        else t.index_select(-1, keep)
                        for t in tensors
                    )
                )
            )
        )
    loo = torch.tensor(values, dtype=torch.float64)
    stderr = math.sqrt((n - 1) / n * float(((loo - loo.mean()) ** 2).sum()))
    return full, stderr


def per_sample_noise(
    operators: Iterable[Any],
    *,
    num_data: int,
    num_probes: int = 8,
    seed: int = 0,
) -> PerSampleNoiseEstimate:
    """Estimate ``sigma^2`` from per-sample matrices by (b) and (c) of spec §1.4.

    With ``n_s`` per-sample matrices ``H_i`` and ``k`` shared Rademacher probes ``v``:

    .. math:: \\hat\\sigma^2_{(b)} = \\frac{\\sum_v \\sum_i \\|H_i v - \\bar H v\\|^2}
              {k (n_s - 1) P^2}, \\qquad
              \\hat\\sigma^2_{(c)} = \\frac1k \\sum_v \\tfrac12 \\mathrm{Var}_i(u^\\top H_i u),
              \\quad u = v / \\sqrt P .

    (b) estimates the mean element variance whatever the structure; (c) equals it only for
    GOE-like fluctuations (paper 000 Assumption 1), so the ratio (c)/(b) checks that
    assumption. ``Hbar v`` is the mean of the products (free). Memory: the ``n_s x k``
    products are kept (``n_s k P`` numbers).

    Args:
        operators: the per-sample matrices (e.g. a curvature operator over one sample each),
            at least 3 so that the jackknife standard errors are defined.
        num_data: N of the set whose noise ``s^2 = (P/N) sigma^2`` is wanted.
        num_probes: k, shared Rademacher probes (one block product per sample).
        seed: seed of the CPU generator the probes come from.

    Example:
        >>> import torch
        >>> from curvscope import DenseOperator
        >>> ops = [DenseOperator(torch.eye(3) * c) for c in (1.0, 2.0, 3.0)]
        >>> round(per_sample_noise(ops, num_data=3, num_probes=2).sigma2_frobenius, 6)  # 1/3
        0.333333
    """
    check_int("num_probes", num_probes, minimum=1, expected="a positive integer (e.g. 8)")
    check_int("num_data", num_data, minimum=1, expected="a positive integer (N)")
    products: list[torch.Tensor] = []
    probes = size = None
    for op in operators:
        if probes is None:
            size = int(op.shape[0])
            probes = draw_probes(
                size, num_probes, generator=make_generator(seed), dtype=op.dtype, device=op.device
            )
        elif tuple(op.shape) != (size, size):
            raise InputError(
                f"per-sample operators must all have the same size; got {tuple(op.shape)} "
                f"after ({size}, {size})"
            )
        products.append((op @ probes).double().cpu())
    n = len(products)
    if n < 3 or probes is None or size is None:
        raise InputError(
            f"per_sample_noise needs at least 3 per-sample operators (for a variance and its "
            f"jackknife stderr), got {n}; draw more samples (estimator_samples >= 3)"
        )
    stack = torch.stack(products)  # (n, P, k)
    gram = torch.einsum("ipk,jpk->kij", stack, stack)
    forms = torch.einsum("ipk,pk->ki", stack, probes.double().cpu()) / size
    frob, frob_se = _jackknife(lambda g: _frobenius(g, size), gram, n=n)
    quad, quad_se = _jackknife(_quadratic, forms, n=n)
    q = size / num_data
    return PerSampleNoiseEstimate(
        sigma2_frobenius=frob,
        sigma2_frobenius_stderr=frob_se,
        sigma2_quadratic=quad,
        sigma2_quadratic_stderr=quad_se,
        ratio=quad / frob if frob > 0 else math.nan,
        s2_frobenius=q * frob,
        s2_quadratic=q * quad,
        q=q,
        num_params=size,
        num_data=int(num_data),
        num_samples=n,
        num_probes=num_probes,
        seed=seed,
    )


# ---------------------------------------------------------------------- spectrum of D
class HalfDifferenceOperator(SymmetricOperator):
    """``D = (H_A - H_B) / 2`` of two half-data operators (spec §1.4(a)), for SLQ.

    Each product costs one product with each half (one data pass). Assumption 1 predicts a
    semicircle of radius ``2 s_D`` for its spectrum, ``s_D^2 = ||D||_F^2 / P``.
    """

    def __init__(self, op_a: Any, op_b: Any) -> None:
        if op_a.shape != op_b.shape or op_a.dtype != op_b.dtype:
            raise InputError(
                f"the two half operators must have the same size and dtype; got "
                f"{op_a.shape} {op_a.dtype} and {op_b.shape} {op_b.dtype}"
            )
        self.op_a, self.op_b = op_a, op_b

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.op_a.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> torch.dtype:
        return self.op_a.dtype

    @property
    def device(self) -> torch.device:
        return torch.device(self.op_a.device)

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        return ((self.op_a @ block) - (self.op_b @ block)) / 2

    def fingerprint(self) -> dict[str, str] | None:
        a, b = self.op_a.fingerprint(), self.op_b.fingerprint()
        if a is None or b is None:
            return None
        return {**{f"A {k}": v for k, v in a.items()}, **{f"B {k}": v for k, v in b.items()}}


@savable
@dataclass(frozen=True)
class NoiseSpectrumCheck:
    """The spectrum of ``D = (H_A - H_B)/2`` beside the semicircle of Assumption 1 (§1.4(a)).

    For a GOE-like ``D`` of scale ``s_D`` (``s_D^2 = ||D||_F^2 / P``) the spectral density is
    the semicircle of radius ``2 s_D``: moments ``m2 = s_D^2``, ``m4 = 2 s_D^4``, so the
    scale-free ratio ``m4 / m2^2 = 2`` (larger for low-rank or heavy-tailed fluctuations).

    Attributes:
        density: the SLQ density of D.
        scale: ``s_D`` from the split-half Hutchinson estimate (other probes than the SLQ's).
        edge: ``2 s_D``, the semicircle's radius.
        smallest, largest: extremal Ritz values of D (inner bounds of its spectrum).
        m2, m2_stderr, m4, m4_stderr: SLQ moments of D's density, stderr over probes.
        kurtosis, kurtosis_stderr: ``m4 / m2^2`` of the probe means and its jackknife stderr
            over probes (semicircle: 2).
    """

    density: SpectralDensity
    scale: float
    edge: float
    smallest: float
    largest: float
    m2: float
    m2_stderr: float
    m4: float
    m4_stderr: float
    kurtosis: float
    kurtosis_stderr: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (without the density's arrays)."""
        out = {k: v for k, v in asdict(self).items() if k != "density"}
        out["semicircle_m2"], out["semicircle_m4"] = self.scale**2, 2 * self.scale**4
        return out


def noise_spectrum_check(density: SpectralDensity, *, scale: float) -> NoiseSpectrumCheck:
    """Compare the SLQ density of ``D`` with the semicircle of radius ``2 * scale``.

    Per probe the Gauss rule gives the moments ``sum_k w_k theta_k^j`` (exact for ``j <= 2m-1``);
    their mean over probes estimates ``tr(D^j)/P`` and their spread its standard error.
    """
    nodes = torch.as_tensor(np.asarray(density.nodes, dtype=np.float64))
    weights = torch.as_tensor(np.asarray(density.weights, dtype=np.float64))
    probe = torch.as_tensor(np.asarray(density.probe_index, dtype=np.int64))
    count = int(density.num_probes)
    m2 = torch.zeros(count, dtype=torch.float64).index_add_(0, probe, weights * nodes**2)
    m4 = torch.zeros(count, dtype=torch.float64).index_add_(0, probe, weights * nodes**4)

    def stats(x: torch.Tensor) -> tuple[float, float]:
        return mean_and_stderr(x) if count > 1 else (float(x.mean()), math.nan)

    def ratio(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a.mean() / b.mean().clamp_min(1e-300) ** 2)

    # m4 / m2^2 as a ratio of the probe means (per-probe ratios are biased by the probe's
    # weights), its stderr by the jackknife over probes
    kurt = ratio(m4, m2)
    if count > 1:
        keep = [torch.tensor([j for j in range(count) if j != i]) for i in range(count)]
        loo = torch.tensor([ratio(m4[k], m2[k]) for k in keep], dtype=torch.float64)
        kurt_se = math.sqrt((count - 1) / count * float(((loo - loo.mean()) ** 2).sum()))
    else:
        kurt_se = math.nan

    lo, hi = density.extremal
    return NoiseSpectrumCheck(
        density=density,
        scale=float(scale),
        edge=2 * float(scale),
        smallest=float(lo),
        largest=float(hi),
        **dict(zip(("m2", "m2_stderr"), stats(m2))),
        **dict(zip(("m4", "m4_stderr"), stats(m4))),
        kurtosis=kurt,
        kurtosis_stderr=kurt_se,
    )
