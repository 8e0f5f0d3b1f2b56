"""The paper-003 study ``small-nets-init-fluctuation``: the top Hessian eigenvalue after training
over many initialisations of one blob net (Sagun, Bottou & LeCun 2017, fig. 8; spec
``theory.md`` §4.2).

The 2-h-h-2 ReLU net of ``small-nets-blobs`` (default h = 6, P = 74), same blobs, same init
convention :math:`w_0 = R u` with u uniform on the unit sphere of R^P (a normalised Gaussian
from the member's seed) and :math:`R = \\text{init_scale}\\sqrt{P}`; ``members`` nets are
trained at once by :func:`~curvscope.training.train_ensemble` (full-batch GD of step ``lr``,
each member until its own :math:`\\|\\nabla L\\| \\le` ``grad_tol`` or ``max_steps`` steps;
a member that stops is frozen and leaves the batch; identical to single
:func:`~curvscope.training.gradient_descent` runs with the same seeds); then the exact float64 Hessian
of every trained member (batched forward-over-reverse, chunks of ``chunk`` members) and its top
eigenvalue (numpy ``eigvalsh``). Output: the λ_max histogram, mean, std, quantiles and the
coefficient of variation, and the distribution of the reached gradient norms and steps (the
λ_max statistics also over the members that reached ``grad_tol`` alone).

The result keeps every member's seed and trained weights and the data's identity, so
:meth:`FluctuationResult.rebuild_member` and :meth:`FluctuationResult.rebuild_data` recompute
any member's spectrum.

Example:
    >>> from curvscope.experiments import get_study
    >>> get_study("small-nets-init-fluctuation").config("paper").members
    5000
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
from curvscope.experiments.paper003_blobs import (
    BlobsRun,
    BlobsStudyConfig,
    _data,
    blobs_net,
    blobs_num_params,
)
from curvscope.experiments.registry import Claim, FigureRef, Section, Study, Table, Text, register
from curvscope.persistence import savable

__all__ = [
    "FluctuationResult",
    "FluctuationStudyConfig",
    "coefficient_of_variation",
    "run_fluctuation_study",
]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class FluctuationStudyConfig(StudyConfig):
    """Everything ``small-nets-init-fluctuation`` computes from (defaults: the laptop scale).

    ``seed`` seeds the blobs; member r starts from seed ``first_seed + r``. ``init_scale``
    gives :math:`R = \\text{init_scale}\\sqrt{P}` as in ``small-nets-blobs``. The claim's
    verdict: CV = std/mean of λ_max ≤ ``cv_agree`` → agrees, ≤ 2·``cv_agree`` → partly.
    """

    seed: int = 0
    width: int = 6
    num_samples: int = 200
    std: float = 0.5
    init_scale: float = 0.5
    lr: float = 0.05
    grad_tol: float = 1e-4
    max_steps: int = 3000
    members: int = 1000
    first_seed: int = 0
    chunk: int = 100
    bins: int = 50
    cv_agree: float = 0.1

    def __post_init__(self) -> None:
        if self.width < 1 or self.members < 1 or self.max_steps < 1 or self.chunk < 1:
            raise InputError(
                f"width, members, max_steps and chunk must be >= 1, got width={self.width}, "
                f"members={self.members}, max_steps={self.max_steps}, chunk={self.chunk}"
            )
        if not (self.grad_tol >= 0):
            raise InputError(f"grad_tol must be >= 0, got {self.grad_tol}")
        if not (self.cv_agree > 0):
            raise InputError(f"cv_agree must be > 0, got {self.cv_agree}")


def _stats(values: np.ndarray) -> dict[str, float] | None:
    """mean, std and CV of λ_max over a subset (``None`` under two members)."""
    if len(values) < 2:
        return None
    return {
        "members": len(values),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "cv": coefficient_of_variation(values),
    }


def coefficient_of_variation(values: np.ndarray) -> float:
    """std / mean (population std) of the values."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std() / values.mean())


