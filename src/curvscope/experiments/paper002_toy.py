"""The paper-002 study ``noise-toy-models``: the three toy models of §4.2 and App. A.6 against
the theory, with standard errors from independent chains (spec ``theory.md`` §3.4, §3.5, §3.8).

- (a) Theorem 1's rate: on model (a) (constant :math:`\\hat\\nabla\\lambda`), SGD-like noise
  :math:`C = \\kappa\\lambda`, equilibrate ``a_burn_in`` steps from :math:`\\theta_1 = \\theta_2
  = 0`, then measure :math:`\\Delta T` over ``a_steps`` steps for each η. Leading order:
  :math:`\\Delta T/(\\eta^2 K) = -(\\kappa/4)\\|\\hat\\nabla T\\|^2 = -13\\kappa`; eta-exact
  (spec §3.4): the per-step drift with :math:`\\langle\\theta_i^2\\rangle = \\eta\\kappa/(2 -
  \\eta\\lambda_i)`, summed along each chain.
- (b) Theorem 2 / Corollary 2.1 (spec §3.5, which corrects the paper's noise to :math:`C_{ii} =
  \\lambda_i\\,\\partial f/\\partial\\lambda_i`): on model (b) from :math:`(\\theta_3, \\theta_4) =
  (0.5, -0.5)` (the spec's point; the paper gives none), θ1, θ2 drawn from their stationary
  law, ``b_steps`` steps of SGD-like noise (f = T) and of isotropic noise (f = c log Det):
  the four signs of ΔT and Δlog Det, with the predicted changes.
- (c) App. A.6: model (c), noise only along θ1 with variance :math:`\\kappa\\lambda_1` (the
  spec's noise model), :math:`\\langle\\theta_2\\rangle` after ``c_burn_in`` steps against
  :math:`-2\\alpha/(\\eta\\kappa)` (paper: −0.020); noise-free GD beside it.

Every chain has its own seeded generator (:func:`chain_generators`), so the vectorised run
equals single-chain runs; standard errors are over chains (std/√R).

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("noise-toy-models").config("laptop").a_etas
    (0.0025, 0.005, 0.01, 0.02)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.experiments.config import StudyConfig
from curvscope.experiments.paper002_toy_models import (
    TOY_MODELS,
    chain_generators,
    predicted_drift,
    simulate_chains,
    stationary_theta_sq,
    toy_c_model,
)
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "DesignedSigns",
    "Theta2Equilibrium",
    "ToyModelsConfig",
    "ToyModelsResult",
    "TraceRate",
    "run_designed_signs",
    "run_theta2",
    "run_toy_models",
    "run_trace_rate",
    "stderr",
]

NOISES = ("aligned", "isotropic")


@dataclass(frozen=True)
class ToyModelsConfig(StudyConfig):
    """Everything ``noise-toy-models`` computes from (defaults: the laptop scale).

    ``kappa`` is the SGD noise strength :math:`(1/S)(1 - S/M)`; ``b_scale`` the isotropic
    variance c (and κ of the SGD-like arm) in (b); ``sigmas`` the tolerance of the verdicts in
    standard errors. ``block``: steps of noise drawn per generator call.
    """

    seed: int = 0
    kappa: float = 1.0
    a_etas: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02)
    a_chains: int = 2000
    a_burn_in: int = 1000
    a_steps: int = 1000
    a_start: tuple[float, float] = (2.0, 2.0)
    a_record_every: int = 50
    b_eta: float = 0.01
    b_chains: int = 4000
    b_steps: int = 400
    b_start: tuple[float, float] = (0.5, -0.5)
    b_scale: float = 1.0
    b_record_every: int = 10
    c_eta: float = 0.01
    c_alpha: float = 1e-4
    c_chains: int = 128
    c_burn_in: int = 200000
    c_steps: int = 100000
    c_start: tuple[float, float] = (0.1, 0.1)
    c_record_every: int = 2000
    sigmas: float = 3.0
    block: int = 512

    def __post_init__(self) -> None:
        counts = {
            "a_chains": self.a_chains,
            "a_steps": self.a_steps,
            "b_chains": self.b_chains,
            "b_steps": self.b_steps,
            "c_chains": self.c_chains,
            "c_steps": self.c_steps,
            "block": self.block,
        }
        bad = {k: v for k, v in counts.items() if v < 2}
        if bad:
            raise InputError(
                f"{', '.join(f'{k}={v}' for k, v in bad.items())}: chains, steps and block must "
                "be >= 2 (standard errors need two chains); raise them"
            )
        if self.a_burn_in < 0 or self.c_burn_in < 0:
            raise InputError(
                f"burn-in must be >= 0 steps; got a_burn_in={self.a_burn_in}, "
                f"c_burn_in={self.c_burn_in}"
            )
        if len(self.a_etas) < 3 or any(not (0 < e < 0.25) for e in self.a_etas):
            raise InputError(
                f"a_etas must be at least 3 step sizes in (0, 0.25) (η·λ < 2 with λ ≤ 8 at the "
                f"start); got {self.a_etas}"
            )
        for name in ("kappa", "b_eta", "b_scale", "c_eta", "c_alpha", "sigmas"):
            if not (getattr(self, name) > 0):
                raise InputError(f"{name} must be > 0; got {getattr(self, name)!r}")
        a3, a4 = self.a_start
        if not (a3 + a4 > 0 and a3 + 2 * a4 > 0):
            raise InputError(
                f"a_start = {self.a_start} must have θ3 + θ4 > 0 and θ3 + 2θ4 > 0 (the branch "
                "where ∇λ is constant, spec §3.8 (a)); e.g. (2, 2)"
            )


def stderr(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Standard error of the mean over independent chains: std (ddof 1) / √R."""
    values = np.asarray(values, dtype=np.float64)
    return values.std(axis=axis, ddof=1) / math.sqrt(values.shape[axis])


