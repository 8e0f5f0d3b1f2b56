"""The paper-003 study ``small-nets-interpolation``: the loss on the straight line between two
training runs, at every recorded step (Sagun, Bottou & LeCun 2017, fig. 10; spec ``theory.md``
§4.2).

On the blobs data of ``small-nets-blobs`` with one 2-h-h-2 ReLU net (default h = 6, P = 74):

- *one start*: from one :math:`w_0`, full-batch GD and minibatch SGD (seeded shuffles, the same
  step) run in lockstep;
- *two starts*: two independent :math:`w_0` (near-orthogonal), both SGD with different shuffles.

Every ``record_every`` steps t the training loss :math:`L((1-s)\\,w_a(t) + s\\,w_b(t))` is
evaluated on a grid of s (``num_points`` in [0, 1], plus ``margin`` beyond each end). The barrier
is :math:`\\max_{s \\in [0,1]} L(s) - \\max(L(0), L(1))`. The result keeps both end points'
weights at every recorded step, so any profile is recomputed by :meth:`InterpolationPair.rebuild`.

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("small-nets-interpolation").config("laptop").width
    6
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.experiments.config import StudyConfig, config_to_dict
from curvscope.experiments.paper003_blobs import _data, blobs_net, blobs_num_params
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "InterpolationConfig",
    "InterpolationPair",
    "InterpolationResult",
    "barriers",
    "interpolation_grid",
    "run_interpolation_study",
]


@dataclass(frozen=True)
class InterpolationConfig(StudyConfig):
    """Everything ``small-nets-interpolation`` computes from (defaults: the laptop scale).

    ``init_seeds`` are the seeds of the two starts (the one-start pair uses the first),
    ``shuffle_seeds`` those of the SGD minibatch orders (the one-start SGD uses the first).
    ``flat_tol`` is the verdict threshold on the relative barrier (barrier / endpoint loss).
    """

    seed: int = 0
    width: int = 6
    num_samples: int = 200
    std: float = 0.5
    init_scale: float = 0.5
    lr: float = 0.05
    batch_size: int = 10
    steps: int = 2000
    record_every: int = 50
    num_points: int = 21
    margin: float = 0.2
    init_seeds: tuple[int, int] = (0, 1)
    shuffle_seeds: tuple[int, int] = (0, 1)
    flat_tol: float = 0.05

    def __post_init__(self) -> None:
        if self.width < 1 or self.steps < 1 or self.record_every < 1:
            raise InputError("width, steps and record_every must be >= 1")
        if self.num_points < 2:
            raise InputError(f"num_points must be >= 2 (s = 0 and 1), got {self.num_points}")
        if not 1 <= self.batch_size <= self.num_samples:
            raise InputError(f"batch_size must be in [1, num_samples], got {self.batch_size}")
        if self.margin < 0:
            raise InputError(f"margin must be >= 0, got {self.margin}")
        if len(self.init_seeds) != 2 or self.init_seeds[0] == self.init_seeds[1]:
            raise InputError(f"init_seeds must be two different seeds, got {self.init_seeds}")
        if len(self.shuffle_seeds) != 2 or self.shuffle_seeds[0] == self.shuffle_seeds[1]:
            raise InputError(f"shuffle_seeds must be two different seeds, got {self.shuffle_seeds}")


def interpolation_grid(num_points: int, margin: float) -> tuple[np.ndarray, int, int]:
    """``(s, i0, i1)``: the grid with step h = 1/(num_points - 1) over [-margin, 1 + margin]
    (margin rounded to whole steps); ``s[i0] == 0`` and ``s[i1] == 1`` exactly.

    >>> s, i0, i1 = interpolation_grid(5, 0.25)
    >>> s.tolist(), i0, i1
    ([-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25], 1, 5)
    """
    n = num_points - 1
    m = round(margin * n)
    s = np.arange(-m, n + m + 1, dtype=np.float64) / n
    return s, m, m + n


def barriers(losses: np.ndarray, i0: int, i1: int) -> np.ndarray:
    """Per row: :math:`\\max_{s\\in[0,1]} L(s) - \\max(L(0), L(1))` (>= 0; 0 when the
    segment never rises above its higher end)."""
    inner = losses[:, i0 : i1 + 1]
    return inner.max(axis=1) - np.maximum(losses[:, i0], losses[:, i1])


@savable
@dataclass(frozen=True)
class InterpolationPair:
    """Two runs trained in lockstep and the loss on the segment between them.

    Attributes:
        name: ``"one start"`` or ``"two starts"``.
        methods: ``("gd", "sgd")`` or ``("sgd", "sgd")``.
        init_seeds: the seeds of :func:`blobs_net` for a and b (equal for one start).
        shuffle_seeds: the minibatch-order seed of each SGD run (``None`` for GD).
        steps: the recorded steps t, shape (R,).
        s: the interpolation grid, shape (S,).
        losses: :math:`L((1-s) w_a(t) + s w_b(t))`, shape (R, S).
        weights_a, weights_b: the flat float64 parameters at each recorded step, shape (R, P)
            (``nn.utils.parameters_to_vector`` order).
    """

    name: str
    methods: tuple[str, str]
    init_seeds: tuple[int, int]
    shuffle_seeds: tuple[int | None, int | None]
    steps: np.ndarray = field(repr=False)
    s: np.ndarray = field(repr=False)
    losses: np.ndarray = field(repr=False)
    weights_a: np.ndarray = field(repr=False)
    weights_b: np.ndarray = field(repr=False)

    @property
    def distance(self) -> np.ndarray:
        """:math:`\\|w_a(t) - w_b(t)\\|` per recorded step."""
        return np.linalg.norm(self.weights_a - self.weights_b, axis=1)

    def rebuild(self, index: int, s: float, width: int) -> nn.Sequential:
        """The network at :math:`(1-s)\\,w_a + s\\,w_b` of recorded step ``steps[index]``."""
        net = blobs_net(width, seed=0)
        w = (1 - s) * self.weights_a[index] + s * self.weights_b[index]
        nn.utils.vector_to_parameters(torch.from_numpy(np.array(w)), net.parameters())
        return net


@savable
@dataclass(frozen=True)
class InterpolationResult:
    """The outcome of :func:`run_interpolation_study`; the report and figures read only this.

    Attributes:
        config: the :class:`InterpolationConfig` as a dict.
        data: ``{"name", "options", "seed"}`` of :func:`curvscope.data.load_dataset`.
        radius: the init radius R = init_scale·√P.
        pairs: the one-start pair, then the two-start pair.
        timings: seconds per part.
        version: curvscope's version.
    """

    config: dict[str, Any]
    data: dict[str, Any]
    radius: float
    pairs: tuple[InterpolationPair, ...]
    timings: dict[str, float]
    version: str = __version__

    def grid_ends(self) -> tuple[int, int]:
        """Indices of s = 0 and s = 1 in every pair's grid."""
        _, i0, i1 = interpolation_grid(self.config["num_points"], self.config["margin"])
        return i0, i1

    def rebuild_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)``: float64 (N, 2) points and int64 (N,) classes."""
        from curvscope.data import load_dataset

        d = self.data
        ds = load_dataset(d["name"], "train", seed=d["seed"], **d["options"])
        return ds.inputs.to(torch.float64), ds.targets

    def pair(self, name: str) -> InterpolationPair:
        """The pair called ``name``."""
        return next(p for p in self.pairs if p.name == name)

    def relative_barriers(self, pair: InterpolationPair) -> np.ndarray:
        """Barrier / max(L(0), L(1)) per recorded step."""
        i0, i1 = self.grid_ends()
        ends = np.maximum(pair.losses[:, i0], pair.losses[:, i1])
        return barriers(pair.losses, i0, i1) / ends

    def summary(self) -> dict[str, Any]:
        """Headline numbers (at the last recorded step)."""
        i0, i1 = self.grid_ends()
        out: dict[str, Any] = {}
        for p in self.pairs:
            b = barriers(p.losses, i0, i1)
            out[p.name] = {
                "step": int(p.steps[-1]),
                "barrier": float(b[-1]),
                "relative_barrier": float(self.relative_barriers(p)[-1]),
                "max_relative_barrier": float(self.relative_barriers(p)[1:].max(initial=0.0)),
                "endpoint_loss": [float(p.losses[-1, i0]), float(p.losses[-1, i1])],
                "distance": float(p.distance[-1]),
            }
        return out


# ---------------------------------------------------------------------- computation
def _sgd_orders(seed: int, n: int, batch: int, steps: int) -> torch.Tensor:
    """The minibatch indices of each step: a fresh permutation per epoch (drop last)."""
    g = torch.Generator().manual_seed(seed)
    per_epoch = n // batch
    epochs = -(-steps // per_epoch)
    perms = [torch.randperm(n, generator=g)[: per_epoch * batch] for _ in range(epochs)]
    return torch.cat(perms).view(-1, batch)[:steps]


def _step(net: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
    loss = nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    with torch.no_grad():
        for p, g in zip(net.parameters(), grads):
            p.sub_(lr * g)


def _profile(wa: torch.Tensor, wb: torch.Tensor, s: np.ndarray, net: nn.Module, x, y) -> np.ndarray:
    out = np.empty(len(s))
    with torch.no_grad():
        for j, sj in enumerate(s):
            nn.utils.vector_to_parameters((1 - sj) * wa + sj * wb, net.parameters())
            out[j] = float(nn.functional.cross_entropy(net(x), y))
    return out


def _train_pair(
    config: InterpolationConfig,
    name: str,
    methods: tuple[str, str],
    init_seeds: tuple[int, int],
    shuffle_seeds: tuple[int | None, int | None],
    x: torch.Tensor,
    y: torch.Tensor,
    radius: float,
) -> InterpolationPair:
    nets = [blobs_net(config.width, seed=sd, radius=radius) for sd in init_seeds]
    orders = [
        None if sh is None else _sgd_orders(sh, len(y), config.batch_size, config.steps)
        for sh in shuffle_seeds
    ]
    probe = blobs_net(config.width, seed=0)
    s, _, _ = interpolation_grid(config.num_points, config.margin)
    steps, losses, wa, wb = [], [], [], []

    def record(t: int) -> None:
        a, b = (nn.utils.parameters_to_vector(n.parameters()).detach().clone() for n in nets)
        steps.append(t)
        wa.append(a.numpy())
        wb.append(b.numpy())
        losses.append(_profile(a, b, s, probe, x, y))

    record(0)
    for t in range(config.steps):
        for net, order in zip(nets, orders):
            if order is None:
                _step(net, x, y, config.lr)
            else:
                _step(net, x[order[t]], y[order[t]], config.lr)
        if (t + 1) % config.record_every == 0 or t + 1 == config.steps:
            record(t + 1)
    return InterpolationPair(
        name, methods, init_seeds, shuffle_seeds, np.array(steps), s,
        np.array(losses), np.array(wa), np.array(wb),
    )  # fmt: skip


def run_interpolation_study(
    config: InterpolationConfig,
    *,
    progress: bool = False,
    state_dir: str | Path | None = None,
) -> InterpolationResult:
    """Train both pairs in lockstep and record the segment profiles (seconds)."""
    from curvscope.data import load_dataset

    data = _data(config, config.std)
    ds = load_dataset(data["name"], "train", seed=data["seed"], **data["options"])
    x, y = ds.inputs.to(torch.float64), ds.targets
    radius = config.init_scale * blobs_num_params(config.width) ** 0.5
    a, b = config.init_seeds
    sa, sb = config.shuffle_seeds
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    one = _train_pair(config, "one start", ("gd", "sgd"), (a, a), (None, sa), x, y, radius)
    timings["one start"] = time.perf_counter() - tick
    tick = time.perf_counter()
    two = _train_pair(config, "two starts", ("sgd", "sgd"), (a, b), (sa, sb), x, y, radius)
    timings["two starts"] = time.perf_counter() - tick
    return InterpolationResult(config_to_dict(config), data, radius, (one, two), timings)


# ---------------------------------------------------------------------- report content
def _rows(r: InterpolationResult, pair: InterpolationPair) -> tuple[tuple[Any, ...], ...]:
    i0, i1 = r.grid_ends()
    b = barriers(pair.losses, i0, i1)
    rel = r.relative_barriers(pair)
    picks = sorted({0, len(pair.steps) // 4, len(pair.steps) // 2, len(pair.steps) - 1})
    return tuple(
        (
            int(pair.steps[k]),
            float(pair.distance[k]),
            float(pair.losses[k, i0]),
            float(pair.losses[k, i1]),
            float(pair.losses[k, i0 : i1 + 1].max()),
            float(b[k]),
            float(rel[k]),
        )
        for k in picks
    )


def sections(r: InterpolationResult) -> tuple[Section, ...]:
    """The report of the study, as data."""
    c = r.config
    P = blobs_num_params(c["width"])
    w0 = [p.weights_a[0] for p in r.pairs if p.name == "two starts"]
    w1 = [p.weights_b[0] for p in r.pairs if p.name == "two starts"]
    cosine = (
        f" (cosine of the two starts {float(w0[0] @ w1[0] / np.linalg.norm(w0[0]) / np.linalg.norm(w1[0])):.3f})"
        if w0
        else ""
    )
    setup = Text(
        f"Two Gaussian blobs, std {c['std']}, N = {c['num_samples']} (seed {c['seed']}); 2-h-h-2 "
        f"ReLU net, h = {c['width']} (P = {P}), float64, w0 = R·u with R = {r.radius:.3g}"
        f"{cosine}. Cross-entropy; step {c['lr']} for GD (full batch) and SGD (batch "
        f"{c['batch_size']}, a seeded permutation per epoch), {c['steps']} steps in lockstep; "
        f"every {c['record_every']} steps the training loss at {c['num_points']} points of "
        f"[0, 1] (plus {c['margin']:g} beyond each end). Barrier = max over s in [0, 1] of L "
        f"minus max(L(0), L(1)); relative barrier = barrier / max(L(0), L(1))."
    )
    header = ("step", "‖w_a − w_b‖", "L(0)", "L(1)", "max L on [0,1]", "barrier", "relative")
    blocks: list[Any] = [setup]
    for p in r.pairs:
        blocks.append(
            Table(
                header,
                _rows(r, p),
                left=0,
                caption=f"{p.name}: {p.methods[0].upper()} (init {p.init_seeds[0]}) vs "
                f"{p.methods[1].upper()} (init {p.init_seeds[1]})",
            )
        )
    blocks += [
        FigureRef("profiles", "Loss against s for several steps (paper fig. 10)."),
        FigureRef("heatmaps", "log10 loss over (step, s); s = 0 and 1 are the trained runs."),
        FigureRef("barriers", "Barrier and end-point distance against the step."),
    ]
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    return (
        Section("Line interpolation between training runs", tuple(blocks)),
        Section("Timings", (Text(f"{timing}. curvscope {r.version}.", note=True),)),
    )


def claims(r: InterpolationResult) -> tuple[Claim, ...]:
    """The paper's fig.-10 statements beside this run's numbers."""
    tol = r.config["flat_tol"]
    out = []
    names = {p.name for p in r.pairs}
    if "one start" in names:
        p = r.pair("one start")
        rel = r.relative_barriers(p)[1:] if len(p.steps) > 1 else r.relative_barriers(p)
        worst, last = float(rel.max()), float(rel[-1])
        out.append(
            Claim(
                "From one start, the segment between the GD and the SGD iterate is flat at "
                "every step, even as they diverge",
                "'The resulting profile is completely flat even when the points keep diverging' "
                "(fig. 10 left; no number)",
                f"relative barrier max over t ≥ {int(p.steps[min(1, len(p.steps) - 1)])}: "
                f"{worst:.3g}, at step {int(p.steps[-1])}: {last:.3g}; distance "
                f"{float(p.distance[-1]):.3g}",
                "agrees" if worst <= tol else ("partly" if last <= tol else "disagrees"),
                f"verdict: relative barrier (max over s∈[0,1] of L − max(L(0), L(1))) / "
                f"max(L(0), L(1)) ≤ {tol:g} at every recorded step after 0 → agrees; only at "
                f"the last step → partly",
            )
        )
    if "two starts" in names:
        p = r.pair("two starts")
        rel = r.relative_barriers(p)
        last = float(rel[-1])
        i0, i1 = r.grid_ends()
        peak = p.losses[:, i0 : i1 + 1].max(axis=1)
        one = float(r.relative_barriers(r.pair("one start"))[-1]) if "one start" in names else 0.0
        out.append(
            Claim(
                "From two independent starts the segment is not flat",
                "'not as flat as the previous one' (fig. 10 right; no number)",
                f"relative barrier at step {int(p.steps[-1])}: {last:.3g} (one start: {one:.3g})",
                "agrees"
                if last > tol and last > one
                else ("partly" if last > one else "disagrees"),
                f"verdict: relative barrier at the last step > {tol:g} and above the one-start "
                f"pair's → agrees; only above the one-start pair's → partly",
            )
        )
        out.append(
            Claim(
                "From two independent starts the interpolated loss still decreases with training",
                "'surprisingly, the line interpolation also decreases' (fig. 10 right)",
                f"max over s∈[0,1] of L: {float(peak[0]):.3g} at step 0, "
                f"{float(peak[-1]):.3g} at step {int(p.steps[-1])}",
                "agrees"
                if peak[-1] < peak[0] and peak[-1] <= np.max(p.losses[0, [i0, i1]])
                else ("partly" if peak[-1] < peak[0] else "disagrees"),
                "verdict: the segment's maximum at the last step below that at step 0 and below "
                "the higher initial end-point loss → agrees; only below that at step 0 → partly",
            )
        )
    return tuple(out)


register(
    Study(
        name="small-nets-interpolation",
        paper="003",
        title="Line interpolation between GD and SGD runs of a small net — paper 003 fig. 10",
        description="blobs, 2-6-6-2 ReLU net (P = 74): the loss on the segment between GD and "
        "SGD from one start, and between SGD runs from two independent starts, every k steps",
        config_class=InterpolationConfig,
        run=run_interpolation_study,
        presets={
            "laptop": {},
            "paper": {"num_samples": 1000, "steps": 20000, "record_every": 200, "num_points": 41},
        },
        sections=sections,
        claims=claims,
        result_class=InterpolationResult,
    )
)
