"""The paper-002 study ``noise-alignment``: the cosine similarity of the Hessian and the SGD noise
covariance along training (paper 002 eq. 35, App. A.4, fig. 5; spec ``theory.md`` §3.2-3.3,
§3.10), registered.

.. math:: \\mathrm{CS}(H, C) = \\frac{\\operatorname{tr}(HC)}{\\sqrt{\\operatorname{tr}(H^2)
          \\operatorname{tr}(C^2)}}, \\qquad
          \\mathrm{CS}_0 = \\frac{\\operatorname{tr} H \\operatorname{tr} C}{P\\,\\|H\\|_F \\|C\\|_F}

C is the centred mini-batch noise covariance for batches of S drawn without replacement,
``c(S, N) Σ`` (:mod:`~curvscope.experiments.paper002_smallnet`). CS is scale-free, so the factor
only matters for the traces. CS0 is the PSD baseline of spec §3.3: the expected CS of H with a
Haar-rotated C; the paper's "random matrices have CS ≈ 0" holds only for zero-mean matrices, two
PSD-like matrices have CS ≥ CS0 > 0 by chance alone (spec erratum, followed here).

One hidden layer (``hidden`` units, default ReLU) on 7×7 images, trained by plain SGD with epoch
shuffling, once with label-smoothed cross-entropy and once with MSE on one-hot targets. At each
epoch of ``measure_epochs``: exact H and C as dense float64 matrices (``exact``; H by
:class:`~curvscope.operators.HessianOperator`, C by
:class:`~curvscope.operators.GradientCovarianceOperator`) and/or the randomised estimate
(``estimate``; Hutchinson with Rademacher probes v, one block product with H and one with C:
tr(HC) = E[(Hv)·(Cv)], tr(H²) = E‖Hv‖², tr(C²) = E‖Cv‖², tr H = E[v·Hv], tr C = E[v·Cv];
CS and CS0 as ratios of the probe means, standard errors by the jackknife over probes). The
estimate needs no P×P matrix, so it serves nets too large for the exact path (``exact=false``).

Presets: ``laptop`` = digits mean-pooled to 7×7 (N = 1438), 30 hidden units (P = 1810),
S = 64; ``paper`` = 7×7 grayscale standardised CIFAR-10 from ``data_dir``, 70 units
(P = 50·70 + 71·10 = 4210), S = 512, lr 0.001 (CE) and 0.1 (MSE) as in App. A.4.

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("noise-alignment").config("paper").hidden
    70
"""

from __future__ import annotations

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
    LOSS_KINDS,
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
    state_of,
)
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "AlignmentConfig",
    "AlignmentEstimate",
    "AlignmentPoint",
    "AlignmentResult",
    "AlignmentRun",
    "AlignmentValues",
    "alignment_values",
    "estimate_alignment",
    "run_alignment",
]


# ---------------------------------------------------------------------- config
@dataclass(frozen=True)
class AlignmentConfig(StudyConfig):
    """``noise-alignment``: data, the one-hidden-layer net, SGD per loss, where and how CS is
    measured, and the verdict threshold ``cs_agree`` (paper: CS > 0.9 after several epochs)."""

    seed: int = 0
    data: str = "digits"
    data_options: dict[str, Any] = field(default_factory=lambda: {"size": 7})
    data_dir: str | None = None
    hidden: int = 30
    activation: str = "relu"
    losses: tuple[str, ...] = LOSS_KINDS
    label_smoothing: float = 0.1
    lr_cross_entropy: float = 0.1
    lr_mse: float = 0.1
    batch_size: int = 64
    epochs: int = 20
    measure_epochs: tuple[int, ...] = (0, 1, 2, 4, 8, 14, 20)
    exact: bool = True
    estimate: bool = True
    num_probes: int = 32
    probe_seed: int = 1
    max_dense_params: int = 6000
    cs_agree: float = 0.9

    def __post_init__(self) -> None:
        bad = [k for k in self.losses if k not in LOSS_KINDS]
        if bad or not self.losses:
            raise InputError(
                f"losses must be a non-empty list of {', '.join(LOSS_KINDS)}; got {self.losses!r}"
            )
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 1:
            raise InputError(
                f"hidden, epochs and batch_size must be >= 1; got hidden={self.hidden}, "
                f"epochs={self.epochs}, batch_size={self.batch_size}"
            )
        if not self.measure_epochs or any(not 0 <= e <= self.epochs for e in self.measure_epochs):
            raise InputError(
                f"measure_epochs must be epochs in [0, epochs = {self.epochs}]; got "
                f"{self.measure_epochs!r}"
            )
        if not (self.exact or self.estimate):
            raise InputError("exact and estimate are both off: nothing to measure; turn one on")
        if self.estimate and self.num_probes < 2:
            raise InputError(f"num_probes must be >= 2 (for a stderr); got {self.num_probes}")
        if not (self.lr_cross_entropy > 0 and self.lr_mse > 0):
            raise InputError(
                f"learning rates must be > 0; got lr_cross_entropy={self.lr_cross_entropy}, "
                f"lr_mse={self.lr_mse}"
            )