@savable
@dataclass(frozen=True)
class FluctuationResult:
    """The outcome of :func:`run_fluctuation_study`; the report and the figure read only this.

    Attributes:
        config: the :class:`FluctuationStudyConfig` as a dict.
        width, num_params, radius: the architecture 2-h-h-2, P and the init radius R.
        seeds: the members' seeds (member r starts at ``blobs_net(width, seed=seeds[r],
            radius=radius)``).
        lambda_max: ``(members,)`` the exact top Hessian eigenvalue of each trained member.
        loss_value, grad_norm: ``(members,)`` the loss and ‖∇L‖ after training.
        weights: ``(members, P)`` trained weights, flattened in ``named_parameters`` order.
        data: ``{"name", "options", "seed"}`` of :func:`curvscope.data.load_dataset`.
        timings: seconds of training and of the spectra.
        training_path: the ensemble's path (``"stacked"`` or ``"vmap"``).
        steps: ``(members,)`` GD steps each member took (``None`` in results of older versions,
            which ran a fixed number of steps).
        version: curvscope's version.
    """

    config: dict[str, Any]
    width: int
    num_params: int
    radius: float
    seeds: tuple[int, ...]
    lambda_max: np.ndarray = field(repr=False)
    loss_value: np.ndarray = field(repr=False)
    grad_norm: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    data: dict[str, Any]
    timings: dict[str, float]
    training_path: str = "stacked"
    steps: np.ndarray | None = field(default=None, repr=False)
    version: str = __version__

    def converged(self) -> np.ndarray:
        """``(members,)`` bool: the members that reached ‖∇L‖ ≤ ``grad_tol``."""
        tol = self.config.get("grad_tol")
        if tol is None:
            return np.zeros(len(self.seeds), dtype=bool)
        return np.asarray(self.grad_norm) <= tol * (1 + 1e-9)

    def rebuild_member(self, r: int) -> nn.Sequential:
        """Member ``r`` at its trained weights (float64)."""
        net = blobs_net(self.width, seed=0)
        flat = torch.from_numpy(np.array(self.weights[r], dtype=np.float64))
        with torch.no_grad():
            offset = 0
            for p in net.parameters():
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
        return net

    def rebuild_initial(self, r: int) -> nn.Sequential:
        """Member ``r`` at its initialisation :math:`w_0 = R u` (from its seed and R)."""
        return blobs_net(self.width, seed=self.seeds[r], radius=self.radius)

    def rebuild_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)``: float64 (N, 2) points and int64 (N,) classes."""
        stub = BlobsRun(self.width, "nll", 0.0, 0, 0.0, 0, 0.0, 0.0, "", np.zeros(0), {}, self.data)
        return stub.rebuild_data()

    def summary(self) -> dict[str, Any]:
        """Headline numbers."""
        lam = np.asarray(self.lambda_max)
        return {
            "members": len(self.seeds),
            "num_params": self.num_params,
            "lambda_max_mean": float(lam.mean()),
            "lambda_max_std": float(lam.std()),
            "lambda_max_cv": coefficient_of_variation(lam),
            "lambda_max_quantiles": {
                f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(lam, QUANTILES))
            },
            "grad_norm_median": float(np.median(self.grad_norm)),
            "grad_norm_quantiles": {
                f"{q:g}": float(v)
                for q, v in zip(QUANTILES, np.quantile(self.grad_norm, QUANTILES))
            },
            "converged": int(self.converged().sum()),
            "steps_quantiles": {}
            if self.steps is None
            else {
                f"{q:g}": float(v) for q, v in zip(QUANTILES, np.quantile(self.steps, QUANTILES))
            },
            "converged_lambda_max": _stats(lam[self.converged()]),
            "timings": dict(self.timings),
        }


# ---------------------------------------------------------------------- computation
def _flat_loss(width: int) -> Any:
    """``loss(flat, x, y)`` of the 2-h-h-2 net with weights ``flat`` (NLL)."""
    from torch.func import functional_call

    base = blobs_net(width, seed=0)
    names = [n for n, _ in base.named_parameters()]
    shapes = [p.shape for _, p in base.named_parameters()]
    sizes = [p.numel() for _, p in base.named_parameters()]
    base = base.to("meta")

    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        params = {n: c.view(s) for n, c, s in zip(names, parts, shapes)}
        return nn.functional.cross_entropy(functional_call(base, params, (x,)), y)

    return loss


def _spectra(
    width: int, weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """λ_max, loss and ‖∇L‖ of every member: exact Hessians by forward-over-reverse, batched."""
    from torch.func import grad, jacfwd, jacrev, vmap

    loss = _flat_loss(width)
    hess = vmap(jacfwd(jacrev(loss)), in_dims=(0, None, None))
    value = vmap(loss, in_dims=(0, None, None))
    gradient = vmap(grad(loss), in_dims=(0, None, None))
    tops, values, norms = [], [], []
    for i in range(0, weights.shape[0], chunk):
        w = weights[i : i + chunk]
        h = hess(w, x, y).numpy()
        tops.append(np.linalg.eigvalsh((h + h.transpose(0, 2, 1)) / 2)[:, -1])
        values.append(value(w, x, y).numpy())
        norms.append(gradient(w, x, y).norm(dim=1).numpy())
    return np.concatenate(tops), np.concatenate(values), np.concatenate(norms)


def _train(config: FluctuationStudyConfig) -> tuple[Any, float, dict[str, Any]]:
    from curvscope.training import train_ensemble

    P = blobs_num_params(config.width)
    radius = config.init_scale * P**0.5
    data = _data(BlobsStudyConfig(seed=config.seed, num_samples=config.num_samples), config.std)
    x, y = _rebuild(config.width, data)
    seeds = list(range(config.first_seed, config.first_seed + config.members))
    ensemble = train_ensemble(
        lambda s: blobs_net(config.width, seed=s, radius=radius),
        seeds,
        x,
        y,
        loss_fn=nn.CrossEntropyLoss(),
        lr=config.lr,
        steps=config.max_steps,
        grad_tol=config.grad_tol,
        record_every=config.max_steps,
    )
    return ensemble, radius, data


def _rebuild(width: int, data: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    stub = BlobsRun(width, "nll", 0.0, 0, 0.0, 0, 0.0, 0.0, "", np.zeros(0), {}, data)
    return stub.rebuild_data()


def run_fluctuation_study(
    config: FluctuationStudyConfig,
    *,
    progress: bool = False,
    state_dir: str | Path | None = None,
) -> FluctuationResult:
    """Train all members at once, then each one's exact top eigenvalue (nothing to resume)."""
    tick = time.perf_counter()
    ensemble, radius, data = _train(config)
    train_s = time.perf_counter() - tick
    tick = time.perf_counter()
    x, y = _rebuild(config.width, data)
    names = [n for n, _ in blobs_net(config.width, seed=0).named_parameters()]
    R = len(ensemble.seeds)
    weights = torch.cat([ensemble.parameters[n].reshape(R, -1) for n in names], dim=1).detach()
    lam, values, norms = _spectra(config.width, weights, x, y, config.chunk)
    spectra_s = time.perf_counter() - tick
    return FluctuationResult(
        config=config_to_dict(config),
        width=config.width,
        num_params=blobs_num_params(config.width),
        radius=radius,
        seeds=tuple(ensemble.seeds),
        lambda_max=lam,
        loss_value=values,
        grad_norm=norms,
        weights=weights.numpy().copy(),
        data=data,
        timings={"training": train_s, "spectra": spectra_s},
        training_path=ensemble.path,
        steps=np.asarray(ensemble.member_steps),
    )