# ---------------------------------------------------------------------- results
@savable
@dataclass(frozen=True)
class TraceRate:
    """(a): the trace change per step against η² (Theorem 1, spec §3.4).

    Attributes:
        etas: ``(E,)`` step sizes; chains, burn_in, steps: the protocol.
        rate, rate_se: ``(E,)`` mean :math:`\\Delta T/(\\eta^2 K)` over chains ± SE.
        exact, diff_se: ``(E,)`` the eta-exact prediction (same normalisation) and the SE of
            the per-chain difference measured − predicted.
        leading: :math:`-(\\kappa/4)\\|\\hat\\nabla T\\|^2` at the start (−13κ).
        grad_trace_sq: :math:`\\|\\hat\\nabla T\\|^2` (52).
        theta_sq_ratio: ``(E, 2)`` mean of :math:`\\theta_i^2(2-\\eta\\lambda_i)/(\\eta\\kappa)`
            over the window (1 when stationary).
        branch_left: ``(E,)`` share of chains that left the branch θ3+θ4 > 0, θ3+2θ4 > 0.
        record_steps, trace_mean: ``(m,)`` and ``(E, m)`` mean T during the window.
    """

    etas: np.ndarray
    chains: int
    burn_in: int
    steps: int
    rate: np.ndarray
    rate_se: np.ndarray
    exact: np.ndarray
    diff_se: np.ndarray
    leading: float
    grad_trace_sq: float
    theta_sq_ratio: np.ndarray
    branch_left: np.ndarray
    record_steps: np.ndarray
    trace_mean: np.ndarray


@savable
@dataclass(frozen=True)
class DesignedSigns:
    """(b): ΔT and Δlog Det on model (b) under SGD-like and isotropic noise (spec §3.5).

    Index 0 of every ``(2, ...)`` array is SGD-like (:math:`C = \\kappa\\lambda`), 1 isotropic
    (:math:`C = c`).

    Attributes:
        d_trace, d_trace_se, d_logdet, d_logdet_se: ``(2,)`` mean change over ``steps`` ± SE.
        pred_trace, pred_logdet: ``(2,)`` the predicted changes (per-step drift summed along
            each chain, averaged).
        record_steps: ``(m,)``; trace, trace_se, logdet, logdet_se: ``(2, m)`` means ± SE.
    """

    eta: float
    chains: int
    steps: int
    start: tuple[float, float]
    scale: float
    d_trace: np.ndarray
    d_trace_se: np.ndarray
    d_logdet: np.ndarray
    d_logdet_se: np.ndarray
    pred_trace: np.ndarray
    pred_logdet: np.ndarray
    record_steps: np.ndarray
    trace: np.ndarray
    trace_se: np.ndarray
    logdet: np.ndarray
    logdet_se: np.ndarray


