"""The paper-002 study ``noise-fdr``: the fluctuation-dissipation ratio O_L/O_R of SGD with
momentum along training, in the full parameter space and in the top-1 Hessian eigenspace
(paper 002 App. A.5, fig. 6; Yaida 2019; spec ``theory.md`` §3.7), registered.

torch's SGD with momentum μ, dampening ν and weight decay: b_{t+1} = μ b_t + (1 − ν) g_t,
θ_{t+1} = θ_t − η b_{t+1}, g_t the mini-batch gradient (weight decay included). At stationarity

.. math:: O_L = \\langle \\theta\\cdot g\\rangle \\;=\\; O_R = \\frac{\\eta(1 + \\mu)}{2(1 - \\nu)}
          \\langle |b|^2 \\rangle, \\qquad
          \\langle \\Pi\\theta\\cdot\\Pi g\\rangle = \\frac{\\eta(1 + \\mu)}{2(1 - \\nu)}
          \\langle |\\Pi b|^2\\rangle

(FDR, FDR'). **Erratum followed**: the paper prints FDR' with η(1 − μ); with Π = I it must
reduce to FDR, so the prefactor is (1 + μ) (spec §3.7). Here Π = u₁u₁ᵀ, u₁ the top eigenvector
of the Hessian of the training loss, recomputed at the start of each window (one epoch) and
held fixed over it. Averages are over the iterations of each window (⟨θ·g⟩ with the
mini-batch gradient of the step, an unbiased stand-in for ∇L); standard errors of the ratios
by the jackknife over ``blocks`` contiguous blocks of the window (iterates are correlated, so
these are rough). |O_L/O_R − 1| < 1e-2 is Yaida's stationarity criterion.

The network is the paper's small CNN: three 3×3 convolutions (``channels`` then one output
channel per class; paper 15, 20, 10), ReLU and 2×2 max-pooling after the first two, global
average pooling of the last (the paper gives only the kernel size and channels; the pooling is
this study's assumption). Presets: ``laptop`` = 8×8 digits, 50 per class (P = 4680); ``paper`` = CIFAR-10 from
``data_dir`` (P = 4950), 50 epochs.

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("noise-fdr").config("laptop").channels
    (15, 20)
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
    epoch_batches,
    flat,
    load_net_data,
    load_state,
    make_loss,
    num_params,
    state_of,
)
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "FDRConfig",
    "FDRNet",
    "FDRResult",
    "fdr_ratio",
    "run_fdr",
]


@dataclass(frozen=True)
class FDRConfig(StudyConfig):
    """``noise-fdr``: data, the CNN's hidden ``channels``, SGD with momentum, windows of one
    epoch, the top eigenvector's tolerance, and the stationarity threshold of the verdict."""

    seed: int = 0
    data: str = "digits"
    data_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    channels: tuple[int, ...] = (15, 20)
    label_smoothing: float = 0.0
    lr: float = 0.05
    momentum: float = 0.9
    dampening: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 30
    blocks: int = 5
    eig_tol: float = 1e-6
    threshold: float = 1e-2

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or any(c < 1 for c in self.channels):
            raise InputError(
                f"channels must be two positive hidden channel counts (the third convolution "
                f"has one channel per class); got {self.channels!r}, paper (15, 20)"
            )
        if not (self.lr > 0 and 0 <= self.momentum < 1 and 0 <= self.dampening < 1):
            raise InputError(
                f"need lr > 0, 0 <= momentum < 1, 0 <= dampening < 1; got lr={self.lr}, "
                f"momentum={self.momentum}, dampening={self.dampening}"
            )
        if self.weight_decay < 0 or self.epochs < 1 or self.batch_size < 1 or self.blocks < 2:
            raise InputError(
                f"need weight_decay >= 0, epochs >= 1, batch_size >= 1, blocks >= 2; got "
                f"{self.weight_decay}, {self.epochs}, {self.batch_size}, {self.blocks}"
            )