# ---------------------------------------------------------------------- report content
def sections(r: FluctuationResult) -> tuple[Section, ...]:
    """The report of the study, as data."""
    # results of older versions ran a fixed number of steps (config "steps", no grad_tol)
    c = {"grad_tol": 0.0, "max_steps": r.config.get("steps"), **r.config}
    s = r.summary()
    q = s["lambda_max_quantiles"]
    setup = Text(
        f"Two Gaussian blobs at (1, 1) and (−1, −1), std {c['std']}, N = {c['num_samples']} "
        f"(seed {c['seed']}); 2-{r.width}-{r.width}-2 ReLU net with biases (P = "
        f"{r.num_params}), float64, NLL; {s['members']} initialisations w0 = R·u, u uniform on "
        f"the unit sphere (seeds {r.seeds[0]}..{r.seeds[-1]}), R = {c['init_scale']}·√P = "
        f"{r.radius:.3g}; all trained at once (train_ensemble, {r.training_path} path) by "
        f"full-batch GD, step {c['lr']}, each member until ‖∇L‖ ≤ {c['grad_tol']:g} or "
        f"{c['max_steps']} steps (a member that stops is frozen). Exact float64 Hessian of "
        f"each trained member (forward-over-reverse), top eigenvalue by numpy eigvalsh."
    )
    gq = s["grad_norm_quantiles"]
    sq = s["steps_quantiles"]
    sub = s["converged_lambda_max"]
    reached = Table(
        ("reached ‖∇L‖ ≤ tol", "‖∇L‖ q05", "median", "q95", "max", "steps q05", "median", "q95"),
        (
            (
                f"{s['converged']} of {s['members']}",
                gq["0.05"],
                gq["0.5"],
                gq["0.95"],
                float(np.max(r.grad_norm)),
                sq.get("0.05", "—"),
                sq.get("0.5", "—"),
                sq.get("0.95", "—"),
            ),
        ),
        left=0,
        caption=f"Convergence of the members (target ‖∇L‖ ≤ {c['grad_tol']:g}, cap "
        f"{c['max_steps']} steps)",
    )
    converged_text = Text(
        (
            f"Over the {sub['members']} members that reached the target alone: mean λ_max "
            f"{sub['mean']:.4g}, std {sub['std']:.3g}, CV {sub['cv']:.3f}."
            if sub
            else "Fewer than two members reached the target, so λ_max is not summarised over "
            "converged members alone."
        )
        + " Members at the cap are not at a critical point; their λ_max is that of the "
        "weights after the cap. With NLL the blobs are (nearly) separable: the loss has no "
        "finite minimiser and ‖∇L‖ decays only slowly under a constant step.",
        note=True,
    )
    table = Table(
        ("members", "mean λ_max", "std", "CV", "q05", "q25", "median", "q75", "q95", "median ‖∇L‖"),
        (
            (
                s["members"],
                s["lambda_max_mean"],
                s["lambda_max_std"],
                s["lambda_max_cv"],
                q["0.05"],
                q["0.25"],
                q["0.5"],
                q["0.75"],
                q["0.95"],
                s["grad_norm_median"],
            ),
        ),
        left=0,
        caption="λ_max after training over initialisations (paper fig. 8)",
    )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    return (
        Section(
            "Top eigenvalue over initialisations",
            (
                setup,
                table,
                reached,
                converged_text,
                FigureRef("histogram", "Histogram of λ_max over the members."),
            ),
        ),
        Section("Timings", (Text(f"{timing}. curvscope {r.version}.", note=True),)),
    )