@savable
@dataclass(frozen=True)
class Theta2Equilibrium:
    """(c): the entropic equilibrium of θ2 on model (c) (App. A.6, spec §3.8 (c)).

    Attributes:
        mean, se: :math:`\\langle\\theta_2\\rangle` (time average over the window per chain,
            then over chains) ± SE over chains.
        predicted: :math:`-2\\alpha/(\\eta\\kappa)`.
        theta1_sq: mean :math:`\\theta_1^2` in the window; theta1_sq_pred: its stationary
            value :math:`\\eta\\kappa/(2-\\eta\\lambda_1)` at the mean θ2.
        record_steps, theta2_mean, theta2_se: ``(m,)`` the chains' mean θ2 along the run.
        gd_theta2: ``(m,)`` noise-free GD from the same start; gd_slope: its θ2 change per
            step over the second half (theory: −ηα).
    """

    eta: float
    alpha: float
    chains: int
    burn_in: int
    steps: int
    mean: float
    se: float
    predicted: float
    theta1_sq: float
    theta1_sq_pred: float
    record_steps: np.ndarray
    theta2_mean: np.ndarray
    theta2_se: np.ndarray
    gd_theta2: np.ndarray
    gd_slope: float


@savable
@dataclass(frozen=True)
class ToyModelsResult:
    """The outcome of :func:`run_toy_models`; the report and figures read only this. Every
    number can be recomputed from ``config`` (seeds included) by :func:`run_toy_models`."""

    config: dict[str, Any]
    trace_rate: TraceRate
    signs: DesignedSigns
    theta2: Theta2Equilibrium
    timings: dict[str, float]
    version: str = __version__

    def summary(self) -> dict[str, Any]:
        """Headline numbers."""
        a, b, c = self.trace_rate, self.signs, self.theta2
        return {
            "a_rate": {f"{e:g}": float(v) for e, v in zip(a.etas, a.rate)},
            "a_rate_se": {f"{e:g}": float(v) for e, v in zip(a.etas, a.rate_se)},
            "a_exact": {f"{e:g}": float(v) for e, v in zip(a.etas, a.exact)},
            "a_leading": a.leading,
            "b_d_trace": dict(zip(NOISES, b.d_trace.tolist())),
            "b_d_logdet": dict(zip(NOISES, b.d_logdet.tolist())),
            "c_theta2": c.mean,
            "c_theta2_se": c.se,
            "c_predicted": c.predicted,
            "timings": dict(self.timings),
        }


# ---------------------------------------------------------------------- computation
def _start(chains: int, dim: int, tail: tuple[float, ...]) -> np.ndarray:
    theta = np.zeros((chains, dim))
    theta[:, dim - len(tail) :] = tail
    return theta


