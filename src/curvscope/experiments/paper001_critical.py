"""``critical-points``: the index and energy of critical points of small tanh networks
(Pennington & Bahri 2017, paper 001 sec. 6.4, fig. 6; spec ``theory.md`` §2.1, §2.5, §2.8).

Each run: a single-hidden-layer tanh net without biases, n inputs = hidden = outputs
(P = 2n²), on its own m = 2n/φ inputs and targets iid N(0, 1) (seeded; m rounded, the φ = 2n/m
actually used is reported); (i) full-batch GD on the paper's loss
:math:`L = \\frac{1}{2m}\\sum_{i\\mu} e_{i\\mu}^2` until :math:`L \\le u L_0`, u ~ U(0, 1);
(ii) descent on :math:`J_g = \\|\\nabla L\\|^2` in float64; (iii) the run is kept when
:math:`J_g <` ``jg_threshold`` (the paper's 1e-6, in the paper's units), and its energy
:math:`\\epsilon = L / n` and index :math:`\\alpha = \\#\\{\\lambda < -\\tau\\lambda_{max}\\}/P`
are read from the exact spectrum (dense Hessian in closed form, ``eigvalsh``). Eigenvalues with
:math:`|\\lambda| \\le \\tau \\lambda_{max}` (``zero_tol`` τ) are counted apart as near-zero.

Loss convention: everything is in the paper's L (``nn.MSELoss`` = 2ε; tested).

J_g descent (``jg_method``): ``"lm"`` (default) is Levenberg-Marquardt on the residual
:math:`\\nabla L` — the Gauss-Newton method for :math:`J_g`, spec §2.8's remedy for plain GD on
:math:`J_g`, which spec §2.8 measured to leave no run below 1e-6 after 16k steps; ``"gd"`` is the
paper's gradient descent on :math:`J_g` (fixed step, one Hessian-vector product a step), kept for
fidelity. The runs of one φ are trained at once, vectorised over runs
(:mod:`curvscope.training.critical_ensemble`).

Fits (paper fig. 6a fits the mean energy per index value): with :math:`\\bar\\epsilon_k` the mean
energy of the kept runs of index k (standard error :math:`s_k`), over the index values with
:math:`k/P \\le` ``fit_alpha_max`` and at least ``min_runs_per_index`` runs,

.. math:: \\bar\\epsilon_k = \\epsilon_c + (\\alpha_k / \\alpha_0)^{1/\\beta}

with β = 3/2 fixed and with β free, by ``scipy.optimize.curve_fit`` (``sigma`` = :math:`s_k`,
absolute), parameter errors from the covariance (delta method for α0 and β).

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("critical-points").config("paper").n
    16
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.experiments.config import StudyConfig
from curvscope.experiments.paper001_critical_nets import (
    batched_hessians,
    batched_loss,
    build_net,
    draw_run,
    flat_to_state,
)
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "CriticalFit",
    "CriticalPointsConfig",
    "CriticalPointsResult",
    "PhiRuns",
    "fit_index_energy",
    "run_critical_points",
]


# ---------------------------------------------------------------------- config
@dataclass(frozen=True)
class CriticalPointsConfig(StudyConfig):
    """``critical-points``: the nets (``n``), the φ values and runs per φ, the two phases
    (GD: ``lr``, ``max_gd_steps``; J_g descent: ``jg_method``, ``jg_threshold``,
    ``jg_max_steps``, ``damping`` (LM), ``jg_lr`` (GD on J_g)), the index rule
    (``zero_tol`` relative to λ_max) and the fits (``fit_alpha_max``, ``min_runs_per_index``);
    ``chunk`` runs are trained at once."""

    n: int = 16
    phis: tuple[float, ...] = (0.25, 0.5, 0.75)
    runs_per_phi: int = 2000
    seed: int = 0
    lr: float = 0.5
    max_gd_steps: int = 5000
    jg_method: Literal["lm", "gd"] = "lm"
    jg_threshold: float = 1e-6
    jg_max_steps: int = 150
    damping: float = 1e-6
    jg_lr: float = 0.05
    zero_tol: float = 1e-6
    fit_alpha_max: float = 0.1
    min_runs_per_index: int = 3
    chunk: int = 128

    def check(self) -> None:
        """Refuse settings the study cannot run, with the fix."""
        if self.n < 1 or self.runs_per_phi < 1 or self.chunk < 1 or self.min_runs_per_index < 2:
            raise InputError(
                f"n, runs_per_phi and chunk must be >= 1 and min_runs_per_index >= 2; got n="
                f"{self.n}, runs_per_phi={self.runs_per_phi}, chunk={self.chunk}, "
                f"min_runs_per_index={self.min_runs_per_index}"
            )
        if not self.phis or any(not (0 < p < 1) for p in self.phis):
            raise InputError(
                f"phis must be values in (0, 1) (below 1 there is a gap eps_c > 0 to fit); got "
                f"{self.phis!r}"
            )
        for name in ("lr", "jg_threshold", "damping", "jg_lr", "zero_tol", "fit_alpha_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a finite number > 0; got {value!r}")
        if self.max_gd_steps < 1 or self.jg_max_steps < 1:
            raise InputError(
                f"max_gd_steps and jg_max_steps must be >= 1; got {self.max_gd_steps}, "
                f"{self.jg_max_steps}"
            )
        if self.jg_method not in ("lm", "gd"):
            raise InputError(f"jg_method must be 'lm' or 'gd'; got {self.jg_method!r}")


# ---------------------------------------------------------------------- results
@savable
@dataclass(frozen=True)
class CriticalFit:
    """One fit of :math:`\\bar\\epsilon_k = \\epsilon_c + (\\alpha_k/\\alpha_0)^{1/\\beta}`.

    Attributes:
        exponent_free: whether β was fitted (else fixed at 3/2).
        eps_c, alpha0, beta: the parameters; ``*_err`` their standard errors (0 for a fixed β).
        chi2, dof: weighted residual sum of squares and degrees of freedom.
        ok: whether the fit ran (enough points, converged); otherwise the numbers are NaN and
            ``message`` says why.
    """

    exponent_free: bool
    eps_c: float
    eps_c_err: float
    alpha0: float
    alpha0_err: float
    beta: float
    beta_err: float
    chi2: float
    dof: int
    ok: bool
    message: str = ""


# Per-run arrays of a φ, collected chunk by chunk and stored in PhiRuns under these names.
_COLUMNS = (
    "u",
    "loss0",
    "gd_steps",
    "gd_stop",
    "jg_steps",
    "jg_stop",
    "theta",
    "jg",
    "eps",
    "index",
    "num_zero",
    "num_negative_raw",
    "lambda_min",
    "lambda_max",
    "h0_scale",
)


@savable
@dataclass(frozen=True)
class PhiRuns:
    """Every run at one φ, and what was measured there.

    Attributes:
        phi_target: the configured φ; ``phi``: 2n/m with m = round(2n/φ_target) samples.
        seeds: ``(R,)`` run seeds (:func:`~.paper001_critical_nets.draw_run` rebuilds the data,
            the initial weights and u of each).
        u, loss0: the level fraction and initial loss; gd_steps, gd_stop: phase (i)
            (stop 0: level reached, 1: step cap, 3: diverged).
        jg_steps, jg_stop: phase (ii) (0: J_g below the threshold, 1: cap, 2: stalled, 3: diverged).
        theta: ``(R, P)`` float64 final weights of every run (W1 row-major, then W2).
        jg, eps: final :math:`\\|\\nabla L\\|^2` and energy :math:`L/n`.
        kept: ``(R,)`` J_g below the threshold and finite.
        index: negative eigenvalues below :math:`-\\tau\\lambda_{max}` (kept runs; -1 else);
            num_zero: eigenvalues with :math:`|\\lambda| \\le \\tau\\lambda_{max}`;
            num_negative_raw: all eigenvalues < 0; lambda_min, lambda_max.
        h0_scale: :math:`\\mathrm{tr} H_0 / P`, the measured MP scale s of the Gauss-Newton part.
        index_values, counts, mean_eps, sem_eps: mean energy per index value (kept runs).
        fit_fixed, fit_free: the fits with β = 3/2 and β free.
        seconds: wall time of this φ.
    """

    phi_target: float
    phi: float
    m: int
    seeds: np.ndarray
    u: np.ndarray
    loss0: np.ndarray
    gd_steps: np.ndarray
    gd_stop: np.ndarray
    jg_steps: np.ndarray
    jg_stop: np.ndarray
    theta: np.ndarray
    jg: np.ndarray
    eps: np.ndarray
    kept: np.ndarray
    index: np.ndarray
    num_zero: np.ndarray
    num_negative_raw: np.ndarray
    lambda_min: np.ndarray
    lambda_max: np.ndarray
    h0_scale: np.ndarray
    index_values: np.ndarray
    counts: np.ndarray
    mean_eps: np.ndarray
    sem_eps: np.ndarray
    fit_fixed: CriticalFit
    fit_free: CriticalFit
    seconds: float

    @property
    def num_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def alpha(self) -> np.ndarray:
        """Index fraction α of every kept run."""
        return self.index[self.kept] / self.theta.shape[1]


@savable
@dataclass(frozen=True)
class CriticalPointsResult:
    """The ``critical-points`` result: config, n and one :class:`PhiRuns` per φ.

    ``rebuild_data(i, r)`` and ``rebuild_model(i, r)`` give back run r of ``runs[i]`` (its data
    from its seed, its final weights), so every index and energy can be recomputed.
    """

    config: dict[str, Any]
    n: int
    runs: tuple[PhiRuns, ...]
    timings: dict[str, float]
    version: str = __version__

    def rebuild_data(self, i: int, r: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``(m, n)`` float64 of run r at ``runs[i]``."""
        runs = self.runs[i]
        x, y, _, _ = draw_run(int(runs.seeds[r]), self.n, runs.m)
        return x, y

    def rebuild_model(self, i: int, r: int) -> nn.Module:
        """The float64 net of run r at ``runs[i]`` at its final weights."""
        net = build_net(self.n)
        net.load_state_dict(flat_to_state(torch.from_numpy(self.runs[i].theta[r]), self.n))
        return net

    def summary(self) -> dict[str, Any]:
        return _summary(self)


