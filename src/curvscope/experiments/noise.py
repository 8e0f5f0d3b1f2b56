"""The noise scale s of paper 000 Theorem 1 by the split-half estimator (spec ``theory.md`` §1.4(a)).

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
from dataclasses import asdict, dataclass
from typing import Any

from curvscope._validate import check_int, is_int
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.spectral import draw_probes, make_generator, mean_and_stderr

__all__ = ["NoiseEstimate", "split_half_noise"]


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