def run_trace_rate(config: ToyModelsConfig) -> TraceRate:
    """(a) for every η in ``config.a_etas`` (streams 100 + i)."""
    model, kappa, K = TOY_MODELS["a"], config.kappa, config.a_steps
    start = _start(1, 4, config.a_start)
    grad_t = model.grad_lam(start).sum(1)[0]
    grad_trace_sq = float(grad_t @ grad_t)
    rows: dict[str, list[Any]] = {k: [] for k in ("rate", "se", "exact", "dse", "sq", "left", "T")}
    steps_rec = np.zeros(0)
    for i, eta in enumerate(config.a_etas):
        gens = chain_generators(config.seed, 100 + i, config.a_chains)
        theta0 = _start(config.a_chains, 4, config.a_start)
        burn = simulate_chains(
            model, theta0, gens, eta=eta, noise="aligned", scale=kappa,
            steps=config.a_burn_in, block=config.block,
        )  # fmt: skip

        def accumulate(th: np.ndarray, eta: float = eta) -> np.ndarray:
            lam = model.lam(th)
            d_t, _ = predicted_drift(model, th, eta=eta, noise="aligned", scale=kappa)
            sq = th[:, :2] ** 2 * (2 - eta * lam) / (eta * kappa)
            off = (th[:, 2] + th[:, 3] <= 0) | (th[:, 2] + 2 * th[:, 3] <= 0)
            return np.column_stack([d_t, sq, off])

        run = simulate_chains(
            model, burn.theta, gens, eta=eta, noise="aligned", scale=kappa, steps=K,
            observe=lambda th: model.lam(th).sum(1, keepdims=True),
            record_every=config.a_record_every, accumulate=accumulate, block=config.block,
        )  # fmt: skip
        d_trace = model.lam(run.theta).sum(1) - model.lam(burn.theta).sum(1)
        pred = run.accumulated[:, 0]
        norm = eta**2 * K
        rows["rate"].append(d_trace.mean() / norm)
        rows["se"].append(stderr(d_trace) / norm)
        rows["exact"].append(pred.mean() / norm)
        rows["dse"].append(stderr(d_trace - pred) / norm)
        rows["sq"].append(run.accumulated[:, 1:3].mean(0) / K)
        rows["left"].append(float(np.mean(run.accumulated[:, 3] > 0)))
        rows["T"].append(run.records[:, :, 0].mean(1))
        steps_rec = run.record_steps
    return TraceRate(
        etas=np.array(config.a_etas, dtype=np.float64),
        chains=config.a_chains,
        burn_in=config.a_burn_in,
        steps=K,
        rate=np.array(rows["rate"]),
        rate_se=np.array(rows["se"]),
        exact=np.array(rows["exact"]),
        diff_se=np.array(rows["dse"]),
        leading=-(kappa / 4) * grad_trace_sq,
        grad_trace_sq=grad_trace_sq,
        theta_sq_ratio=np.array(rows["sq"]),
        branch_left=np.array(rows["left"]),
        record_steps=steps_rec,
        trace_mean=np.array(rows["T"]),
    )


def _trace_logdet(model: Any) -> Any:
    def observe(th: np.ndarray) -> np.ndarray:
        lam = model.lam(th)
        return np.column_stack([lam.sum(1), np.log(lam).sum(1)])

    return observe


def run_designed_signs(config: ToyModelsConfig) -> DesignedSigns:
    """(b): SGD-like (stream 200) and isotropic (stream 201) noise from the spec's point; the
    non-degenerate coordinates start from their exact stationary law (streams 250, 251)."""
    model, eta, R = TOY_MODELS["b"], config.b_eta, config.b_chains
    observe = _trace_logdet(model)
    out: dict[str, list[Any]] = {k: [] for k in ("dT", "dTse", "dD", "dDse", "pT", "pD", "rec")}
    steps_rec = np.zeros(0)
    for j, noise in enumerate(NOISES):
        theta0 = _start(R, 4, config.b_start)
        lam = model.lam(theta0)
        cov = config.b_scale * (lam if noise == "aligned" else np.ones_like(lam))
        draw = np.random.default_rng([config.seed, 250 + j]).standard_normal((R, 2))
        theta0[:, :2] = draw * np.sqrt(stationary_theta_sq(lam, eta, cov))

        def accumulate(th: np.ndarray, noise: str = noise) -> np.ndarray:
            return np.column_stack(
                predicted_drift(model, th, eta=eta, noise=noise, scale=config.b_scale)
            )

        run = simulate_chains(
            model, theta0, chain_generators(config.seed, 200 + j, R), eta=eta, noise=noise,
            scale=config.b_scale, steps=config.b_steps, observe=observe,
            record_every=config.b_record_every, accumulate=accumulate, block=config.block,
        )  # fmt: skip
        change = run.records[-1] - run.records[0]
        out["dT"].append(change[:, 0].mean())
        out["dTse"].append(stderr(change[:, 0]))
        out["dD"].append(change[:, 1].mean())
        out["dDse"].append(stderr(change[:, 1]))
        out["pT"].append(run.accumulated[:, 0].mean())
        out["pD"].append(run.accumulated[:, 1].mean())
        out["rec"].append(run.records)
        steps_rec = run.record_steps
    rec = np.array(out["rec"])  # (2, m, R, 2)
    return DesignedSigns(
        eta=eta,
        chains=R,
        steps=config.b_steps,
        start=tuple(config.b_start),
        scale=config.b_scale,
        d_trace=np.array(out["dT"]),
        d_trace_se=np.array(out["dTse"]),
        d_logdet=np.array(out["dD"]),
        d_logdet_se=np.array(out["dDse"]),
        pred_trace=np.array(out["pT"]),
        pred_logdet=np.array(out["pD"]),
        record_steps=steps_rec,
        trace=rec[..., 0].mean(2),
        trace_se=stderr(rec[..., 0], axis=2),
        logdet=rec[..., 1].mean(2),
        logdet_se=stderr(rec[..., 1], axis=2),
    )