# ---------------------------------------------------------------------- fits
def _model_free(alpha: np.ndarray, eps_c: float, a: float, gamma: float) -> np.ndarray:
    return eps_c + a * np.power(alpha, gamma)


def fit_index_energy(
    alpha: np.ndarray, mean_eps: np.ndarray, sem: np.ndarray, *, exponent_free: bool
) -> CriticalFit:
    """Fit :math:`\\bar\\epsilon = \\epsilon_c + A\\alpha^{\\gamma}` (γ = 1/β; γ = 2/3 when
    ``exponent_free`` is false) with errors ``sem`` on :math:`\\bar\\epsilon` (paper 001 fig. 6a,
    inverted: :math:`\\alpha = \\alpha_0|\\epsilon - \\epsilon_c|^{\\beta}`,
    :math:`\\alpha_0 = A^{-1/\\gamma}`).

    Example:
        >>> a = np.linspace(0.0, 0.1, 11)
        >>> f = fit_index_energy(a, 0.1 + (a / 2.0) ** (2 / 3), np.full(11, 1e-3),
        ...                      exponent_free=True)
        >>> round(f.eps_c, 6), round(f.alpha0, 4), round(f.beta, 4)
        (0.1, 2.0, 1.5)
    """
    from scipy.optimize import curve_fit

    alpha, mean_eps, sem = (np.asarray(v, dtype=float) for v in (alpha, mean_eps, sem))
    k = 3 if exponent_free else 2
    nan = float("nan")

    def failed(reason: str) -> CriticalFit:
        beta = nan if exponent_free else 1.5
        return CriticalFit(exponent_free, nan, nan, nan, nan, beta, nan, nan, 0, False, reason)

    if alpha.size <= k:
        return failed(f"{alpha.size} index values to fit, need more than {k}")
    span = max(float(np.max(alpha)), 1e-12)
    rise = max(float(mean_eps.max() - mean_eps.min()), 1e-6)
    p0 = [float(mean_eps.min()), rise / span ** (2 / 3)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exponent_free:
                popt, pcov = curve_fit(
                    _model_free,
                    alpha,
                    mean_eps,
                    p0=[*p0, 2 / 3],
                    sigma=sem,
                    absolute_sigma=True,
                    maxfev=20000,
                )
            else:
                popt, pcov = curve_fit(
                    lambda a, e, amp: _model_free(a, e, amp, 2 / 3),
                    alpha,
                    mean_eps,
                    p0=p0,
                    sigma=sem,
                    absolute_sigma=True,
                    maxfev=20000,
                )
    except (RuntimeError, ValueError) as exc:
        return failed(f"curve_fit failed: {exc}")
    gamma = popt[2] if exponent_free else 2 / 3
    pred = _model_free(alpha, popt[0], popt[1], gamma)
    chi2 = float(np.sum(((mean_eps - pred) / sem) ** 2))
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    a_amp = float(popt[1])
    ok = bool(np.all(np.isfinite(err)) and a_amp > 0 and gamma > 0)
    if not ok:
        return CriticalFit(
            exponent_free,
            float(popt[0]),
            float(err[0]),
            nan,
            nan,
            1 / gamma if gamma else nan,
            nan,
            chi2,
            int(alpha.size - k),
            False,
            "the fit did not give a positive amplitude",
        )
    # alpha0 = A^(-1/gamma); beta = 1/gamma; errors by the delta method (full covariance)
    alpha0 = a_amp ** (-1 / gamma)
    grad_a = np.array(
        [0.0, -alpha0 / (gamma * a_amp)]
        + ([alpha0 * math.log(a_amp) / gamma**2] if exponent_free else [])
    )
    alpha0_err = float(math.sqrt(max(grad_a @ pcov @ grad_a, 0.0)))
    beta_err = float(err[2] / gamma**2) if exponent_free else 0.0
    return CriticalFit(
        exponent_free,
        float(popt[0]),
        float(err[0]),
        float(alpha0),
        alpha0_err,
        float(1 / gamma),
        beta_err,
        chi2,
        int(alpha.size - k),
        True,
    )


def _per_index(index: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, ...]:
    values, counts = np.unique(index, return_counts=True)
    means = np.array([eps[index == v].mean() for v in values])
    sems = np.array(
        [
            eps[index == v].std(ddof=1) / math.sqrt(c) if c > 1 else float("nan")
            for v, c in zip(values, counts)
        ]
    )
    return values.astype(np.int64), counts.astype(np.int64), means, sems


def _fits(
    config: CriticalPointsConfig,
    P: int,
    values: np.ndarray,
    counts: np.ndarray,
    means: np.ndarray,
    sems: np.ndarray,
) -> tuple[CriticalFit, CriticalFit]:
    use = (values / P <= config.fit_alpha_max) & (counts >= config.min_runs_per_index)
    # an index value whose runs share one energy to rounding would get an infinite weight
    floor = 1e-12 + 1e-9 * float(np.nanmax(np.abs(means))) if means.size else 1e-12
    sem = np.maximum(np.nan_to_num(sems[use], nan=floor), floor)
    a = values[use] / P
    return (
        fit_index_energy(a, means[use], sem, exponent_free=False),
        fit_index_energy(a, means[use], sem, exponent_free=True),
    )


# ---------------------------------------------------------------------- computation
def _h0_scale(theta: torch.Tensor, x: torch.Tensor, n: int) -> torch.Tensor:
    """:math:`\\mathrm{tr} H_0 / P` with :math:`H_0 = J^T J / m` (spec §2.1):
    :math:`\\frac1m\\sum_\\mu [n\\|h_\\mu\\|^2 + \\sum_k (W_2^TW_2)_{kk} h'^2_{k\\mu}\\|x_\\mu\\|^2]`."""
    R, m, _ = x.shape
    w1 = theta[:, : n * n].view(R, n, n)
    w2 = theta[:, n * n :].view(R, n, n)
    h = torch.tanh(torch.bmm(x, w1.transpose(1, 2)))
    col = (w2 * w2).sum(1)  # (R, n1): (W2^T W2)_kk
    xx = (x * x).sum(2)  # (R, m)
    tr = (
        n * (h * h).sum((1, 2)) + (((1 - h * h) ** 2) * col[:, None, :]).sum(2).mul(xx).sum(1)
    ) / m
    return tr / (2 * n * n)


def _jg_gd(
    loss_fn: Any, theta: torch.Tensor, *, lr: float, tol: float, max_steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's GD on J_g: :math:`\\theta \\leftarrow \\theta - \\eta \\cdot 2H\\nabla L`
    (one batched Hessian-vector product a step) until :math:`J_g \\le` ``tol``; returns
    (theta, steps, stop codes 0/1/3)."""
    theta = theta.detach().clone()
    R = theta.shape[0]
    steps = torch.zeros(R, dtype=torch.int64)
    stop = torch.full((R,), -1, dtype=torch.int64)
    active = torch.arange(R)
    for step in range(max_steps + 1):
        idx = active
        th = theta[idx].requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(th, idx).sum(), th, create_graph=True)
        j = (g.detach() ** 2).sum(1)
        code = torch.where(
            ~torch.isfinite(j), 3, torch.where(j <= tol, 0, 1 if step >= max_steps else -1)
        )
        stop[idx] = code
        go = code < 0
        if not go.any():
            break
        (hg,) = torch.autograd.grad(g, th, g.detach())
        theta[idx[go]] = theta[idx[go]] - lr * 2 * hg[go].detach()
        steps[idx[go]] += 1
        active = idx[go]
    return theta, steps, stop


def _run_functions(x: torch.Tensor, y: torch.Tensor) -> tuple[Any, Any]:
    """The batched loss and closed-form Hessians of the runs ``idx`` of one chunk."""

    def loss_fn(th: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return batched_loss(th, x[idx], y[idx])

    def hessian_fn(th: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return batched_hessians(th, x[idx], y[idx])

    return loss_fn, hessian_fn


def _run_phi(config: CriticalPointsConfig, i: int, progress: bool) -> PhiRuns:
    from curvscope.training.critical_ensemble import (
        ensemble_grad_norm_descent,
        ensemble_gradient_descent,
    )

    tick = time.perf_counter()
    n, target = config.n, config.phis[i]
    m = max(1, round(2 * n / target))
    P = 2 * n * n
    seeds = np.random.SeedSequence([config.seed, i, 0xC417]).generate_state(
        config.runs_per_phi, np.uint32
    )
    seeds = seeds.astype(np.int64)
    cols: dict[str, list[Any]] = {k: [] for k in _COLUMNS}
    for start in range(0, len(seeds), config.chunk):
        chunk = seeds[start : start + config.chunk]
        draws = [draw_run(int(s), n, m) for s in chunk]
        x = torch.stack([d[0] for d in draws])
        y = torch.stack([d[1] for d in draws])
        theta0 = torch.stack([d[2] for d in draws])
        u = torch.tensor([d[3] for d in draws], dtype=torch.float64)

        loss_fn, hessian_fn = _run_functions(x, y)

        loss0 = batched_loss(theta0, x, y)
        gd = ensemble_gradient_descent(
            loss_fn, theta0, lr=config.lr, max_steps=config.max_gd_steps, loss_tol=u * loss0
        )
        start_theta = gd.theta.clone()
        bad = gd.stop == 3
        start_theta[bad] = theta0[bad]  # diverged runs: not descended on J_g, discarded below
        if config.jg_method == "lm":
            jg_run = ensemble_grad_norm_descent(
                loss_fn,
                start_theta,
                tol=config.jg_threshold,
                max_steps=config.jg_max_steps,
                damping=config.damping,
                hessian_fn=hessian_fn,
            )
            theta, jg_steps, jg_stop = jg_run.theta, jg_run.steps, jg_run.stop
        else:
            theta, jg_steps, jg_stop = _jg_gd(
                loss_fn,
                start_theta,
                lr=config.jg_lr,
                tol=config.jg_threshold,
                max_steps=config.jg_max_steps,
            )
        jg_stop = torch.where(bad, 3, jg_stop)
        th = theta.detach().requires_grad_(True)
        loss = batched_loss(th, x, y)
        (g,) = torch.autograd.grad(loss.sum(), th)
        jg = (g * g).sum(1)
        finite = torch.isfinite(loss) & torch.isfinite(jg) & torch.isfinite(theta).all(1)
        kept = finite & (jg < config.jg_threshold) & ~bad
        lam = torch.full((len(chunk), P), float("nan"), dtype=torch.float64)
        if kept.any():
            lam[kept] = torch.linalg.eigvalsh(batched_hessians(theta[kept], x[kept], y[kept]))
        top = lam.abs().amax(1, keepdim=True)
        zero = lam.abs() <= config.zero_tol * top
        index = torch.where(kept, (lam < -config.zero_tol * top).sum(1), -1)
        cols["u"].append(u.numpy())
        cols["loss0"].append(loss0.numpy())
        cols["gd_steps"].append(gd.steps.numpy())
        cols["gd_stop"].append(gd.stop.numpy())
        cols["jg_steps"].append(jg_steps.numpy())
        cols["jg_stop"].append(jg_stop.numpy())
        cols["theta"].append(theta.detach().numpy())
        cols["jg"].append(jg.detach().numpy())
        cols["eps"].append((loss.detach() / n).numpy())
        cols["index"].append(index.numpy())
        cols["num_zero"].append(torch.where(kept, zero.sum(1), -1).numpy())
        cols["num_negative_raw"].append(torch.where(kept, (lam < 0).sum(1), -1).numpy())
        cols["lambda_min"].append(lam.amin(1).numpy())
        cols["lambda_max"].append(lam.amax(1).numpy())
        cols["h0_scale"].append(_h0_scale(theta.detach(), x, n).numpy())
        if progress:
            done = start + len(chunk)
            print(
                f"phi={target:g}: {done}/{len(seeds)} runs, kept {int(kept.sum())}/{len(chunk)} "
                f"of this chunk, {time.perf_counter() - tick:.0f} s",
                flush=True,
            )
    arr = {k: np.concatenate(v) for k, v in cols.items()}
    keep = arr["index"] >= 0
    values, counts, means, sems = _per_index(arr["index"][keep], arr["eps"][keep])
    fixed, free = _fits(config, P, values, counts, means, sems)
    return PhiRuns(
        phi_target=float(target),
        phi=2 * n / m,
        m=m,
        seeds=seeds,
        kept=keep,
        **{k: arr[k] for k in _COLUMNS},
        index_values=values,
        counts=counts,
        mean_eps=means,
        sem_eps=sems,
        fit_fixed=fixed,
        fit_free=free,
        seconds=time.perf_counter() - tick,
    )


def run_critical_points(
    config: CriticalPointsConfig, *, progress: bool = False, state_dir: Any = None
) -> CriticalPointsResult:
    """All runs at every φ, their exact indices and energies, and the fits (paper 001 §6.4)."""
    config.check()
    tick = time.perf_counter()
    torch_threads = torch.get_num_threads()
    runs = tuple(_run_phi(config, i, progress) for i in range(len(config.phis)))
    return CriticalPointsResult(
        config=config.to_dict(),
        n=config.n,
        runs=runs,
        timings={"total": time.perf_counter() - tick, "torch_threads": float(torch_threads)},
    )


# ---------------------------------------------------------------------- report content
def theory_eps_c(phi: float, scale: float) -> dict[str, float]:
    """The comparison values of ε_c at φ: the empirical forms of §2.8 and the theory's
    (eq. 21, Wishart + Wigner, at s = 1 and at the measured H0 scale s; eq. 32, improved model,
    at s)."""
    from curvscope.rmt.pennington_bahri import critical_energy

    return {
        "tanh (1-phi)^2/2": (1 - phi) ** 2 / 2,
        "linear (1-phi)/2": (1 - phi) / 2,
        "eq21 s=1": float(critical_energy(phi)),
        "eq21 s": float(critical_energy(phi, scale=scale)),
        "eq32 s": float(critical_energy(phi, model="improved", scale=scale)),
    }


def _scale(runs: PhiRuns) -> float:
    return float(np.median(runs.h0_scale[runs.kept])) if runs.num_kept else float("nan")


def _pm(value: float, err: float) -> str:
    return f"{value:.4g} ± {err:.2g}" if math.isfinite(value) else "n/a"


def _stats_table(r: CriticalPointsResult) -> Table:
    rows = []
    for s in r.runs:
        k = s.kept
        rows.append(
            (
                f"{s.phi_target:g}",
                s.phi,
                s.m,
                len(s.seeds),
                int((s.gd_stop == 0).sum()),
                int((s.gd_stop == 3).sum()),
                int((s.jg_stop == 0).sum()),
                int((s.jg_stop == 1).sum()),
                int((s.jg_stop == 2).sum()),
                s.num_kept,
                float(np.median(s.jg[k])) if k.any() else None,
                float(np.median(s.jg_steps[k])) if k.any() else None,
                int((s.num_zero[k] > 0).sum()),
                int(s.index[k].max()) if k.any() else None,
                int((s.index[k] == 0).sum()),
                float(s.eps[k & (s.index == 0)].mean()) if (k & (s.index == 0)).any() else None,
                float(np.median(s.eps[k])) if k.any() else None,
                float(np.median(s.eps[~k])) if (~k).any() else None,
                s.seconds,
            )
        )
    return Table(
        (
            "φ (config)",
            "φ = 2n/m",
            "m",
            "runs",
            "GD reached uL0",
            "GD diverged",
            "J_g < thr",
            "J_g cap",
            "J_g stalled",
            "kept",
            "median J_g (kept)",
            "median J_g steps",
            "kept with near-zero λ",
            "max index",
            "minima kept (index 0)",
            "mean ε of minima",
            "median ε kept",
            "median ε not kept",
            "seconds",
        ),
        tuple(rows),
        caption="Run statistics per φ (J_g in the paper's units of L). Kept runs are those J_g "
        "descent brought below the threshold within the step cap: compare the median energy of "
        "kept and not-kept runs for the selection this makes",
        left=1,
    )


def _fit_table(r: CriticalPointsResult) -> Table:
    rows = []
    for s in r.runs:
        scale = _scale(s)
        th = theory_eps_c(s.phi, scale) if math.isfinite(scale) else {}
        ff, fx = s.fit_free, s.fit_fixed
        rows.append(
            (
                f"{s.phi:.4g}",
                _pm(fx.eps_c, fx.eps_c_err),
                _pm(fx.alpha0, fx.alpha0_err),
                f"{fx.chi2:.3g}/{fx.dof}" if fx.ok else fx.message,
                _pm(ff.eps_c, ff.eps_c_err),
                _pm(ff.beta, ff.beta_err),
                _pm(ff.alpha0, ff.alpha0_err),
                f"{ff.chi2:.3g}/{ff.dof}" if ff.ok else ff.message,
                th.get("tanh (1-phi)^2/2"),
                th.get("linear (1-phi)/2"),
                th.get("eq21 s=1"),
                scale,
                th.get("eq21 s"),
                th.get("eq32 s"),
            )
        )
    return Table(
        (
            "φ",
            "ε_c (β=3/2)",
            "α0 (β=3/2)",
            "χ²/dof",
            "ε_c (β free)",
            "β (free)",
            "α0 (free)",
            "χ²/dof (free)",
            "(1−φ)²/2",
            "(1−φ)/2",
            "eq.21 s=1",
            "s = trH0/P",
            "eq.21 at s",
            "eq.32 at s",
        ),
        tuple(rows),
        caption="Fits of the mean energy per index value, ε̄_k = ε_c + (α_k/α0)^(1/β), errors = "
        "standard errors of ε̄_k (curve_fit, absolute sigma); ± one standard error",
    )


def _setup_text(r: CriticalPointsResult) -> Text:
    c = r.config
    method = (
        f"Levenberg-Marquardt on ∇L (Gauss-Newton for J_g; exact Hessian in closed form, "
        f"damping {c['damping']:g}·λ_max² at the start, ≤ {c['jg_max_steps']} steps)"
        if c["jg_method"] == "lm"
        else f"the paper's GD on J_g (step {c['jg_lr']:g}, ≤ {c['jg_max_steps']} steps)"
    )
    return Text(
        f"Single-hidden-layer tanh nets without biases, n = {r.n} (P = {2 * r.n * r.n}), each "
        f"run on its own inputs and targets iid N(0, 1) (m = round(2n/φ) samples; the φ = 2n/m "
        f"used is shown), initial weights N(0, 1/n). Loss: the paper's L = (1/2m)Σe², energy "
        f"ε = L/n (nn.MSELoss = 2ε). Phase (i): GD, lr {c['lr']:g}, until L ≤ u·L0 (u ~ U(0,1)) "
        f"or {c['max_gd_steps']} steps. Phase (ii): {method}. Kept: J_g = ‖∇L‖² < "
        f"{c['jg_threshold']:g}. Index: #(λ < −{c['zero_tol']:g}·λ_max)/P from eigvalsh of the "
        f"exact float64 Hessian; |λ| ≤ {c['zero_tol']:g}·λ_max counted apart as near-zero "
        f"(tanh has no exact null directions; any found are reported in the statistics). "
        f"Fits over index values with α ≤ {c['fit_alpha_max']:g} and at least "
        f"{c['min_runs_per_index']} runs. Runs vectorised over {c['chunk']} at a time; "
        f"{c['runs_per_phi']} runs per φ, seed {c['seed']}; total {r.timings['total']:.0f} s "
        f"({int(r.timings.get('torch_threads', 1))} torch thread(s)); curvscope {r.version}."
    )


def sections(r: CriticalPointsResult) -> tuple[Section, ...]:
    return (
        Section("Setup", (_setup_text(r),)),
        Section("Runs", (_stats_table(r),)),
        Section(
            "Index vs energy",
            (
                FigureRef(
                    "scatter",
                    "Index α against energy ε of every kept run, per φ, with "
                    "the mean energy per index value and the two fits (paper fig. 6a).",
                ),
                FigureRef(
                    "mean_energy",
                    "Mean energy per index value ± standard error, small α "
                    "(the fit region; paper fig. 6a inset).",
                ),
                _fit_table(r),
            ),
        ),
        Section(
            "ε_c against φ",
            (
                FigureRef(
                    "eps_c",
                    "Fitted ε_c(φ) ± one standard error beside (1−φ)²/2, "
                    "(1−φ)/2 and the theory's ε_c (eq. 21 at s = 1 and at the measured "
                    "s, eq. 32 at s) (paper fig. 6b).",
                ),
                Text(
                    "The paper does not claim the theory's ε_c (eqs. 21, 32) matches the "
                    "measured one: it is shown, not fitted. s is the median over kept runs of "
                    "tr H0/P, the mean eigenvalue of the Gauss-Newton part (the MP scale).",
                    note=True,
                ),
            ),
        ),
    )


def claims(r: CriticalPointsResult) -> tuple[Claim, ...]:
    free = [(s.phi, s.fit_free) for s in r.runs]
    good = [(p, f) for p, f in free if f.ok]
    if not good:
        v_beta = "not comparable"
    else:
        within = [abs(f.beta - 1.5) <= 2 * f.beta_err for _, f in good]
        v_beta = (
            "agrees"
            if all(within) and len(good) == len(free)
            else ("partly" if any(within) else "disagrees")
        )
    fixed = [(s.phi, s.fit_fixed) for s in r.runs]
    okf = [(p, f) for p, f in fixed if f.ok]

    def close(p: float, f: CriticalFit, ref: float) -> bool:
        return abs(f.eps_c - ref) <= max(3 * f.eps_c_err, 0.1 * ref)

    if not okf:
        v_tanh = v_lin = "not comparable"
    else:
        hits = [close(p, f, (1 - p) ** 2 / 2) for p, f in okf]
        v_tanh = (
            "agrees"
            if all(hits) and len(okf) == len(fixed)
            else ("partly" if any(hits) else "disagrees")
        )
        below = [f.eps_c + 2 * f.eps_c_err < (1 - p) / 2 for p, f in okf]
        v_lin = "agrees" if all(below) else ("partly" if any(below) else "disagrees")
    theory = []
    for s in r.runs:
        sc = _scale(s)
        if s.fit_fixed.ok and math.isfinite(sc):
            t = theory_eps_c(s.phi, sc)
            theory.append(
                f"φ={s.phi:.3g}: fit {s.fit_fixed.eps_c:.3g}, eq.21 {t['eq21 s=1']:.3g} "
                f"(at s={sc:.2f}: {t['eq21 s']:.3g}), eq.32 {t['eq32 s']:.3g}"
            )
    return (
        Claim(
            "For critical points of small index, α ≈ α0|ε − ε_c|^(3/2)",
            "exponent 3/2 (abstract, §6.4, fig. 6a: 'good agreement')",
            "; ".join(f"φ={p:.3g}: β = {_pm(f.beta, f.beta_err)}" for p, f in free),
            v_beta,
            "β from the free-exponent fit of the mean energy per index value; agrees if every "
            "φ is within 2 standard errors of 1.5, partly if some are",
        ),
        Claim(
            "The energy of minimisers (fitted ε_c) is ≈ (1 − φ)²/2 for tanh nets",
            "ε_c = (1−φ)²/2, 'a surprisingly good fit' (§6.4, fig. 6b)",
            "; ".join(
                f"φ={p:.3g}: {_pm(f.eps_c, f.eps_c_err)} vs {(1 - p) ** 2 / 2:.3g}"
                for p, f in fixed
            ),
            v_tanh,
            "ε_c of the β = 3/2 fit; agrees if each is within max(3 standard errors, 10 %) of "
            "(1−φ)²/2, partly if some are",
        ),
        Claim(
            "Tanh nets reach lower minima than linear networks, ε_c < (1 − φ)/2",
            "linear networks: ε_c = (1−φ)/2 (Advani & Ganguli; §6.4)",
            "; ".join(
                f"φ={p:.3g}: {_pm(f.eps_c, f.eps_c_err)} vs {(1 - p) / 2:.3g}" for p, f in fixed
            ),
            v_lin,
            "agrees if every fitted ε_c is more than 2 standard errors below (1−φ)/2",
        ),
        Claim(
            "The theory's ε_c (eqs. 21, 32) beside the fitted one",
            "not claimed to match (the paper compares only the 3/2 exponent)",
            "; ".join(theory) or "no fit",
            "not comparable",
            "shown for reference; s = median tr H0/P over kept runs",
        ),
    )


def _summary(r: CriticalPointsResult) -> dict[str, Any]:
    def num(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    return {
        "n": r.n,
        "seconds": r.timings["total"],
        "phis": {
            f"{s.phi:.4g}": {
                "runs": len(s.seeds),
                "kept": s.num_kept,
                "beta_free": num(s.fit_free.beta),
                "beta_free_err": num(s.fit_free.beta_err),
                "eps_c_free": num(s.fit_free.eps_c),
                "eps_c_free_err": num(s.fit_free.eps_c_err),
                "eps_c_fixed": num(s.fit_fixed.eps_c),
                "eps_c_fixed_err": num(s.fit_fixed.eps_c_err),
                "tanh_empirical": (1 - s.phi) ** 2 / 2,
                "linear": (1 - s.phi) / 2,
            }
            for s in r.runs
        },
    }


register(
    Study(
        name="critical-points",
        paper="001",
        title="Index vs energy of critical points of tanh nets — paper 001 fig. 6",
        description="many small tanh nets driven to critical points (GD to a random level, "
        "then J_g descent); exact index vs energy, the 3/2 law and eps_c(phi)",
        config_class=CriticalPointsConfig,
        run=run_critical_points,
        presets={
            "laptop": {"n": 8, "runs_per_phi": 400, "max_gd_steps": 3000, "jg_max_steps": 150},
            "paper": {"n": 16, "runs_per_phi": 16000},
        },
        sections=sections,
        claims=claims,
        result_class=CriticalPointsResult,
    )
)