# ---------------------------------------------------------------------- results
@savable
@dataclass(frozen=True)
class AlignmentValues:
    """Exact CS, CS0 and the traces they come from (H, C dense float64)."""

    cs: float
    cs0: float
    tr_hc: float
    tr_h2: float
    tr_c2: float
    tr_h: float
    tr_c: float


@savable
@dataclass(frozen=True)
class AlignmentEstimate:
    """Hutchinson estimates of CS, CS0 and the five traces, each with its standard error
    (jackknife over probes for the ratios, the probe spread for the traces)."""

    cs: float
    cs_stderr: float
    cs0: float
    cs0_stderr: float
    tr_hc: float
    tr_hc_stderr: float
    tr_h2: float
    tr_h2_stderr: float
    tr_c2: float
    tr_c2_stderr: float
    tr_h: float
    tr_h_stderr: float
    tr_c: float
    tr_c_stderr: float
    num_probes: int
    seed: int


@savable
@dataclass(frozen=True)
class AlignmentPoint:
    """One measurement along training: where (epoch, SGD step), the full-batch loss and accuracy,
    the exact values and/or the estimate, and the weights they were computed at."""

    epoch: int
    step: int
    loss: float
    accuracy: float
    exact: AlignmentValues | None
    estimate: AlignmentEstimate | None
    state: dict[str, np.ndarray]
    seconds: float


@savable
@dataclass(frozen=True)
class AlignmentRun:
    """SGD with one loss: its settings, the noise factor c(S, N) and the points."""

    loss: str
    lr: float
    label_smoothing: float
    noise_scale: float
    points: tuple[AlignmentPoint, ...]


@savable
@dataclass(frozen=True)
class AlignmentResult:
    """Everything ``noise-alignment`` reports; :meth:`rebuild_model` and :meth:`rebuild_data`
    give back any measured network and the data, so every number can be recomputed."""

    config: dict[str, Any]
    data: NetData
    input_dim: int
    classes: int
    num_samples: int
    num_params: int
    runs: tuple[AlignmentRun, ...]
    timings: dict[str, float]
    version: str = __version__

    def rebuild_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.tensors()

    def rebuild_model(self, run: int, point: int) -> nn.Module:
        """The float64 net of ``runs[run].points[point]`` at its weights."""
        c = self.config
        net = mlp(self.input_dim, (c["hidden"],), self.classes, c["activation"], c["seed"])
        return load_state(net, self.runs[run].points[point].state)

    def loss_of(self, run: int) -> Any:
        r = self.runs[run]
        return make_loss(r.loss, classes=self.classes, label_smoothing=r.label_smoothing)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_params": self.num_params, "num_samples": self.num_samples}
        for r in self.runs:
            out[r.loss] = [
                {
                    "epoch": p.epoch,
                    "loss": p.loss,
                    **({"cs": p.exact.cs, "cs0": p.exact.cs0} if p.exact else {}),
                    **(
                        {
                            "cs_est": p.estimate.cs,
                            "cs_est_se": p.estimate.cs_stderr,
                            "cs0_est": p.estimate.cs0,
                            "cs0_est_se": p.estimate.cs0_stderr,
                        }
                        if p.estimate
                        else {}
                    ),
                }
                for p in r.points
            ]
        out["seconds"] = self.timings.get("total", math.nan)
        return out