def run_theta2(config: ToyModelsConfig) -> Theta2Equilibrium:
    """(c): noisy chains (stream 300) and noise-free GD from ``c_start``."""
    model = toy_c_model(config.c_alpha)
    eta, kappa, R = config.c_eta, config.kappa, config.c_chains
    gens = chain_generators(config.seed, 300, R)
    total = config.c_burn_in + config.c_steps

    def observe(th: np.ndarray) -> np.ndarray:
        return th[:, 1:2]

    def accumulate(th: np.ndarray) -> np.ndarray:
        return np.column_stack([th[:, 1], th[:, 0] ** 2])

    run = simulate_chains(
        model, np.tile(np.array(config.c_start), (R, 1)), gens, eta=eta, noise="aligned",
        scale=kappa, steps=total, observe=observe, record_every=config.c_record_every,
        accumulate=accumulate, accumulate_from=config.c_burn_in, block=max(config.block, 4096),
    )  # fmt: skip
    per_chain = run.accumulated[:, 0] / config.c_steps
    mean = float(per_chain.mean())
    lam1 = 1 + mean**2
    gd = _gd_c(model, config, total)
    half = len(gd.record_steps) // 2
    slope = (gd.records[-1, 0, 0] - gd.records[half, 0, 0]) / (
        gd.record_steps[-1] - gd.record_steps[half]
    )
    return Theta2Equilibrium(
        eta=eta,
        alpha=config.c_alpha,
        chains=R,
        burn_in=config.c_burn_in,
        steps=config.c_steps,
        mean=mean,
        se=float(stderr(per_chain)),
        predicted=-2 * config.c_alpha / (eta * kappa),
        theta1_sq=float(run.accumulated[:, 1].mean() / config.c_steps),
        theta1_sq_pred=eta * kappa / (2 - eta * lam1),
        record_steps=run.record_steps,
        theta2_mean=run.records[:, :, 0].mean(1),
        theta2_se=stderr(run.records[:, :, 0], axis=1),
        gd_theta2=gd.records[:, 0, 0],
        gd_slope=float(slope),
    )


def _gd_c(model: Any, config: ToyModelsConfig, total: int) -> Any:
    """Noise-free GD on model (c): one chain, no generator needed."""
    return simulate_chains(
        model, np.array([config.c_start], dtype=np.float64), [np.random.default_rng(0)],
        eta=config.c_eta, noise="none", scale=0.0, steps=total,
        observe=lambda th: th[:, 1:2], record_every=config.c_record_every,
        block=max(config.block, 4096),
    )  # fmt: skip