class FDRNet(nn.Module):
    """The small CNN of App. A.5: conv3×3(c₁)–ReLU–pool, conv3×3(c₂)–ReLU–pool,
    conv3×3(classes), global average pooling (logits)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], classes: int) -> None:
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, classes, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _build(in_channels: int, channels: tuple[int, ...], classes: int, seed: int) -> FDRNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FDRNet(in_channels, tuple(channels), classes).double()


def fdr_ratio(
    left: np.ndarray, right: np.ndarray, prefactor: float, *, blocks: int
) -> tuple[float, float]:
    """O_L/O_R = mean(left) / (prefactor · mean(right)) over a window and its jackknife SE over
    ``blocks`` contiguous blocks.

    Example:
        >>> fdr_ratio(np.ones(10), np.full(10, 2.0), 0.5, blocks=5)
        (1.0, 0.0)
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    ratio = float(left.mean() / (prefactor * right.mean()))
    parts = np.array_split(np.arange(left.size), blocks)
    if left.size < blocks:
        return ratio, math.nan
    loo = []
    for part in parts:
        keep = np.ones(left.size, dtype=bool)
        keep[part] = False
        loo.append(left[keep].mean() / (prefactor * right[keep].mean()))
    loo_arr = np.array(loo)
    se = math.sqrt((blocks - 1) / blocks * float(((loo_arr - loo_arr.mean()) ** 2).sum()))
    return ratio, se


@savable
@dataclass(frozen=True)
class FDRResult:
    """Everything ``noise-fdr`` reports.

    Attributes:
        window_states: the weights at the start of each window (epoch), from which
            :meth:`rebuild_model` rebuilds the net whose top eigenpair defines Π.
        top_values, top_vectors: λ₁ and u₁ of the Hessian (data loss) at each window start.
        window_bounds: ``(E + 1,)`` iteration indices: window e is [bounds[e], bounds[e+1]).
        left_full, right_full, left_top, right_top: per-iteration θ·g, |b|², (u·θ)(u·g), (u·b)²
            (O_R is ``prefactor`` times the mean of the right-hand arrays).
        batch_loss: per-iteration mini-batch loss; epoch_loss, epoch_accuracy: full-batch
            values at each window start.
        ratio_full, ratio_full_stderr, ratio_top, ratio_top_stderr: O_L/O_R per window.
    """

    config: dict[str, Any]
    data: NetData
    input_shape: tuple[int, ...]
    classes: int
    num_samples: int
    num_params: int
    prefactor: float
    window_states: tuple[dict[str, np.ndarray], ...]
    top_values: np.ndarray
    top_vectors: np.ndarray
    window_bounds: np.ndarray
    left_full: np.ndarray
    right_full: np.ndarray
    left_top: np.ndarray
    right_top: np.ndarray
    batch_loss: np.ndarray
    epoch_loss: np.ndarray
    epoch_accuracy: np.ndarray
    ratio_full: np.ndarray
    ratio_full_stderr: np.ndarray
    ratio_top: np.ndarray
    ratio_top_stderr: np.ndarray
    timings: dict[str, float]
    version: str = __version__

    def rebuild_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.tensors()

    def rebuild_model(self, window: int) -> nn.Module:
        """The float64 CNN at the start of window ``window``."""
        c = self.config
        net = _build(self.input_shape[0], tuple(c["channels"]), self.classes, c["seed"])
        return load_state(net, self.window_states[window])

    def loss(self) -> Any:
        return make_loss(
            "cross_entropy", classes=self.classes, label_smoothing=self.config["label_smoothing"]
        )

    def tail(self) -> tuple[float, float]:
        """Median |O_L/O_R − 1| over the last third of the windows: (full space, top-1)."""
        start = (2 * len(self.ratio_full)) // 3
        full = float(np.median(np.abs(self.ratio_full[start:] - 1)))
        top = float(np.median(np.abs(self.ratio_top[start:] - 1)))
        return full, top

    def summary(self) -> dict[str, Any]:
        full, top = self.tail()
        return {
            "num_params": self.num_params,
            "abs_ratio_minus_one_full": (np.abs(self.ratio_full - 1)).tolist(),
            "abs_ratio_minus_one_top": (np.abs(self.ratio_top - 1)).tolist(),
            "tail_median_full": full,
            "tail_median_top": top,
            "seconds": self.timings.get("total", math.nan),
        }


def _top_pair(
    net: nn.Module,
    loss: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    tol: float,
    start: np.ndarray | None,
) -> tuple[float, torch.Tensor]:
    """λ₁, u₁ of the Hessian by ARPACK (``eigsh``, largest algebraic), warm-started from the
    previous window's u₁ (the eigenvector moves little between epochs)."""
    from scipy.sparse.linalg import eigsh

    from curvscope.operators import HessianOperator

    op = HessianOperator(net, loss.op, (x, y), dtype=torch.float64)
    values, vectors = eigsh(op.to_scipy(), k=1, which="LA", tol=tol, v0=start)
    return float(values[0]), torch.as_tensor(vectors[:, 0], dtype=torch.float64)