def claims(r: FluctuationResult) -> tuple[Claim, ...]:
    """The paper's fig. 8 statement beside this run's numbers."""
    c = r.config
    lam = np.asarray(r.lambda_max)
    cv = coefficient_of_variation(lam)
    tol = c["cv_agree"]
    verdict = "agrees" if cv <= tol else ("partly" if cv <= 2 * tol else "disagrees")
    return (
        Claim(
            "λ_max after training fluctuates little across initialisations (same data, "
            "algorithm and architecture)",
            "fig. 8: histogram of the top eigenvalue over 5000 initial points; the blob-std "
            "growth of fig. 9 is 'beyond its natural fluctuations due to the initialization' "
            "(no number given)",
            f"{len(lam)} members: mean {lam.mean():.4g}, std {lam.std():.3g}, CV {cv:.3f} "
            f"(5-95% {np.quantile(lam, 0.05):.3g}..{np.quantile(lam, 0.95):.3g}); "
            f"{int(r.converged().sum())} reached ‖∇L‖ ≤ {c.get('grad_tol', 0):g}, median ‖∇L‖ "
            f"{np.median(r.grad_norm):.2g}",
            verdict,
            f"verdict: CV = std/mean ≤ {tol:g} → agrees; ≤ {2 * tol:g} → partly; else "
            "disagrees (the paper gives no number; the threshold is ours, fixed before the run)",
        ),
    )


register(
    Study(
        name="small-nets-init-fluctuation",
        paper="003",
        title="Top Hessian eigenvalue over initialisations of a blob net — paper 003 fig. 8",
        description="P = 74 blob net from many w0 = R·u, trained at once (ensemble GD); "
        "exact λ_max of each member: histogram, mean, spread",
        config_class=FluctuationStudyConfig,
        run=run_fluctuation_study,
        presets={"laptop": {}, "paper": {"members": 5000, "max_steps": 100000}},
        sections=sections,
        claims=claims,
        result_class=FluctuationResult,
    )
)
