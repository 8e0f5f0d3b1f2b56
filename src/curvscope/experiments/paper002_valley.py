"""``noise-valley-paths`` — paper 002 §2.1.1, fig. 1 and App. A.2.2 (spec ``theory.md`` §3.9):
is the SGD path, projected to the valley floor, one connected minimal valley, and how does the
Hessian trace change along it?

Protocol (fixed before any run):

1. An SGD run of a digits MLP with :func:`curvscope.training.train` (constant learning rate,
   momentum, label-smoothed cross-entropy, float64) writing a snapshot after every epoch
   (``save_at``), so every iterate can be replayed bit for bit
   (:func:`curvscope.training.replay`).
2. The threshold (paper's rule): the smallest full-batch training loss over the epoch
   checkpoints from ``start_epoch`` on, unless ``threshold`` is given.
3. Proj(θ) = full-batch GD with the run's lr and momentum until L < threshold
   (:func:`curvscope.training.project_to_threshold`).
4. The projected path between consecutive epoch checkpoints by recursive bisection
   (:func:`curvscope.training.projected_path`): two projected points are line connected when
   L < threshold at K evenly spaced points including the ends (spec §3.9 ambiguity: curvscope
   includes them); a pair of consecutive iterations that is not connected is a break.
5. Along the path: training and test loss at every projected point, the Hessian trace by
   Hutch++ (± standard error) at the projected epoch checkpoints, the exact trace at the
   first and last for small nets.

Variants: ``clean`` (the run from initialisation) and ``random-labels`` (paper App. A.2.2: SGD
on the training set A plus a set B of other images with shuffled labels, then GD on A to the
floor region, then the SGD run on A alone from there; the path starts at a bad minimum).

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("noise-valley-paths").config("laptop").variants
    ('clean', 'random-labels')
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.experiments._paper002 import TracePoint, load_flat, sgd_path, trace_at
from curvscope.experiments.config import StudyConfig
from curvscope.experiments.paper002_smallnet import smoothed_ce_minimum, typed_options
from curvscope.experiments.paper003_width import SmallNetData
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable
from curvscope.training import ProjectedPath

__all__ = ["ValleyPath", "ValleyPathsConfig", "ValleyPathsResult", "run_valley_paths"]

VARIANTS = ("clean", "random-labels")


@dataclass(frozen=True)
class ValleyPathsConfig(StudyConfig):
    """``noise-valley-paths``: data and MLP, the SGD run (``lr``, ``momentum``, ``batch_size``,
    ``epochs``, constant lr), the path (``start_epoch``, ``threshold`` (None: the paper's
    minimal-checkpoint-loss rule), ``num_points`` K), the trace (Hutch++ ``num_matvecs``; exact
    at the ends when P ≤ ``exact_max_params``) and the random-label variant (``shuffled``
    images with permuted labels, ``pretrain_epochs`` of SGD on both sets, GD on A to
    L* + ``pretrain_excess``)."""

    seed: int = 0
    data: str = "digits"
    data_options: dict[str, Any] = field(default_factory=lambda: {"per_class": 20})
    hidden: tuple[int, ...] = (32,)
    label_smoothing: float = 0.1
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 20
    epochs: int = 30
    start_epoch: int = 5
    threshold: float | None = None
    num_points: int = 10
    num_matvecs: int = 60
    exact_max_params: int = 3000
    projection_max_steps: int = 20000
    variants: tuple[str, ...] = VARIANTS
    shuffled: int = 200
    pretrain_epochs: int = 30
    pretrain_excess: float = 0.05


@savable
@dataclass(frozen=True)
class ValleyPath:
    """One variant's run and its projected path.

    Attributes:
        variant: ``clean`` or ``random-labels``.
        train_config: the :class:`~curvscope.training.TrainConfig` of the SGD run (to_dict).
        shuffled_indices, shuffled_labels: the random-label set B (indices in the digits train
            split, their permuted labels; empty for ``clean``).
        steps_per_epoch: iterations per epoch; ``epoch_loss``: full training loss of the raw
            SGD state at each epoch checkpoint (epochs 0..E).
        path: the projected path (steps, projected parameters, losses, breaks).
        test_loss: test loss at each projected point.
        trace_steps, trace: Hutch++ trace (value, stderr, exact) at the projected epoch
            checkpoints.
    """

    variant: str
    train_config: dict[str, Any]
    shuffled_indices: np.ndarray
    shuffled_labels: np.ndarray
    steps_per_epoch: int
    epoch_loss: np.ndarray
    path: ProjectedPath
    test_loss: np.ndarray
    trace_steps: np.ndarray
    trace: tuple[TracePoint, ...]
    seconds: float

    @property
    def trace_values(self) -> np.ndarray:
        return np.array([t.value for t in self.trace])

    @property
    def trace_stderr(self) -> np.ndarray:
        return np.array([t.stderr for t in self.trace])


@savable
@dataclass(frozen=True)
class ValleyPathsResult:
    """Config, the training set's identity and one path per variant.
    ``rebuild_model(variant, row)`` is the network at a projected point of the path."""

    study: str
    config: dict[str, Any]
    data: SmallNetData
    num_samples: int
    num_classes: int
    input_dim: int
    num_params: int
    floor: float
    paths: tuple[ValleyPath, ...]
    timings: dict[str, float]
    version: str = __version__

    def rebuild_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.tensors()

    def path(self, variant: str) -> ValleyPath:
        for p in self.paths:
            if p.variant == variant:
                return p
        raise InputError(
            f"no variant {variant!r} in this result; it has {[p.variant for p in self.paths]}"
        )

    def rebuild_model(self, variant: str, row: int) -> nn.Module:
        """The float64 network at projected point ``row`` of ``variant``'s path."""
        from curvscope.models import ModelSpec

        p = self.path(variant)
        spec = ModelSpec(
            "mlp", (self.input_dim,), self.num_classes, p.train_config["model_options"]
        )
        net = spec.build(seed=0).double()
        return load_flat(net, torch.from_numpy(p.path.parameters[row]))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"num_params": self.num_params, "seconds": self.timings["total"]}
        for v in self.paths:
            out[v.variant] = {
                "threshold": v.path.threshold,
                "points": int(v.path.steps.size),
                "breaks": v.path.num_breaks,
                "trace_first": float(v.trace_values[0]),
                "trace_last": float(v.trace_values[-1]),
            }
        return out