def run_fdr(config: FDRConfig, *, progress: bool = False, state_dir: Any = None) -> FDRResult:
    """SGD with momentum; per epoch the FDR ratios in the full space and along u₁."""
    from curvscope.training import momentum_buffer

    tick = time.perf_counter()
    data, x, y = load_net_data(config.data, config.data_options, config.seed, config.data_dir)
    if x.ndim != 4:
        raise InputError(
            f"noise-fdr's CNN needs image inputs (N, C, H, W); {config.data!r} gives "
            f"{tuple(x.shape)}; use an image data set (digits, mnist, cifar10)"
        )
    if config.batch_size > len(y):
        raise InputError(
            f"batch_size must be at most the {len(y)} training samples; got "
            f"{config.batch_size}; lower batch_size or raise data_options.per_class"
        )
    classes = int(y.max()) + 1
    net = _build(int(x.shape[1]), config.channels, classes, config.seed)
    loss = make_loss("cross_entropy", classes=classes, label_smoothing=config.label_smoothing)
    params = [p for p in net.parameters()]
    optimizer = torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        dampening=config.dampening,
        weight_decay=config.weight_decay,
    )
    prefactor = config.lr * (1 + config.momentum) / (2 * (1 - config.dampening))
    generator = torch.Generator().manual_seed(config.seed)
    records: dict[str, list[float]] = {k: [] for k in ("lf", "rf", "lt", "rt", "loss")}
    states, values, vectors, bounds, e_loss, e_acc = [], [], [], [0], [], []
    eig_seconds = 0.0
    for epoch in range(config.epochs):
        states.append(state_of(net))
        with torch.no_grad():
            out = net(x)
            e_loss.append(float(loss.train(out, y)))
            e_acc.append(float((out.argmax(1) == y).double().mean()))
        start = time.perf_counter()
        lam, u = _top_pair(net, loss, x, y, config.eig_tol, vectors[-1] if vectors else None)
        eig_seconds += time.perf_counter() - start
        values.append(lam)
        vectors.append(u.numpy())
        for batch in epoch_batches(len(y), config.batch_size, generator):
            theta = flat(p.detach() for p in params)
            optimizer.zero_grad()
            value = loss.train(net(x[batch]), y[batch])
            value.backward()
            g = flat(p.grad for p in params) + config.weight_decay * theta
            optimizer.step()
            b = momentum_buffer(optimizer, net)
            records["lf"].append(float(theta @ g))
            records["rf"].append(float(b @ b))
            records["lt"].append(float((u @ theta) * (u @ g)))
            records["rt"].append(float((u @ b) ** 2))
            records["loss"].append(float(value.detach()))
        bounds.append(len(records["lf"]))
        if progress:
            a, z = bounds[-2], bounds[-1]
            rf = np.mean(records["lf"][a:z]) / (prefactor * np.mean(records["rf"][a:z]))
            rt = np.mean(records["lt"][a:z]) / (prefactor * np.mean(records["rt"][a:z]))
            print(
                f"epoch {epoch}: loss {e_loss[-1]:.4f}, λ1 {lam:.3g}, |O_L/O_R - 1| full "
                f"{abs(rf - 1):.3g}, top-1 {abs(rt - 1):.3g}"
            )
    arrays = {k: np.array(v, dtype=np.float64) for k, v in records.items()}
    ratios: dict[str, list[tuple[float, float]]] = {"full": [], "top": []}
    for a, z in itertools.pairwise(bounds):
        for key, (lk, rk) in (("full", ("lf", "rf")), ("top", ("lt", "rt"))):
            ratios[key].append(
                fdr_ratio(arrays[lk][a:z], arrays[rk][a:z], prefactor, blocks=config.blocks)
            )
    total = time.perf_counter() - tick
    return FDRResult(
        config=config.to_dict(),
        data=data,
        input_shape=tuple(int(s) for s in x.shape[1:]),
        classes=classes,
        num_samples=len(y),
        num_params=num_params(net),
        prefactor=prefactor,
        window_states=tuple(states),
        top_values=np.array(values),
        top_vectors=np.stack(vectors),
        window_bounds=np.array(bounds, dtype=np.int64),
        left_full=arrays["lf"],
        right_full=arrays["rf"],
        left_top=arrays["lt"],
        right_top=arrays["rt"],
        batch_loss=arrays["loss"],
        epoch_loss=np.array(e_loss),
        epoch_accuracy=np.array(e_acc),
        ratio_full=np.array([r for r, _ in ratios["full"]]),
        ratio_full_stderr=np.array([s for _, s in ratios["full"]]),
        ratio_top=np.array([r for r, _ in ratios["top"]]),
        ratio_top_stderr=np.array([s for _, s in ratios["top"]]),
        timings={"total": total, "eigenvectors": eig_seconds, "training": total - eig_seconds},
    )