# ---------------------------------------------------------------------- the two measurements
def alignment_values(h: torch.Tensor, c: torch.Tensor) -> AlignmentValues:
    """CS, CS0 and the traces of two dense symmetric matrices (eq. 35, spec §3.3).

    Example:
        >>> a = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> round(alignment_values(a, 3 * a).cs, 12), round(alignment_values(a, 3 * a).cs0, 6)
        (1.0, 0.9)
    """
    h, c = h.double(), c.double()
    size = h.shape[0]
    tr_hc = float((h * c).sum())  # tr(H C) for symmetric H, C
    tr_h2, tr_c2 = float((h * h).sum()), float((c * c).sum())
    tr_h, tr_c = float(h.diagonal().sum()), float(c.diagonal().sum())
    norm = math.sqrt(tr_h2 * tr_c2)
    return AlignmentValues(
        cs=tr_hc / norm,
        cs0=tr_h * tr_c / (size * norm),
        tr_hc=tr_hc,
        tr_h2=tr_h2,
        tr_c2=tr_c2,
        tr_h=tr_h,
        tr_c=tr_c,
    )


def _ratios(forms: torch.Tensor, size: int) -> tuple[float, float]:
    """CS and CS0 from the probe means of (v·Hv, v·Cv, Hv·Cv, |Hv|², |Cv|²) (rows of forms)."""
    m = forms.mean(dim=1)
    norm = math.sqrt(float(m[3]) * float(m[4]))
    return float(m[2]) / norm, float(m[0]) * float(m[1]) / (size * norm)


def estimate_alignment(
    h_op: Any, c_op: Any, *, c_scale: float = 1.0, num_probes: int = 32, seed: int = 0
) -> AlignmentEstimate:
    """Hutchinson estimates of CS(H, C), CS0 and their traces with standard errors (spec §3.3).

    With k Rademacher probes v (E[v vᵀ] = I), one block product with each operator:

    .. math:: \\operatorname{tr}(HC) \\approx \\overline{(Hv)\\cdot(Cv)}, \\quad
              \\operatorname{tr}(H^2) \\approx \\overline{\\|Hv\\|^2}, \\quad
              \\operatorname{tr}(C^2) \\approx \\overline{\\|Cv\\|^2}, \\quad
              \\operatorname{tr} H \\approx \\overline{v\\cdot Hv}, \\quad
              \\operatorname{tr} C \\approx \\overline{v\\cdot Cv}

    CS and CS0 are the ratios of these means; their standard errors come from the leave-one-probe-
    out jackknife (the bias of a ratio is O(1/k), below its O(1/√k) error).

    Args:
        h_op, c_op: symmetric operators of the same size (e.g. HessianOperator and
            GradientCovarianceOperator, or dense tensors).
        c_scale: factor applied to ``c_op`` (the mini-batch factor c(S, N)); CS and CS0 are
            unchanged by it, the traces of C scale with it.
        num_probes: k >= 2.
        seed: seed of the probes' CPU generator.

    Example:
        >>> a = torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))
        >>> round(estimate_alignment(a, a, num_probes=4).cs, 12)  # exact for diagonal H = C
        1.0
    """
    from curvscope.operators import as_operator
    from curvscope.spectral import draw_probes, make_generator, mean_and_stderr

    if isinstance(num_probes, bool) or not isinstance(num_probes, int) or num_probes < 2:
        raise InputError(f"num_probes must be an integer >= 2 (for a stderr); got {num_probes!r}")
    h_op, c_op = as_operator(h_op), as_operator(c_op)
    if tuple(h_op.shape) != tuple(c_op.shape):
        raise InputError(f"H and C must have the same size; got {h_op.shape} and {c_op.shape}")
    size = int(h_op.shape[0])
    probes = draw_probes(
        size, num_probes, generator=make_generator(seed), dtype=h_op.dtype, device=h_op.device
    )
    hv = (h_op @ probes).double().cpu()
    cv = (c_op @ probes.to(c_op.dtype)).double().cpu() * c_scale
    v = probes.double().cpu()
    forms = torch.stack(
        [(v * hv).sum(0), (v * cv).sum(0), (hv * cv).sum(0), (hv**2).sum(0), (cv**2).sum(0)]
    )
    cs, cs0 = _ratios(forms, size)
    keep = [torch.tensor([j for j in range(num_probes) if j != i]) for i in range(num_probes)]
    loo = torch.tensor([_ratios(forms[:, k], size) for k in keep], dtype=torch.float64)
    spread = ((loo - loo.mean(0)) ** 2).sum(0) * (num_probes - 1) / num_probes
    cs_se, cs0_se = (float(s) for s in spread.sqrt())
    traces = [mean_and_stderr(forms[i]) for i in range(5)]
    (tr_h, tr_h_se), (tr_c, tr_c_se), (tr_hc, tr_hc_se), (tr_h2, tr_h2_se), (tr_c2, tr_c2_se) = (
        traces
    )
    return AlignmentEstimate(
        cs=cs,
        cs_stderr=cs_se,
        cs0=cs0,
        cs0_stderr=cs0_se,
        tr_hc=tr_hc,
        tr_hc_stderr=tr_hc_se,
        tr_h2=tr_h2,
        tr_h2_stderr=tr_h2_se,
        tr_c2=tr_c2,
        tr_c2_stderr=tr_c2_se,
        tr_h=tr_h,
        tr_h_stderr=tr_h_se,
        tr_c=tr_c,
        tr_c_stderr=tr_c_se,
        num_probes=num_probes,
        seed=seed,
    )