# ---------------------------------------------------------------------- computation
def _check(config: ValleyPathsConfig) -> None:
    bad = [v for v in config.variants if v not in VARIANTS]
    if not config.variants or bad:
        raise InputError(
            f"variants must be a non-empty subset of {VARIANTS}; got {config.variants}"
        )
    if not 0 <= config.start_epoch < config.epochs:
        raise InputError(
            f"start_epoch must be in 0..epochs-1 (= {config.epochs - 1}); got {config.start_epoch}"
        )
    if config.num_points < 2:
        raise InputError(
            f"num_points K must be >= 2 (the two ends at least); got {config.num_points}"
        )
    if config.threshold is not None and not config.threshold > 0:
        raise InputError(
            f"threshold must be a positive loss or None (paper's rule); got {config.threshold}"
        )
    if config.num_matvecs < 6:
        raise InputError(f"num_matvecs must be >= 6 for Hutch++; got {config.num_matvecs}")
    if "random-labels" in config.variants:
        from curvscope.data import load_dataset

        if config.shuffled < 1:
            raise InputError(
                f"shuffled must be >= 1 (the random-label images); got {config.shuffled}"
            )
        clean = load_dataset(
            config.data, "train", seed=config.seed, **typed_options(config.data_options)
        )
        rest = len(load_dataset(config.data, "train", seed=config.seed)) - len(clean)
        if config.shuffled > rest:  # checked before the clean variant trains
            raise InputError(
                f"shuffled must be at most the {rest} {config.data} training images outside "
                f"the clean set; got shuffled = {config.shuffled}; lower shuffled or per_class"
            )


def _train_config(config: ValleyPathsConfig) -> Any:
    from curvscope.training import TrainConfig

    return TrainConfig(
        batch_size=config.batch_size,
        weight_decay=0.0,
        model="mlp",
        data=config.data,
        epochs=config.epochs,
        lr=config.lr,
        final_ratio=1.0,
        momentum=config.momentum,
        augment=False,
        seed=config.seed,
        model_options={"hidden": list(config.hidden)},
        data_options=typed_options(config.data_options),
        loss="cross_entropy",
        label_smoothing=config.label_smoothing,
        dtype="float64",
        save_at=tuple(range(config.epochs + 1)),
    )