def run_toy_models(
    config: ToyModelsConfig, *, progress: bool = False, state_dir: str | Path | None = None
) -> ToyModelsResult:
    """All three parts (seconds to a minute; nothing to resume)."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    rate = run_trace_rate(config)
    timings["a_trace_rate"] = time.perf_counter() - tick
    if progress:
        print(f"(a) done in {timings['a_trace_rate']:.1f} s")
    tick = time.perf_counter()
    signs = run_designed_signs(config)
    timings["b_signs"] = time.perf_counter() - tick
    tick = time.perf_counter()
    theta2 = run_theta2(config)
    timings["c_theta2"] = time.perf_counter() - tick
    if progress:
        print(f"(b) {timings['b_signs']:.1f} s, (c) {timings['c_theta2']:.1f} s")
    return ToyModelsResult(config.to_dict(), rate, signs, theta2, timings)


# ---------------------------------------------------------------------- verdicts
def _pm(value: float, se: float) -> str:
    return f"{value:+.4g} ± {se:.2g}"


def rate_verdicts(r: TraceRate, sigmas: float) -> tuple[str, str]:
    """(leading-order verdict, eta-exact verdict) of part (a)."""
    exact_ok = bool(np.all(np.abs(r.rate - r.exact) <= sigmas * r.diff_se))
    lead_ok = bool(np.all(np.abs(r.rate - r.leading) <= sigmas * r.rate_se))
    lead = "agrees" if lead_ok else ("partly" if exact_ok else "disagrees")
    return lead, "agrees" if exact_ok else "disagrees"


def sign_verdict(s: DesignedSigns, sigmas: float) -> str:
    """The four signs: SGD-like ΔT < 0 < Δlog Det, isotropic Δlog Det < 0 < ΔT."""
    signed = np.array([-s.d_trace[0], s.d_logdet[0], s.d_trace[1], -s.d_logdet[1]])
    ses = np.array([s.d_trace_se[0], s.d_logdet_se[0], s.d_trace_se[1], s.d_logdet_se[1]])
    if np.all(signed >= sigmas * ses):
        return "agrees"
    if np.all(signed > 0):
        return "partly"
    return "disagrees"


def theta2_verdict(c: Theta2Equilibrium, sigmas: float) -> str:
    off = abs(c.mean - c.predicted)
    if off <= sigmas * c.se:
        return "agrees"
    return "partly" if off <= 0.1 * abs(c.predicted) else "disagrees"


# ---------------------------------------------------------------------- report content
def sections(r: ToyModelsResult) -> tuple[Section, ...]:
    """The report of the study, as data."""
    c, a, b, t = r.config, r.trace_rate, r.signs, r.theta2
    rate_rows = tuple(
        (
            f"{eta:g}",
            _pm(rate, se),
            exact,
            a.leading,
            (rate - exact) / dse,
            rate / a.leading,
            f"{sq[0]:.3f}, {sq[1]:.3f}",
            left,
        )
        for eta, rate, se, exact, dse, sq, left in zip(
            a.etas, a.rate, a.rate_se, a.exact, a.diff_se, a.theta_sq_ratio, a.branch_left
        )
    )
    rate_table = Table(
        (
            "η",
            "ΔT/(η²K) ± SE",
            "eta-exact prediction",
            "leading order −(κ/4)‖∇̂T‖²",
            "(measured − exact)/SE",
            "measured / leading",
            "⟨θᵢ²⟩(2−ηλᵢ)/(ηκ)",
            "share off branch",
        ),
        rate_rows,
        caption=f"(a) {a.chains} chains per η; equilibrate {a.burn_in} steps from θ1 = θ2 = 0, "
        f"(θ3, θ4) = {tuple(c['a_start'])}, then K = {a.steps} steps; κ = {c['kappa']:g}, "
        f"‖∇̂T‖² = {a.grad_trace_sq:g}",
        left=2,
    )
    sign_rows = tuple(
        (
            name,
            _pm(b.d_trace[j], b.d_trace_se[j]),
            b.pred_trace[j],
            _pm(b.d_logdet[j], b.d_logdet_se[j]),
            b.pred_logdet[j],
        )
        for j, name in enumerate(("SGD-like C = κλ", "isotropic C = c"))
    )
    sign_table = Table(
        ("noise", "ΔT ± SE", "predicted ΔT", "Δlog Det ± SE", "predicted Δlog Det"),
        sign_rows,
        caption=f"(b) {b.chains} chains per noise, {b.steps} steps of η = {b.eta:g} from "
        f"(θ3, θ4) = {b.start}, scale {b.scale:g}; θ1, θ2 from their stationary law",
        left=2,
    )
    theta_table = Table(
        ("⟨θ2⟩ ± SE", "−2α/(ηκ)", "(⟨θ2⟩ − pred)/SE", "⟨θ1²⟩", "ηκ/(2−ηλ1)", "GD slope",
         "−ηα"),
        (
            (
                _pm(t.mean, t.se),
                t.predicted,
                (t.mean - t.predicted) / t.se,
                t.theta1_sq,
                t.theta1_sq_pred,
                t.gd_slope,
                -t.eta * t.alpha,
            ),
        ),
        caption=f"(c) {t.chains} chains, burn-in {t.burn_in} steps, average over the next "
        f"{t.steps}; η = {t.eta:g}, α = {t.alpha:g}, κ = {c['kappa']:g}, start "
        f"{tuple(c['c_start'])}",
        left=1,
    )  # fmt: skip
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    return (
        Section(
            "Setup",
            (
                Text(
                    "Toy minimal valleys of paper 002 §4.2 and App. A.6, as corrected by the "
                    "spec (theory.md §3.8): model (a) reads L = |θ3+θ4|θ1² + |θ3+2θ4|θ2² (the "
                    "extraction lost squares and subscripts); Theorem 2's noise is C_ii = "
                    "λ_i ∂f/∂λ_i (§3.5; the paper prints 'λ_i f'), so f = T gives SGD-like "
                    "noise C = κλ and f = c log Det isotropic noise C = c; model (c) uses the "
                    "spec's noise model (noise along θ1 only, variance κλ1). Noisy GD θ ← θ − "
                    "η(∇L + ξ), ξ Gaussian in the non-degenerate coordinates; numpy, float64, "
                    f"one seeded generator per chain (seed {c['seed']}); standard errors over "
                    "independent chains."
                ),
            ),
        ),
        Section(
            "(a) Trace decrease ∝ η² (Theorem 1)",
            (
                rate_table,
                Text(
                    "Leading order: ΔT per step = −(η²κ/4)‖∇̂T‖² = −13η²κ. The eta-exact "
                    "prediction sums the per-step drift −(η/2)Σ_j⟨θ_j²⟩∇̂T·∇̂λ_j with ⟨θ_j²⟩ "
                    "= ηκ/(2 − ηλ_j) along each chain (spec §3.4); it differs from the leading "
                    "order by the factor ≈ 1/(1 − ηλ/2).",
                    note=True,
                ),
                FigureRef(
                    "trace_rate",
                    "ΔT/(η²K) against η: measured ± SE, eta-exact and leading-order predictions.",
                ),
            ),
        ),
        Section(
            "(b) Designed noise: trace vs determinant (Theorem 2, Corollary 2.1)",
            (
                sign_table,
                FigureRef(
                    "signs",
                    "Mean T and log Det along the run (± SE bands) under "
                    "SGD-like and isotropic noise (paper fig. 2c-d).",
                ),
            ),
        ),
        Section(
            "(c) Entropic equilibrium of θ2 (App. A.6)",
            (
                theta_table,
                FigureRef(
                    "theta2",
                    "Mean θ2 over chains (± SE) with noise, and noise-free GD (paper fig. 7).",
                ),
            ),
        ),
        Section("Timings", (Text(f"{timing}. curvscope {r.version}.", note=True),)),
    )


def claims(r: ToyModelsResult) -> tuple[Claim, ...]:
    """The paper's statements beside this run's numbers."""
    sig = r.config["sigmas"]
    a, b, t = r.trace_rate, r.signs, r.theta2
    lead, exact = rate_verdicts(a, sig)
    rates = "; ".join(f"η={e:g}: {_pm(v, s)}" for e, v, s in zip(a.etas, a.rate, a.rate_se))
    gaps = ", ".join(f"{(v - x) / d:+.1f}" for v, x, d in zip(a.rate, a.exact, a.diff_se))
    names = ("SGD-like ΔT", "SGD-like Δlog Det", "isotropic ΔT", "isotropic Δlog Det")
    values = (
        (b.d_trace[0], b.d_trace_se[0]),
        (b.d_logdet[0], b.d_logdet_se[0]),
        (b.d_trace[1], b.d_trace_se[1]),
        (b.d_logdet[1], b.d_logdet_se[1]),
    )
    slope_ok = abs(t.gd_slope + t.eta * t.alpha) <= 1e-3 * t.eta * t.alpha
    return (
        Claim(
            "The trace decrease per step is ∝ η² with the constant −(κ/4)‖∇̂T‖² (Theorem 1; "
            "ΔT/η² the same for every η)",
            "fig. 2b: ΔT linear in η² (no constant given); spec §3.8: −13κ per step",
            f"ΔT/(η²K) {rates}; leading order {a.leading:g}",
            lead,
            f"agrees if every η is within {sig:g} SE of the leading-order constant; partly if "
            "not, but every η agrees with the eta-exact prediction (the difference is the "
            "O(ηλ) factor 1/(1 − ηλ/2) of spec §3.4, resolved by these standard errors)",
        ),
        Claim(
            "The measured trace change equals the prediction from the stationary ⟨θᵢ²⟩ "
            "(spec §3.4, eta-exact)",
            "eq. 8-11 (spec §3.4): ⟨θᵢ²⟩ = ηC_ii/(λᵢ(2 − ηλᵢ))",
            f"(measured − predicted)/SE per η: {gaps}",
            exact,
            f"agrees if every η is within {sig:g} SE (SE of the per-chain difference)",
        ),
        Claim(
            "SGD-like noise lowers T and raises Det; isotropic noise lowers Det and raises T "
            "(Theorem 2 with the spec's C_ii = λᵢ∂f/∂λᵢ, Corollary 2.1)",
            "fig. 2c-d: the two noises move T and Det in opposite directions (no numbers)",
            "; ".join(f"{n} {_pm(v, s)}" for n, (v, s) in zip(names, values)),
            sign_verdict(b, sig),
            f"agrees if all four signs hold by ≥ {sig:g} SE; partly if all four signs hold; "
            f"from (θ3, θ4) = {b.start}, the spec's point (the paper gives no initialisation)",
        ),
        Claim(
            "With noise θ2 settles at ⟨θ2⟩ = −2α/(ηκ) (eq. 38)",
            f"App. A.6, fig. 7: ⟨θ2⟩ = −0.02 (α = 1e-4, η = 0.01, κ = 1); ours predicts "
            f"{t.predicted:.4g}",
            f"⟨θ2⟩ = {_pm(t.mean, t.se)} ({(t.mean - t.predicted) / t.se:+.1f} SE)",
            theta2_verdict(t, sig),
            f"agrees within {sig:g} SE of −2α/(ηκ), partly within 10%; spec §3.8 noise model "
            "(noise along θ1 only, variance κλ1)",
        ),
        Claim(
            "Without noise θ2 decreases without bound (θ1 → 0, θ2 falls by ηα per step)",
            "App. A.6, fig. 7 left",
            f"GD slope {t.gd_slope:.4g} per step (−ηα = {-t.eta * t.alpha:.4g}); θ2 at the end "
            f"{t.gd_theta2[-1]:.4g}",
            "agrees" if slope_ok else "disagrees",
            "agrees if the slope over the second half is within 0.1% of −ηα",
        ),
    )


register(
    Study(
        name="noise-toy-models",
        paper="002",
        title="SGD noise on toy valleys: trace rate ∝ η², trace vs determinant, entropic "
        "equilibrium — paper 002 §4.2, App. A.6",
        description="three analytic toy valleys, many noisy-GD chains at once: ΔT/η² vs the "
        "predicted −13κ, four signs of designed noise, ⟨θ2⟩ vs −0.02",
        config_class=ToyModelsConfig,
        run=run_toy_models,
        presets={
            "laptop": {},
            "paper": {"a_chains": 10000, "b_chains": 20000, "c_chains": 512},
        },
        sections=sections,
        claims=claims,
        result_class=ToyModelsResult,
    )
)