# ---------------------------------------------------------------------- computation
def _measure(
    config: AlignmentConfig,
    net: nn.Module,
    loss: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epoch: int,
    step: int,
) -> AlignmentPoint:
    from curvscope.operators import (
        GradientCovarianceOperator,
        HessianOperator,
        minibatch_noise_scale,
    )

    tick = time.perf_counter()
    with torch.no_grad():
        out = net(x)
        value = float(loss.train(out, y))
        accuracy = float((out.argmax(1) == y).double().mean())
    exact = estimate = None
    if config.exact:
        h = exact_hessian(net, loss, x, y)
        c, _ = exact_noise_covariance(net, loss, x, y, config.batch_size)
        exact = alignment_values(h, c)
        del h, c
    if config.estimate:
        data = (x, loss.op_targets(y))
        estimate = estimate_alignment(
            HessianOperator(net, loss.op, data, dtype=torch.float64),
            GradientCovarianceOperator(net, loss.op, data, dtype=torch.float64),
            c_scale=minibatch_noise_scale(config.batch_size, int(x.shape[0])),
            num_probes=config.num_probes,
            seed=config.probe_seed + epoch,
        )
    return AlignmentPoint(
        epoch=epoch,
        step=step,
        loss=value,
        accuracy=accuracy,
        exact=exact,
        estimate=estimate,
        state=state_of(net),
        seconds=time.perf_counter() - tick,
    )