# ---------------------------------------------------------------------- report content
def sections(r: FDRResult) -> tuple[Section, ...]:
    c, d = r.config, r.data
    setup = Text(
        f"Data {d.name} {d.options} (seed {d.seed}; N = {r.num_samples}, inputs "
        f"{'x'.join(map(str, r.input_shape))}, C = {r.classes}); CNN with channels "
        f"{list(c['channels'])} + {r.classes}, P = {r.num_params:,}; CE"
        + (f" with label smoothing {c['label_smoothing']:g}" if c["label_smoothing"] else "")
        + f"; SGD lr {c['lr']:g}, momentum {c['momentum']:g}, dampening {c['dampening']:g}, "
        f"weight decay {c['weight_decay']:g}, batch {c['batch_size']}, {c['epochs']} epochs "
        f"(windows of one epoch). O_R prefactor η(1 + μ)/(2(1 − ν)) = {r.prefactor:.4g} in both "
        "spaces (spec §3.7 erratum: the paper prints (1 − μ) for FDR'). Run time "
        f"{r.timings['total']:.0f} s (loaded machine; {r.timings['eigenvectors']:.0f} s for the "
        f"top eigenvectors), curvscope {r.version}."
    )
    rows = tuple(
        (
            e,
            float(r.epoch_loss[e]),
            float(r.top_values[e]),
            float(r.ratio_full[e]),
            float(r.ratio_full_stderr[e]),
            abs(float(r.ratio_full[e]) - 1),
            float(r.ratio_top[e]),
            float(r.ratio_top_stderr[e]),
            abs(float(r.ratio_top[e]) - 1),
        )
        for e in range(len(r.ratio_full))
    )
    table = Table(
        (
            "epoch",
            "loss at start",
            "λ₁",
            "O_L/O_R full",
            "± SE",
            "|·−1| full",
            "O_L/O_R top-1",
            "± SE",
            "|·−1| top-1",
        ),
        rows,
        caption="FDR ratios per epoch window (SE: jackknife over blocks of the window)",
        left=0,
    )
    return (
        Section("Setup", (setup,)),
        Section(
            "Fluctuation-dissipation ratio along training",
            (
                FigureRef(
                    "fdr", "|O_L/O_R − 1| along training, full space and top-1 eigenspace (fig. 6)."
                ),
                table,
            ),
        ),
    )


def claims(r: FDRResult) -> tuple[Claim, ...]:
    thr = r.config["threshold"]
    full, top = r.tail()
    if top < thr <= full:
        verdict = "agrees"
    elif top < full:
        verdict = "partly"
    else:
        verdict = "disagrees"
    below = np.flatnonzero(np.abs(r.ratio_top - 1) < thr)
    first = (
        f"first below {thr:g} at epoch {int(below[0])}" if below.size else f"never below {thr:g}"
    )
    return (
        Claim(
            "The top-1 Hessian eigenspace reaches stationarity much faster than the full "
            "parameter space (timescale separation)",
            f"|O_L/O_R − 1| in top-1 < {thr:g} after several epochs while the full space is "
            "still far from it after 50 epochs (App. A.5, fig. 6; small CNN on CIFAR-10)",
            f"median |O_L/O_R − 1| over the last third of {len(r.ratio_full)} epochs: full "
            f"{full:.3g}, top-1 {top:.3g}; top-1 {first}",
            verdict,  # type: ignore[arg-type]
            f"agrees if the top-1 median is below {thr:g} and the full one is not; partly if "
            "the top-1 median is only below the full one; prefactor (1 + μ) in both (spec §3.7)",
        ),
    )


_PAPER = {
    "data": "cifar10",
    "data_options": {"whiten": "standardize"},
    "epochs": 50,
    "batch_size": 100,
    "lr": 0.01,
}

register(
    Study(
        name="noise-fdr",
        paper="002",
        title="Fluctuation-dissipation ratio in the full space and the top-1 eigenspace — "
        "paper 002 App. A.5, fig. 6",
        description="SGD with momentum on a small CNN: |O_L/O_R − 1| per epoch in the full "
        "parameter space and along the top Hessian eigenvector (timescale separation)",
        config_class=FDRConfig,
        run=run_fdr,
        presets={"laptop": {"data_options": {"per_class": 50}}, "paper": dict(_PAPER)},
        sections=sections,
        claims=claims,
        result_class=FDRResult,
    )
)