def _pretrain_random_labels(config: ValleyPathsConfig, train_config: Any, folder: Path):
    """The start of the random-label variant (paper App. A.2.2) as a checkpoint at epoch 0:
    SGD on A ∪ B (B: other digits with permuted labels), then GD on A to L* + excess."""
    from curvscope.data import load_dataset
    from curvscope.training import model_loss, project_to_threshold, save_checkpoint
    from curvscope.training.loop import _setup

    run = _setup(train_config)
    a_idx = np.asarray(run.train_set.subset_indices)
    full = load_dataset(config.data, "train", seed=config.seed)
    rest = np.setdiff1d(np.arange(len(full)), a_idx)
    gen = np.random.default_rng(config.seed + 7919)
    if config.shuffled > rest.size:
        raise InputError(
            f"shuffled must be at most the {rest.size} {config.data} training images outside "
            f"the clean set; got shuffled = {config.shuffled}; lower shuffled or per_class"
        )
    b_idx = np.sort(gen.choice(rest, size=config.shuffled, replace=False))
    xb, yb = full.get_batch(torch.from_numpy(b_idx))
    b_labels = yb.numpy()[gen.permutation(b_idx.size)]
    xa, ya = run.train_set.get_batch(torch.arange(len(run.train_set)))
    x = torch.cat([xa, xb]).to(torch.float64)
    y = torch.cat([ya, torch.from_numpy(b_labels)])
    net, loss_fn = run.model, run.loss_fn
    n = len(y)

    def loss_of(theta, idx):
        return model_loss(net, loss_fn, x[idx], y[idx])(theta)

    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    steps = config.pretrain_epochs * (n // config.batch_size)
    theta = sgd_path(
        loss_of,
        theta,
        n,
        lr=config.lr,
        momentum=config.momentum,
        batch=config.batch_size,
        steps=steps,
        seed=config.seed,
        every=steps,
    )[-1][1]
    loss_a = model_loss(net, loss_fn, xa.to(torch.float64), ya)
    floor = smoothed_ce_minimum(config.label_smoothing, run.train_set.num_outputs)
    gd = project_to_threshold(
        loss_a,
        theta,
        threshold=floor + config.pretrain_excess,
        lr=config.lr,
        momentum=config.momentum,
        max_steps=config.projection_max_steps,
    )
    load_flat(net, gd.parameters)
    path = save_checkpoint(
        folder / "start.pt",
        model=net,
        spec=run.spec,
        config=train_config,
        optimizer=run.optimizer,
        epoch=0,
        history=[],
        measurements=[],
    )
    return path, b_idx, b_labels


class _Iterates:
    """θ after ``step`` SGD steps: an epoch start is its snapshot; a step inside an epoch comes
    from the deterministic replay of that epoch (replayed once, kept in memory)."""

    def __init__(self, out: Path, steps_per_epoch: int, names: list[str]) -> None:
        self.out, self.spe, self.names = out, steps_per_epoch, names
        self.cache: dict[int, torch.Tensor] = {}
        self.replayed: set[int] = set()

    def __call__(self, step: int) -> torch.Tensor:
        from curvscope.training import replay, snapshot_path
        from curvscope.training.checkpoint import read_checkpoint_dict

        epoch, inside = divmod(step, self.spe)
        if step in self.cache:
            return self.cache[step]
        if not inside:
            state = read_checkpoint_dict(snapshot_path(self.out, epoch))["model_state"]
            flat = torch.cat([state[n].reshape(-1) for n in self.names])
            self.cache[step] = flat.to(torch.float64)
        elif epoch not in self.replayed:
            for it in replay(snapshot_path(self.out, epoch), epochs=1):
                if it.step % self.spe:  # the epoch end stays the next snapshot's
                    self.cache[it.step] = it.parameters.to(torch.float64)
            self.replayed.add(epoch)
        return self.cache[step]


def _one_path(config: ValleyPathsConfig, variant: str, progress: bool) -> tuple[ValleyPath, dict]:
    from curvscope.training import model_loss, project_to_threshold, projected_path, train
    from curvscope.training.loop import _setup

    tick = time.perf_counter()
    train_config = _train_config(config)
    with tempfile.TemporaryDirectory(prefix="curvscope-valley-") as tmp:
        out = Path(tmp)
        b_idx, b_labels = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        resume = None
        if variant == "random-labels":
            resume, b_idx, b_labels = _pretrain_random_labels(config, train_config, out)
        trained = train(train_config, out=out / "run", resume=resume, progress=False)
        run = _setup(train_config)  # data and loss as the run saw them
        net, loss_fn = trained.model.double(), run.loss_fn
        x, y = run.train_set.get_batch(torch.arange(len(run.train_set)))
        xt, yt = run.test_set.get_batch(torch.arange(len(run.test_set)))
        x, xt = x.to(torch.float64), xt.to(torch.float64)
        full = model_loss(net, loss_fn, x, y)
        test = model_loss(net, loss_fn, xt, yt)
        spe = run.steps_per_epoch
        names = [n for n, p in net.named_parameters() if p.requires_grad]
        iterate = _Iterates(out / "run", spe, names)
        with torch.no_grad():
            epoch_loss = np.array([float(full(iterate(e * spe))) for e in range(config.epochs + 1)])
        threshold = (
            float(epoch_loss[config.start_epoch :].min())
            if config.threshold is None
            else config.threshold
        )

        def project(theta: torch.Tensor):
            return project_to_threshold(
                full,
                theta,
                threshold=threshold,
                lr=config.lr,
                momentum=config.momentum,
                max_steps=config.projection_max_steps,
            )

        checkpoints = [e * spe for e in range(config.start_epoch, config.epochs + 1)]
        path = projected_path(
            iterate, checkpoints, project, full, threshold=threshold, num_points=config.num_points
        )
        with torch.no_grad():
            test_loss = np.array([float(test(torch.from_numpy(row))) for row in path.parameters])
        rows = [int(np.flatnonzero(path.steps == c)[0]) for c in checkpoints]
        exact = sum(p.numel() for p in net.parameters()) <= config.exact_max_params
        trace = tuple(
            trace_at(
                net,
                loss_fn,
                x,
                y,
                torch.from_numpy(path.parameters[r]),
                num_matvecs=config.num_matvecs,
                seed=config.seed,
                exact=exact and k in (0, len(rows) - 1),
                verify=k == 0,
            )
            for k, r in enumerate(rows)
        )
    if progress:
        print(f"{variant}: {path.steps.size} projected points, {path.num_breaks} breaks")
    result = ValleyPath(
        variant=variant,
        train_config=train_config.to_dict(),
        shuffled_indices=b_idx,
        shuffled_labels=b_labels,
        steps_per_epoch=spe,
        epoch_loss=epoch_loss,
        path=path,
        test_loss=test_loss,
        trace_steps=np.array(checkpoints),
        trace=trace,
        seconds=time.perf_counter() - tick,
    )
    info = {
        "n": len(y),
        "classes": run.train_set.num_outputs,
        "P": sum(p.numel() for p in net.parameters()),
    }
    return result, info


def run_valley_paths(
    config: ValleyPathsConfig, *, progress: bool = False, state_dir: Any = None
) -> ValleyPathsResult:
    """The projected SGD path of each variant (module doc)."""
    _check(config)
    tick = time.perf_counter()
    paths, info = [], {}
    for variant in config.variants:
        path, info = _one_path(config, variant, progress)
        paths.append(path)
    data = SmallNetData(config.data, typed_options(config.data_options), config.seed, None)
    x, _ = data.tensors()
    return ValleyPathsResult(
        study="noise-valley-paths",
        config=config.to_dict(),
        data=data,
        num_samples=info["n"],
        num_classes=info["classes"],
        input_dim=int(x.shape[1]),
        num_params=info["P"],
        floor=smoothed_ce_minimum(config.label_smoothing, info["classes"]),
        paths=tuple(paths),
        timings={"total": time.perf_counter() - tick},
    )


# ---------------------------------------------------------------------- report content
def _trend(v: ValleyPath) -> tuple[float, float]:
    """Least-squares slope of the trace against the epoch, with its standard error."""
    epochs = v.trace_steps / v.steps_per_epoch
    values = v.trace_values
    if values.size < 3:
        return float("nan"), float("nan")
    (slope, _), cov = np.polyfit(epochs, values, 1, cov=True)
    return float(slope), float(math.sqrt(cov[0, 0]))


def sections(r: ValleyPathsResult) -> tuple[Section, ...]:
    c = r.config
    rows = []
    for v in r.paths:
        slope, se = _trend(v)
        t = v.trace
        rows.append(
            (
                v.variant,
                v.path.threshold,
                int(v.path.steps.size),
                v.path.num_breaks,
                int(v.path.reached.sum()),
                float(v.path.segment_max.max()) if v.path.segment_max.size else None,
                f"{t[0].value:.4g} ± {t[0].stderr:.2g}",
                f"{t[-1].value:.4g} ± {t[-1].stderr:.2g}",
                f"{slope:+.3g} ± {se:.2g}",
                f"{t[0].exact:.4g} → {t[-1].exact:.4g}" if math.isfinite(t[0].exact) else "–",
                f"{v.test_loss.min():.3f}–{v.test_loss.max():.3f}",
            )
        )
    return (
        Section(
            "Setup",
            (
                Text(
                    f"Data {r.data.name} {r.data.options} (N = {r.num_samples}); tanh MLP "
                    f"{tuple(c['hidden'])}, P = {r.num_params:,}; label-smoothed cross-entropy "
                    f"ε = {c['label_smoothing']:g} (floor L* = {r.floor:.4f}). SGD by "
                    f"curvscope.training.train: lr {c['lr']:g} constant, momentum "
                    f"{c['momentum']:g}, batch {c['batch_size']}, {c['epochs']} epochs, float64, a "
                    f"snapshot each epoch; intermediate iterates by deterministic replay. "
                    f"Threshold: {'the smallest training loss over the epoch checkpoints ≥ ' + str(c['start_epoch']) + ' (paper)' if c['threshold'] is None else c['threshold']}; "
                    f"Proj = GD with the run's lr and momentum until below it; K = "
                    f"{c['num_points']} points per segment, ends included (spec §3.9). "
                    f"Random-label variant (App. A.2.2): {c['shuffled']} further digits with "
                    f"permuted labels, {c['pretrain_epochs']} epochs of SGD on both, GD on the "
                    f"training set to L* + {c['pretrain_excess']:g}, then the run. Run time "
                    f"{r.timings['total']:.0f} s, curvscope {r.version}."
                ),
            ),
        ),
        Section(
            "Projected paths",
            (
                Table(
                    (
                        "variant",
                        "threshold",
                        "projected points",
                        "breaks",
                        "projections reaching it",
                        "largest loss on a segment",
                        "trace first (Hutch++)",
                        "trace last",
                        "trace slope per epoch",
                        "exact trace first → last",
                        "test loss range on path",
                    ),
                    tuple(rows),
                    caption="Projected path from epoch "
                    f"{c['start_epoch']} to {c['epochs']} (paper: 2700 / 4020 points, "
                    "CIFAR-10, 150 epochs)",
                ),
                FigureRef("losses", "Training and test loss along the projected path (fig. 1)."),
                FigureRef(
                    "trace", "Hessian trace at the projected epoch checkpoints (fig. 3 / fig. 4)."
                ),
            ),
        ),
    )


def claims(r: ValleyPathsResult) -> tuple[Claim, ...]:
    out = []
    for v in r.paths:
        out.append(
            Claim(
                f"The projected SGD path lies in one connected minimal valley ({v.variant})",
                "fig. 1 / fig. 4: after a few epochs the training loss along the projected "
                "path stays below the threshold (no barriers)",
                f"{v.path.num_breaks} breaks among {v.path.steps.size} projected points",
                "agrees" if v.path.num_breaks == 0 else "disagrees",
                "agrees only with no break (two consecutive iterates whose projections are not "
                "line connected at K points); digits MLP instead of CIFAR-10 nets",
            )
        )
        slope, se = _trend(v)
        if not math.isfinite(slope):
            verdict = "not comparable"
        elif slope + 2 * se < 0:
            verdict = "agrees"
        elif slope < 0:
            verdict = "partly"
        else:
            verdict = "disagrees"
        out.append(
            Claim(
                f"The Hessian trace decreases along the projected path ({v.variant})",
                "fig. 3 / fig. 4: decreasing on average (Hutchinson, mean ± std over 10 inits)",
                f"slope {slope:+.3g} ± {se:.2g} per epoch; {v.trace[0].value:.4g} → "
                f"{v.trace[-1].value:.4g}",
                verdict,
                "least-squares slope of the Hutch++ trace against the epoch at the projected "
                "checkpoints (one run; same probes at each point); agrees if below 0 by 2 SE, "
                "partly if below 0",
            )
        )
    return tuple(out)


register(
    Study(
        name="noise-valley-paths",
        paper="002",
        title="Projected SGD paths: line connectedness and the trace along the valley — paper 002 fig. 1",
        description="GD projection of SGD iterates to a loss threshold, recursive bisection "
        "between epoch checkpoints by replay, breaks, trace along the path; clean and random labels",
        config_class=ValleyPathsConfig,
        run=run_valley_paths,
        presets={
            "laptop": {},
            "paper": {
                "data_options": {"per_class": 100},
                "hidden": (64,),
                "epochs": 150,
                "start_epoch": 5,
                "batch_size": 50,
                "shuffled": 400,
                "num_matvecs": 150,
                "exact_max_params": 0,
            },
        },
        sections=sections,
        claims=claims,
        result_class=ValleyPathsResult,
    )
)
