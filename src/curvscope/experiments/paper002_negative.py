"""The paper-002 study ``noise-negative-eigenvalues``: the sum of the Hessian's negative
eigenvalues against the excess training loss L − L* around one minimum (paper 002 §4.1,
App. A.3, fig. 2a; spec ``theory.md`` §3.6, §3.10), registered.

In stationarity near a minimal valley, ⟨L⟩ − L* ≈ (ηκ/4) T and the degenerate block of the
Hessian is ≈ (ηκ/4) Σ_i ∇̂²λ_i, so its small negative eigenvalues scale linearly with ⟨L⟩ − L*,
whatever η and S (κ = (1/S)(1 − S/N)); a straight line through the origin. L* is the minimum of
the label-smoothed loss (the entropy of the smoothed targets,
:func:`~curvscope.experiments.paper002_smallnet.smoothed_ce_minimum`), not 0: the spec corrects
App. A.3, which drops L*. The regression is done on L − L* (the spec's axis) and, for
comparison, on L (the paper's axis, whose intercept is then −w·L* if the spec holds).

Protocol: full-batch GD (``gd_lr``, ``gd_steps``) from the seed's initialisation to a minimum;
from there, for every learning rate η in ``lrs`` and batch size S in ``batch_sizes``, SGD with
epoch shuffling for ``burn_in`` steps, then ``snapshots`` snapshots ``snapshot_every`` steps
apart; at each, the full-batch loss and the exact float64 Hessian spectrum (dense
HessianOperator, ``numpy.linalg.eigvalsh``); y = the sum of its negative eigenvalues. An
ordinary least-squares line y = w (L − L*) + b with the standard errors of w and b.

Presets: ``laptop`` = digits, 10 per class (N = 100), one tanh hidden layer of 16 units
(P = 1210, P/(N(C − 1)) = 1.34); ``paper`` = 500 MNIST images (50 per class, seeded),
mean-pooled to 14×14, 30 hidden units (P = 6220, spec §3.10; P/(N(C − 1)) = 1.38), GD at lr 0.1
for 10k steps, S from 5 to 250 and η from 0.001 to 0.1 as in §4.1. The activation is not given
by the paper; tanh (smooth, so the expansion of §3.6 applies) is the default.

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("noise-negative-eigenvalues").config("laptop").hidden
    16
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.experiments.config import StudyConfig
from curvscope.experiments.paper002_smallnet import (
    NetData,
    check_dense,
    epoch_batches,
    exact_hessian,
    exact_noise_covariance,
    load_net_data,
    load_state,
    make_loss,
    mlp,
    num_params,
    smoothed_ce_minimum,
    state_of,
)
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "LineFit",
    "NegativeConfig",
    "NegativePoint",
    "NegativeResult",
    "fit_line",
    "run_negative",
]


@dataclass(frozen=True)
class NegativeConfig(StudyConfig):
    """``noise-negative-eigenvalues``: data, net, the GD minimum, the (η, S) grid of SGD runs
    from it, the snapshots, and the verdict rule (intercept within ``z_agree`` SEs of 0 and
    r² ≥ ``r2_agree``)."""

    seed: int = 0
    data: str = "digits"
    data_options: dict[str, Any] = field(default_factory=lambda: {"per_class": 10})
    data_dir: str | None = None
    hidden: int = 16
    activation: str = "tanh"
    label_smoothing: float = 0.1
    gd_lr: float = 2.0
    gd_steps: int = 20000
    lrs: tuple[float, ...] = (0.01, 0.03, 0.1)
    batch_sizes: tuple[int, ...] = (5, 10, 25, 50)
    burn_in: int = 2000
    snapshots: int = 2
    snapshot_every: int = 500
    max_dense_params: int = 8000
    z_agree: float = 3.0
    r2_agree: float = 0.8

    def __post_init__(self) -> None:
        if not (0 < self.label_smoothing < 1):
            raise InputError(
                f"label_smoothing must lie in (0, 1): the study needs a genuine minimum L*; got "
                f"{self.label_smoothing!r} (paper: label-smoothed CE, e.g. 0.1)"
            )
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise InputError(f"lrs must be positive learning rates; got {self.lrs!r}")
        if not self.batch_sizes or any(s < 1 for s in self.batch_sizes):
            raise InputError(f"batch_sizes must be positive integers; got {self.batch_sizes!r}")
        if self.hidden < 1 or self.gd_steps < 0 or self.burn_in < 0 or self.snapshots < 1:
            raise InputError(
                f"need hidden >= 1, gd_steps >= 0, burn_in >= 0, snapshots >= 1; got "
                f"hidden={self.hidden}, gd_steps={self.gd_steps}, burn_in={self.burn_in}, "
                f"snapshots={self.snapshots}"
            )
        if self.snapshot_every < 1 or not self.gd_lr > 0:
            raise InputError(
                f"need snapshot_every >= 1 and gd_lr > 0; got {self.snapshot_every}, {self.gd_lr}"
            )
        if len(self.lrs) * len(self.batch_sizes) * self.snapshots < 3:
            raise InputError(
                "the regression needs at least 3 points (lrs x batch_sizes x snapshots); got "
                f"{len(self.lrs)} x {len(self.batch_sizes)} x {self.snapshots}"
            )


@savable
@dataclass(frozen=True)
class LineFit:
    """An ordinary least-squares line y = slope·x + intercept with standard errors and r²."""

    slope: float
    slope_stderr: float
    intercept: float
    intercept_stderr: float
    r2: float
    num_points: int


def fit_line(x: np.ndarray, y: np.ndarray) -> LineFit:
    """OLS fit (``scipy.stats.linregress``) with the standard errors of slope and intercept.

    Example:
        >>> fit = fit_line(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
        >>> round(fit.slope, 9), round(fit.intercept, 9), fit.num_points
        (2.0, 1.0, 3)
    """
    from scipy.stats import linregress

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 3 or np.ptp(x) == 0:
        raise InputError(
            f"a line with standard errors needs at least 3 points with different x; got "
            f"{x.size} point(s), x range {float(np.ptp(x)) if x.size else 0.0:g}"
        )
    res = linregress(x, y)
    return LineFit(
        slope=float(res.slope),
        slope_stderr=float(res.stderr),
        intercept=float(res.intercept),
        intercept_stderr=float(res.intercept_stderr),
        r2=float(res.rvalue**2),
        num_points=int(x.size),
    )


@savable
@dataclass(frozen=True)
class NegativePoint:
    """One snapshot: the SGD settings (lr 0 and batch N for the GD minimum), its step, the
    full-batch loss and the exact spectrum's negative part, and the weights."""

    lr: float
    batch_size: int
    step: int
    loss: float
    excess: float
    negative_sum: float
    num_negative: int
    lambda_min: float
    lambda_max: float
    trace: float
    state: dict[str, np.ndarray]


@savable
@dataclass(frozen=True)
class NegativeResult:
    """Everything ``noise-negative-eigenvalues`` reports: the minimum, the snapshots, both fits;
    :meth:`rebuild_model` / :meth:`rebuild_data` rebuild any network and the data."""

    config: dict[str, Any]
    data: NetData
    input_dim: int
    classes: int
    num_samples: int
    num_params: int
    loss_min: float
    minimum: NegativePoint
    gd_steps: int
    gd_grad_norm: float
    points: tuple[NegativePoint, ...]
    fit_excess: LineFit
    fit_loss: LineFit
    timings: dict[str, float]
    sigma_over_h: float = math.nan
    version: str = __version__

    def rebuild_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.tensors()

    def rebuild_model(self, index: int | None = None) -> nn.Module:
        """The float64 net of ``points[index]`` (``None``: the GD minimum)."""
        c = self.config
        net = mlp(self.input_dim, (c["hidden"],), self.classes, c["activation"], c["seed"])
        point = self.minimum if index is None else self.points[index]
        return load_state(net, point.state)

    def summary(self) -> dict[str, Any]:
        f = self.fit_excess
        return {
            "num_params": self.num_params,
            "num_samples": self.num_samples,
            "loss_min": self.loss_min,
            "slope": f.slope,
            "slope_stderr": f.slope_stderr,
            "intercept": f.intercept,
            "intercept_stderr": f.intercept_stderr,
            "r2": f.r2,
            "intercept_vs_loss": self.fit_loss.intercept,
            "minimum_negative_sum": self.minimum.negative_sum,
            "sigma_over_h_at_minimum": self.sigma_over_h,
            "seconds": self.timings.get("total", math.nan),
        }


# ---------------------------------------------------------------------- computation
def _snapshot(
    net: nn.Module,
    loss: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    l_min: float,
    *,
    lr: float,
    batch_size: int,
    step: int,
) -> NegativePoint:
    with torch.no_grad():
        value = float(loss.train(net(x), y))
    values = np.linalg.eigvalsh(exact_hessian(net, loss, x, y).numpy())
    negative = values[values < 0]
    return NegativePoint(
        lr=float(lr),
        batch_size=int(batch_size),
        step=int(step),
        loss=value,
        excess=value - l_min,
        negative_sum=float(negative.sum()),
        num_negative=int(negative.size),
        lambda_min=float(values[0]),
        lambda_max=float(values[-1]),
        trace=float(values.sum()),
        state=state_of(net),
    )


def run_negative(
    config: NegativeConfig, *, progress: bool = False, state_dir: Any = None
) -> NegativeResult:
    """GD to a minimum, SGD at every (η, S) from it, exact spectra, the line fits."""
    from curvscope.training import gradient_descent

    tick = time.perf_counter()
    data, x, y = load_net_data(config.data, config.data_options, config.seed, config.data_dir)
    classes = int(y.max()) + 1
    input_dim = int(x[0].numel())
    n = len(y)
    net = mlp(input_dim, (config.hidden,), classes, config.activation, config.seed)
    p = num_params(net)
    check_dense(p, config.max_dense_params, f"the {input_dim}-{config.hidden}-{classes} net")
    too_big = [s for s in config.batch_sizes if s > n]
    if too_big:
        raise InputError(
            f"batch_sizes {too_big} exceed the {n} training samples; use batch sizes <= {n}"
        )
    loss = make_loss("cross_entropy", classes=classes, label_smoothing=config.label_smoothing)
    l_min = smoothed_ce_minimum(config.label_smoothing, classes)
    gd = gradient_descent(net, loss.train, x, y, lr=config.gd_lr, max_steps=config.gd_steps)
    minimum = _snapshot(net, loss, x, y, l_min, lr=0.0, batch_size=n, step=gd.steps)
    # tr Σ / tr H at the minimum: §3.6 assumes C ≈ κ H, i.e. Σ ≈ H (S = 1 gives C = Σ)
    sigma, _ = exact_noise_covariance(net, loss, x, y, 1)
    sigma_over_h = float(sigma.diagonal().sum()) / minimum.trace
    del sigma
    start = state_of(net)
    timings = {"minimum": time.perf_counter() - tick}
    if progress:
        print(f"GD minimum: L - L* = {minimum.excess:.3e}, negative sum {minimum.negative_sum:.3e}")
    points = []
    for lr, s in itertools.product(config.lrs, config.batch_sizes):
        load_state(net, start)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(config.seed + 1)
        wanted = {config.burn_in + k * config.snapshot_every for k in range(config.snapshots)}
        step = 0
        while step < max(wanted):
            for batch in epoch_batches(n, s, generator):
                optimizer.zero_grad()
                loss.train(net(x[batch]), y[batch]).backward()
                optimizer.step()
                step += 1
                if step in wanted:
                    points.append(_snapshot(net, loss, x, y, l_min, lr=lr, batch_size=s, step=step))
                    if progress:
                        q = points[-1]
                        print(
                            f"lr {lr:g} S {s} step {step}: L - L* = {q.excess:.3e}, "
                            f"negative sum {q.negative_sum:.3e}"
                        )
                if step >= max(wanted):
                    break
    timings["sgd"] = time.perf_counter() - tick - timings["minimum"]
    excess = np.array([q.excess for q in points])
    negatives = np.array([q.negative_sum for q in points])
    timings["total"] = time.perf_counter() - tick
    return NegativeResult(
        config=config.to_dict(),
        data=data,
        input_dim=input_dim,
        classes=classes,
        num_samples=n,
        num_params=p,
        loss_min=l_min,
        minimum=minimum,
        gd_steps=int(gd.steps),
        gd_grad_norm=float(gd.grad_norm),
        points=tuple(points),
        fit_excess=fit_line(excess, negatives),
        fit_loss=fit_line(excess + l_min, negatives),
        timings=timings,
        sigma_over_h=sigma_over_h,
    )


# ---------------------------------------------------------------------- report content
def sections(r: NegativeResult) -> tuple[Section, ...]:
    c, d, f, g = r.config, r.data, r.fit_excess, r.fit_loss
    setup = Text(
        f"Data {d.name} {d.options} (seed {d.seed}; N = {r.num_samples}, C = {r.classes}); "
        f"{r.input_dim}-{c['hidden']}-{r.classes} {c['activation']} net, P = {r.num_params:,}, "
        f"P/(N(C − 1)) = {r.num_params / (r.num_samples * (r.classes - 1)):.2f}; label-smoothed "
        f"CE (ε = {c['label_smoothing']:g}), L* = {r.loss_min:.6f}. GD at lr {c['gd_lr']:g} for "
        f"{r.gd_steps} steps (‖∇L‖ = {r.gd_grad_norm:.2e}) gives the minimum; SGD from it with "
        f"η ∈ {list(c['lrs'])}, S ∈ {list(c['batch_sizes'])}, snapshots after {c['burn_in']} "
        f"steps every {c['snapshot_every']}. Exact float64 spectra (eigvalsh of the dense "
        f"Hessian). Run time {r.timings['total']:.0f} s (loaded machine), curvscope {r.version}."
    )
    fits = Table(
        ("x axis", "slope w", "± SE", "intercept b", "± SE", "b / SE", "r²", "points"),
        (
            (
                "L − L* (spec §3.6)",
                f.slope,
                f.slope_stderr,
                f.intercept,
                f.intercept_stderr,
                f.intercept / f.intercept_stderr,
                f.r2,
                f.num_points,
            ),
            (
                "L (paper fig. 2a)",
                g.slope,
                g.slope_stderr,
                g.intercept,
                g.intercept_stderr,
                g.intercept / g.intercept_stderr,
                g.r2,
                g.num_points,
            ),
        ),
        caption="Least-squares lines: sum of negative eigenvalues = w·x + b "
        "(paper: w = −40.07, b = 1.22e−5 on its axis)",
    )
    rows = tuple(
        (
            q.lr,
            q.batch_size,
            q.step,
            q.loss,
            q.excess,
            q.negative_sum,
            q.num_negative,
            q.lambda_min,
            q.lambda_max,
        )
        for q in (r.minimum, *r.points)
    )
    table = Table(
        ("η", "S", "step", "L", "L − L*", "Σ negative λ", "# negative", "λ_min", "λ_max"),
        rows,
        caption="Snapshots (first row: the GD minimum, η = 0, S = N)",
        left=0,
    )
    below = sum(q.excess < r.minimum.excess for q in r.points)
    drift = Text(
        f"{below} of {len(r.points)} snapshots have a lower loss than the GD minimum they "
        "started from"
        + (
            ": SGD was still descending from it, so these points trace the descent rather than "
            "noise-set stationary levels (near an interpolating minimum of label-smoothed CE "
            "every per-sample gradient vanishes, and so does C)."
            if 2 * below > len(r.points)
            else "."
        )
        + f" At the GD minimum tr Σ / tr H = {r.sigma_over_h:.3g} (Σ the per-sample gradient "
        "covariance; §3.6 assumes C ≈ κH, i.e. a ratio near 1).",
        note=True,
    )
    return (
        Section("Setup", (setup, drift)),
        Section(
            "Negative eigenvalues against the excess loss",
            (
                fits,
                FigureRef(
                    "negative",
                    "Sum of negative eigenvalues against L − L* with the fitted line (fig. 2a).",
                ),
                table,
            ),
        ),
    )


def claims(r: NegativeResult) -> tuple[Claim, ...]:
    c, f = r.config, r.fit_excess
    xs = [q.excess for q in r.points]
    z = abs(f.intercept) / f.intercept_stderr if f.intercept_stderr > 0 else math.inf
    spread = (max(xs) - min(xs)) >= 0.5 * max(xs)
    if f.slope < 0 and f.r2 >= c["r2_agree"] and z <= c["z_agree"] and spread:
        verdict = "agrees"
    elif f.slope < 0 and f.r2 >= c["r2_agree"] / 2:
        verdict = "partly"
    else:
        verdict = "disagrees"
    return (
        Claim(
            "The sum of negative Hessian eigenvalues is proportional to the excess training "
            "loss, across learning rates and batch sizes (a line through the origin)",
            "linear, w = −40.07, b = 1.22e−5 (fig. 2a; MNIST, 500 samples, P = 6220)",
            f"w = {f.slope:.4g} ± {f.slope_stderr:.2g}, b = {f.intercept:.3g} ± "
            f"{f.intercept_stderr:.2g} (|b|/SE = {z:.1f}), r² = {f.r2:.3f}, {f.num_points} points "
            f"with L − L* in [{min(xs):.3g}, {max(xs):.3g}]",
            verdict,  # type: ignore[arg-type]
            f"x = L − L* (spec §3.6; the paper's App. A.3 drops L*); agrees if w < 0, r² ≥ "
            f"{c['r2_agree']:g}, |b| ≤ {c['z_agree']:g} SE and the points span at least half of "
            "their largest L − L* (else the intercept is an extrapolation); partly if w < 0 and r² ≥ "
            f"{c['r2_agree'] / 2:g}; the slope depends on the net and data (not comparable)",
        ),
    )


_PAPER = {
    "data": "mnist",
    "data_options": {"per_class": 50, "per_class_seed": 0, "size": 14},
    "hidden": 30,
    "gd_lr": 0.1,
    "gd_steps": 10000,
    "lrs": (0.001, 0.01, 0.1),
    "batch_sizes": (5, 25, 50, 250),
    "burn_in": 5000,
    "snapshots": 2,
    "snapshot_every": 1000,
}

register(
    Study(
        name="noise-negative-eigenvalues",
        paper="002",
        title="Negative Hessian eigenvalues against the excess loss — paper 002 §4.1, fig. 2a",
        description="from one GD minimum of label-smoothed CE, SGD at several η and S; the sum "
        "of the exact negative eigenvalues regressed on L − L*, intercept ± SE",
        config_class=NegativeConfig,
        run=run_negative,
        presets={"laptop": {}, "paper": dict(_PAPER)},
        sections=sections,
        claims=claims,
        result_class=NegativeResult,
    )
)
