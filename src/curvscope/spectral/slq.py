"""Stochastic Lanczos quadrature (SLQ): the spectral density as Ritz nodes and Gauss weights.

Paper 000 §5 (spec ``theory.md`` §1.5): m Lanczos steps from a probe give
:math:`T_m = U \\operatorname{diag}(\\theta) U^\\top`; the probe's spectral measure is
approximated by the Gauss rule :math:`\\sum_k w_k \\delta_{\\theta_k}`, :math:`w_k = U_{1k}^2`,
exact for polynomials of degree :math:`\\le 2m - 1`. With :math:`\\mathbb{E}[vv^\\top] = I` it
estimates the density :math:`\\mu = \\frac1P \\sum_i \\delta_{\\lambda_i}` without bias in its
moments; several probes are pooled by averaging their measures.

``rule="averaged"`` (an option, not the paper's rule) replaces each probe's Gauss rule by the
mean of the Gauss rules of its last two steps, :math:`\\frac12 (G_m + G_{m-1})`: 2m - 1 nodes,
positive weights, exact to degree 2m - 3, no extra product. Its CDF is the mean of the two
rules' CDFs, so its Wasserstein-1 distance to the spectrum (the L1 distance of CDFs) is never more
than the mean of theirs, and less where they err on opposite sides, as the Gauss rule does on a
spectrum with a symmetric cluster at 0, where its W1 swings with the parity of m. Measured: on
the digits MLP Hessian 6.6e-4 against 8.7e-4 / 1.19e-3 for G_79 / G_80 (below both), lower than
G_m on five planted spectra (``benchmarks/results/slq_reorth_w1.md`` §5); on a planted spectrum
with 70 % of its eigenvalues in a 1e-4 cluster at 0 (``tests/test_slq_gauss_rule.py``) it lay
between the two parities (0.85-0.93x their mean at m = 20..25).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from curvscope._validate import check_int
from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.spectral.lanczos import LanczosResult, lanczos, ritz_pairs
from curvscope.spectral.trace import TraceEstimate

__all__ = ["Moments", "NegativeMass", "RitzPair", "SpectralDensity", "slq"]

RULES = ("gauss", "averaged")


def _check_rule(rule: Any) -> str:
    if rule not in RULES:
        raise InputError(
            f"rule must be 'gauss' (the m-node Gauss rule of each probe, paper 000) or "
            f"'averaged' (the mean of the Gauss rules of m and m - 1 steps), got {rule!r}"
        )
    return str(rule)


def _probe_rule(result: LanczosResult, probe: int, rule: str) -> tuple[np.ndarray, ...]:
    """``(nodes, weights, residuals)`` of one probe under ``rule``, nodes ascending."""
    nodes, weights, residuals = result.ritz(probe)
    steps = int(result.steps[probe])
    if rule == "gauss" or steps < 2:
        return nodes, weights, residuals
    before = ritz_pairs(result.alphas[probe], result.betas[probe], steps - 1)
    nodes = np.concatenate([nodes, before[0]])
    order = np.argsort(nodes, kind="stable")
    weights = np.concatenate([weights, before[1]]) / 2
    residuals = np.concatenate([residuals, before[2]])
    return nodes[order], weights[order], residuals[order]


@savable
@dataclass(frozen=True)
class RitzPair:
    """One quadrature node: its ``weight`` (pooled unless a probe was chosen), ``node``, ``probe``."""

    weight: float
    node: float
    probe: int


@savable
@dataclass(frozen=True)
class Moments:
    """Pooled moments :math:`\\int \\lambda^j d\\hat\\mu` for ``j = 0..k`` with standard errors.

    ``values[j]`` estimates :math:`\\operatorname{tr}(M^j)/P`; ``stderr[j]`` is the standard
    deviation over probes divided by :math:`\\sqrt{n_v}` (NaN with one probe).
    """

    orders: np.ndarray
    values: np.ndarray
    stderr: np.ndarray
    per_probe: np.ndarray


@savable
@dataclass(frozen=True)
class NegativeMass:
    """Negative spectral mass by the well-separated rule of paper 000 §5.3 (spec §1.6).

    Attributes:
        mass: mean over probes of the weight of negative Ritz values outside the zero cluster.
        naive: mean over probes of the weight of all negative Ritz values.
        zero_cluster: mean over probes of the weight of the zero cluster.
        count: total number of counted negative Ritz values over all probes.
        tau: ``(num_probes,)`` separation used per probe.
        c_sep, tau_abs: the rule's parameters.
    """

    mass: float
    naive: float
    zero_cluster: float
    count: int
    tau: np.ndarray
    c_sep: float
    tau_abs: float

    def __float__(self) -> float:
        return float(self.mass)


@savable
@dataclass(frozen=True)
class SpectralDensity:
    """Ritz nodes and Gauss-quadrature weights of every probe (paper 000, spec §1.5).

    Flat arrays over all probes; ``probe_index[n]`` names the probe of entry ``n``.

    Attributes:
        nodes: Ritz values :math:`\\theta` (ascending within each probe).
        weights: Gauss weights :math:`w = U_{1k}^2`; each probe's weights sum to 1.
        residuals: residual bounds :math:`\\beta_s |U_{sk}| = \\|M y_k - \\theta_k y_k\\|`.
        rule: ``"gauss"`` (each probe's m-node Gauss rule, the paper's) or ``"averaged"``
            (:math:`\\frac12 (G_m + G_{m-1})`: nodes, halved weights and residual bounds of both
            rules, ascending).
        probe_index: probe of each entry.
        steps: ``(num_probes,)`` Lanczos steps each probe took.
        size: P.
        num_steps, num_probes, seed, probe, reorthogonalize: the inputs.
        dtype, device: of the products.
        timings: seconds (``products``, ``reorthogonalization``, ``checkpoint``, ``total``).
        num_products: block products (Lanczos steps, each one data pass for all probes)
            computed by the call that made it; :meth:`trace` reports the columns,
            ``steps.sum()``, as ``num_matvecs``.
        version: curvscope version.
    """

    nodes: np.ndarray
    weights: np.ndarray
    residuals: np.ndarray
    probe_index: np.ndarray
    steps: np.ndarray
    size: int
    num_steps: int
    num_probes: int
    seed: int
    probe: str
    reorthogonalize: bool
    dtype: str
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    num_products: int = 0
    rule: str = "gauss"
    version: str = __version__

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_lanczos(cls, result: LanczosResult, rule: str = "gauss") -> SpectralDensity:
        """Solve each probe's tridiagonal eigenproblem (float64) and collect the quadrature
        (``rule``: see :func:`slq`)."""
        rule = _check_rule(rule)
        parts = [_probe_rule(result, i, rule) for i in range(result.num_probes)]
        index = np.concatenate([np.full(len(p[0]), i, dtype=np.int64) for i, p in enumerate(parts)])
        return cls(
            nodes=np.concatenate([p[0] for p in parts]),
            weights=np.concatenate([p[1] for p in parts]),
            residuals=np.concatenate([p[2] for p in parts]),
            probe_index=index,
            steps=result.steps.copy(),
            size=result.size,
            num_steps=result.num_steps,
            num_probes=result.num_probes,
            seed=result.seed,
            probe=result.probe,
            reorthogonalize=result.reorthogonalize,
            dtype=result.dtype,
            device=result.device,
            timings=dict(result.timings),
            num_products=result.num_products,
            rule=rule,
            version=__version__,
        )

    # ------------------------------------------------------------------ views
    def probe_nodes(self, probe: int) -> tuple[np.ndarray, np.ndarray]:
        """``(nodes, weights)`` of one probe (its weights sum to 1)."""
        if not 0 <= probe < self.num_probes:
            raise InputError(f"probe index must be in [0, {self.num_probes}), got {probe}")
        mask = self.probe_index == probe
        return self.nodes[mask], self.weights[mask]

    @property
    def pooled_weights(self) -> np.ndarray:
        """Weights of the pooled measure (each probe's weights divided by ``num_probes``)."""
        return self.weights / self.num_probes

    @property
    def extremal(self) -> tuple[float, float]:
        """``(smallest, largest)`` Ritz value over all probes (inner bounds of the spectrum)."""
        return float(self.nodes.min()), float(self.nodes.max())

    def _require_gauss(self, what: str) -> None:
        if self.rule != "gauss":
            raise InputError(
                f"{what} is defined on each probe's Gauss rule, but this density holds the "
                f"{self.rule!r} rule; run slq(..., rule='gauss') (the default) for it"
            )

    # ------------------------------------------------------------------ derived quantities
    def negative_mass(self, *, c_sep: float = 1.0, tau_abs: float = 0.0) -> NegativeMass:
        """Weight of negative Ritz values well separated from the zero cluster (spec §1.6).

        Per probe with m Ritz pairs: :math:`k^* = \\arg\\min_k |\\theta_k|` (ties: larger weight),

        .. math::

            \\tau = \\max\\big(\\tau_{abs},\\ c_{sep} (\\theta_{max} - \\theta_{min}) / m^2\\big),
            \\quad Z = \\{k : |\\theta_k - \\theta_{k^*}| \\le \\tau\\},

        and the negative mass is :math:`\\sum_{k \\notin Z, \\theta_k < 0} w_k`. The width
        :math:`(\\theta_{max} - \\theta_{min})/m^2` is the resolution of an m-node Gauss rule near
        the end of a spectrum; Ritz values closer than that to the near-zero node are treated as
        part of the zero peak. Probes are averaged. ``naive`` is the plain
        :math:`\\sum_{\\theta_k < 0} w_k`.

        Args:
            c_sep: multiplier of the resolution width (default 1, fits paper 000 table 3).
            tau_abs: absolute floor on the separation.
        """
        self._require_gauss("negative_mass (paper 000's rule on Ritz values)")
        if not (c_sep >= 0 and tau_abs >= 0 and math.isfinite(c_sep) and math.isfinite(tau_abs)):
            raise InputError(
                f"c_sep and tau_abs must be finite and >= 0, got c_sep={c_sep}, tau_abs={tau_abs}"
            )
        masses, naive, zero, taus, count = [], [], [], [], 0
        for i in range(self.num_probes):
            theta, w = self.probe_nodes(i)
            m = len(theta)
            k_star = np.lexsort((-w, np.abs(theta)))[0]
            tau = max(tau_abs, c_sep * (theta.max() - theta.min()) / m**2)
            cluster = np.abs(theta - theta[k_star]) <= tau
            negative = (theta < 0) & ~cluster
            masses.append(w[negative].sum())
            naive.append(w[theta < 0].sum())
            zero.append(w[cluster].sum())
            taus.append(tau)
            count += int(negative.sum())
        return NegativeMass(
            mass=float(np.mean(masses)),
            naive=float(np.mean(naive)),
            zero_cluster=float(np.mean(zero)),
            count=count,
            tau=np.asarray(taus),
            c_sep=float(c_sep),
            tau_abs=float(tau_abs),
        )

    def top_weights(self, k: int = 3, *, probe: int | None = None) -> tuple[RitzPair, ...]:
        """The ``k`` heaviest ``(weight, node)`` pairs (paper 000 table 3), heaviest first.

        Over the pooled measure, or over one probe's own weights when ``probe`` is given.
        """
        check_int("k", k, minimum=1, expected="a positive integer")
        self._require_gauss("top_weights (paper 000 table 3's Ritz weights)")
        if probe is None:
            nodes, weights, index = self.nodes, self.pooled_weights, self.probe_index
        else:
            nodes, weights = self.probe_nodes(probe)
            index = np.full(len(nodes), probe)
        order = np.argsort(-weights, kind="stable")[:k]
        return tuple(RitzPair(float(weights[n]), float(nodes[n]), int(index[n])) for n in order)

    def moments(self, k: int) -> Moments:
        """Moments :math:`\\hat m_j = \\frac{1}{n_v} \\sum_v \\sum_k w_k \\theta_k^j` for j = 0..k.

        Each estimates :math:`\\operatorname{tr}(M^j)/P` (spec §1.5, eq. 10); exact per probe for
        :math:`j \\le 2m - 1` (:math:`j \\le 2m - 3` with ``rule="averaged"``). Standard errors come from the spread over probes.
        """
        k = check_int("k", k, minimum=0, expected="a non-negative integer")
        orders = np.arange(k + 1)
        per_probe = np.zeros((self.num_probes, k + 1))
        for i in range(self.num_probes):
            theta, w = self.probe_nodes(i)
            per_probe[i] = (w[None, :] * theta[None, :] ** orders[:, None]).sum(axis=1)
        values = per_probe.mean(axis=0)
        if self.num_probes > 1:
            stderr = per_probe.std(axis=0, ddof=1) / math.sqrt(self.num_probes)
        else:
            stderr = np.full(k + 1, np.nan)
        return Moments(orders=orders, values=values, stderr=stderr, per_probe=per_probe)

    def smoothed(self, grid: Any, sigma: float) -> np.ndarray:
        """Gaussian-kernel density on ``grid``: :math:`\\sum_k \\bar w_k \\mathcal N(x; \\theta_k, \\sigma^2)`.

        The smoothing width is explicit: it adds :math:`\\sigma^2` to the second moment. Paper 000
        plots the unsmoothed stem plot; this is for those who want a curve.
        """
        if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
            raise InputError(f"sigma must be a positive finite width, got {sigma!r}")
        x = np.asarray(grid, dtype=np.float64)
        diff = (x[..., None] - self.nodes) / sigma
        kernel = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
        return kernel @ self.pooled_weights

    def trace(self) -> TraceEstimate:
        """:math:`\\operatorname{tr} M \\approx P \\sum_k \\bar w_k \\theta_k` with its standard error."""
        first = self.moments(1)
        return TraceEstimate(
            value=float(self.size * first.values[1]),
            stderr=float(self.size * first.stderr[1]),
            num_matvecs=int(self.steps.sum()),
            method="slq",
            seed=self.seed,
            size=self.size,
        )


def slq(
    op: Any,
    *,
    num_steps: int,
    num_probes: int = 1,
    seed: int = 0,
    probe: str = "rademacher",
    reorthogonalize: bool = True,
    basis_device: torch.device | str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    rule: str = "gauss",
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of a symmetric operator (paper 000 §5).

    Runs :func:`~curvscope.spectral.lanczos.lanczos` (same arguments) and turns each probe's
    tridiagonal matrix into Ritz nodes, Gauss weights (squared first components of the Ritz
    vectors) and residual bounds.

    ``rule="averaged"`` returns, per probe, the mean of the Gauss rules of its last two steps
    (module docstring): a closer spectral CDF at the same products, but not Ritz values of one
    Krylov space, so :meth:`SpectralDensity.negative_mass` and
    :meth:`SpectralDensity.top_weights` (paper 000's rules on Ritz values) refuse it.

    Example:
        >>> import torch
        >>> from curvscope import DenseOperator
        >>> density = slq(DenseOperator(torch.diag(torch.arange(4.0))), num_steps=4)
        >>> round(float(density.weights.sum()), 6)
        1.0
    """
    rule = _check_rule(rule)
    result = lanczos(
        op,
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        probe=probe,
        reorthogonalize=reorthogonalize,
        basis_device=basis_device,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        progress=progress,
    )
    return SpectralDensity.from_lanczos(result, rule)