def _train_one(
    config: AlignmentConfig,
    kind: str,
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    *,
    progress: bool,
) -> AlignmentRun:
    from curvscope.operators import minibatch_noise_scale

    loss = make_loss(kind, classes=classes, label_smoothing=config.label_smoothing)
    lr = config.lr_cross_entropy if kind == "cross_entropy" else config.lr_mse
    net = mlp(int(x[0].numel()), (config.hidden,), classes, config.activation, config.seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(config.seed)
    wanted = sorted(set(config.measure_epochs))
    points, step = [], 0
    for epoch in range(config.epochs + 1):
        if epoch in wanted:
            points.append(_measure(config, net, loss, x, y, epoch=epoch, step=step))
            if progress:
                p = points[-1]
                shown = p.exact or p.estimate
                print(
                    f"{kind} epoch {epoch}: loss {p.loss:.4f}, CS {shown.cs:.3f}, "  # type: ignore[union-attr]
                    f"CS0 {shown.cs0:.3f} ({p.seconds:.1f} s)"  # type: ignore[union-attr]
                )
        if epoch == config.epochs:
            break
        for batch in epoch_batches(len(y), config.batch_size, generator):
            optimizer.zero_grad()
            loss.train(net(x[batch]), y[batch]).backward()
            optimizer.step()
            step += 1
    return AlignmentRun(
        loss=kind,
        lr=lr,
        label_smoothing=loss.label_smoothing,
        noise_scale=minibatch_noise_scale(config.batch_size, len(y)),
        points=tuple(points),
    )


def run_alignment(
    config: AlignmentConfig, *, progress: bool = False, state_dir: Any = None
) -> AlignmentResult:
    """Train with each loss and measure CS(H, C) and CS0 along training (``noise-alignment``)."""
    tick = time.perf_counter()
    data, x, y = load_net_data(config.data, config.data_options, config.seed, config.data_dir)
    classes = int(y.max()) + 1
    input_dim = int(x[0].numel())
    p = num_params(mlp(input_dim, (config.hidden,), classes, config.activation, config.seed))
    if config.exact:
        check_dense(p, config.max_dense_params, f"the {input_dim}-{config.hidden}-{classes} net")
    if config.batch_size > len(y):
        raise InputError(
            f"batch_size {config.batch_size} exceeds the {len(y)} training samples; use a "
            "smaller batch_size or more data"
        )
    runs, timings = [], {}
    for kind in config.losses:
        start = time.perf_counter()
        runs.append(_train_one(config, kind, x, y, classes, progress=progress))
        timings[kind] = time.perf_counter() - start
    timings["total"] = time.perf_counter() - tick
    return AlignmentResult(
        config=config.to_dict(),
        data=data,
        input_dim=input_dim,
        classes=classes,
        num_samples=len(y),
        num_params=p,
        runs=tuple(runs),
        timings=timings,
    )


# ---------------------------------------------------------------------- report content
def _fmt(value: float, se: float | None = None) -> str:
    return f"{value:.3f}" if se is None else f"{value:.3f} ± {se:.3f}"


def _points_table(r: AlignmentResult, run: AlignmentRun) -> Table:
    rows = []
    for p in run.points:
        e, s = p.exact, p.estimate
        rows.append(
            (
                p.epoch,
                p.step,
                p.loss,
                p.accuracy,
                None if e is None else e.cs,
                None if e is None else e.cs0,
                None if s is None else _fmt(s.cs, s.cs_stderr),
                None if s is None else _fmt(s.cs0, s.cs0_stderr),
                None if (e is None or s is None) else (s.cs - e.cs) / s.cs_stderr,
                None if e is None else e.tr_c / (run.noise_scale * e.tr_h),
            )
        )
    return Table(
        (
            "epoch",
            "SGD step",
            "train loss",
            "train acc.",
            "CS exact",
            "CS0 exact",
            "CS est. ± SE",
            "CS0 est. ± SE",
            "(est − exact)/SE",
            "tr C / (c tr H)",
        ),
        tuple(rows),
        caption=f"{run.loss} (lr {run.lr:g}"
        + (f", label smoothing {run.label_smoothing:g}" if run.loss == "cross_entropy" else "")
        + f"): c(S, N) = {run.noise_scale:.4g}; last column is 1 where C = c·H exactly in trace",
        left=0,
    )


def sections(r: AlignmentResult) -> tuple[Section, ...]:
    c, d = r.config, r.data
    setup = Text(
        f"Data {d.name} {d.options} (seed {d.seed}; N = {r.num_samples}, {r.input_dim} inputs, "
        f"C = {r.classes}); {r.input_dim}-{c['hidden']}-{r.classes} {c['activation']} net, "
        f"P = {r.num_params:,}, initial weights from seed {c['seed']}; plain SGD with epoch "
        f"shuffling, batch S = {c['batch_size']}, {c['epochs']} epochs. C is the centred noise "
        "covariance of an S-batch drawn without replacement, c(S, N)·Σ with c = (1/S)(1 − S/N)"
        "·N/(N − 1) (spec §3.2; the paper's factor lacks N/(N − 1), CS does not depend on it). "
        + (
            "Exact: dense float64 H (HessianOperator) and C (GradientCovarianceOperator). "
            if c["exact"]
            else ""
        )
        + (
            f"Estimate: {c['num_probes']} Rademacher probes per point, one block product with H "
            "and one with C; SEs by the jackknife over probes. "
            if c["estimate"]
            else ""
        )
        + f"Run time {r.timings['total']:.0f} s (loaded machine), curvscope {r.version}."
    )
    baseline = Text(
        "CS0 = tr H tr C / (P ‖H‖_F ‖C‖_F) is the cosine H would have with C rotated at random "
        "(Haar), the baseline for two positive semi-definite-like matrices (spec §3.3). The paper "
        "compares CS with 0 ('two random matrices ... are almost orthogonal'); that holds for "
        "zero-mean random matrices only, so this report sets CS beside CS0 instead.",
        note=True,
    )
    blocks: list[Any] = [_points_table(r, run) for run in r.runs]
    return (
        Section("Setup", (setup, baseline)),
        Section(
            "Alignment along training",
            (
                *blocks,
                FigureRef(
                    "alignment",
                    "CS(H, C) and CS0 along training (fig. 5), exact and "
                    "estimated ± SE, with the training loss.",
                ),
            ),
        ),
    )


def _final(run: AlignmentRun) -> tuple[float, float, str]:
    p = run.points[-1]
    if p.exact is not None:
        return p.exact.cs, p.exact.cs0, "exact"
    assert p.estimate is not None
    return p.estimate.cs, p.estimate.cs0, "estimated"


def claims(r: AlignmentResult) -> tuple[Claim, ...]:
    threshold = r.config["cs_agree"]
    out = []
    for run in r.runs:
        cs, cs0, how = _final(run)
        later = [
            (p.exact or p.estimate).cs  # type: ignore[union-attr]
            for p in run.points
            if p.epoch >= r.config["epochs"] / 2
        ]
        low = min(later) if later else cs
        verdict = "agrees" if low > threshold else ("partly" if cs > cs0 else "disagrees")
        name = "label-smoothed CE" if run.loss == "cross_entropy" else "MSE"
        out.append(
            Claim(
                f"After the early phase of training H and C are aligned ({name})",
                f"CS(H, C) > {threshold:g} after several epochs (App. A.4, fig. 5; 7×7 CIFAR-10, "
                "P = 4210)",
                f"CS = {cs:.3f} at epoch {run.points[-1].epoch} ({how}); min over the second half "
                f"of training {low:.3f}; CS0 = {cs0:.3f}",
                verdict,  # type: ignore[arg-type]
                f"agrees if CS > {threshold:g} at every point of the second half of training, "
                "partly if the final CS exceeds the PSD baseline CS0, disagrees otherwise",
            )
        )
    cs0s = [_final(run)[1] for run in r.runs]
    out.append(
        Claim(
            "Unrelated matrices of this size have cosine similarity about 0",
            "'two random matrices with the same size as H and C ... are almost orthogonal with "
            "the cosine similarity of 0' (App. A.4)",
            "PSD baseline CS0 at the final point: "
            + ", ".join(f"{run.loss} {v:.3f}" for run, v in zip(r.runs, cs0s)),
            "agrees" if max(cs0s) < 0.05 else "disagrees",
            "spec §3.3 erratum: for PSD matrices the chance level is CS0 = E CS(H, QCQᵀ), not 0; "
            "agrees only if CS0 < 0.05",
        )
    )
    return tuple(out)


_PAPER = {
    "data": "cifar10",
    "data_options": {"grayscale": True, "size": 7, "whiten": "standardize"},
    "hidden": 70,
    "lr_cross_entropy": 0.001,
    "lr_mse": 0.1,
    "batch_size": 512,
    "epochs": 30,
    "measure_epochs": (0, 1, 2, 3, 5, 10, 15, 20, 25, 30),
    "num_probes": 64,
}

register(
    Study(
        name="noise-alignment",
        paper="002",
        title="Hessian–noise covariance alignment along training — paper 002 eq. 35, fig. 5",
        description="CS(H, C) of the Hessian and the mini-batch noise covariance along SGD, "
        "label-smoothed CE and MSE, exact and Hutchinson-estimated, beside the PSD baseline CS0",
        config_class=AlignmentConfig,
        run=run_alignment,
        presets={"laptop": {}, "paper": dict(_PAPER)},
        sections=sections,
        claims=claims,
        result_class=AlignmentResult,
    )
)
