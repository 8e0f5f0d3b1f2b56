"""The typed results of the paper-000 computation (:func:`~curvscope.experiments.true_vs_empirical`):
per-set summaries, the Theorem-1 comparison, the data's identity, spectra at snapshots, and the
result that holds them with the weights needed to recompute every number (savable through
:mod:`curvscope.persistence`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from curvscope._outputs import json_safe
from curvscope._version import __version__
from curvscope.data import AugmentedViews, load_dataset
from curvscope.errors import InputError
from curvscope.experiments.noise import (
    NoiseEstimate,
    NoiseSpectrumCheck,
    PerSampleNoiseEstimate,
)
from curvscope.models import ModelSpec
from curvscope.persistence import savable
from curvscope.spectral import SpectralDensity
from curvscope.spectral.slq import RitzPair
from curvscope.training import TrainConfig, loss_function

__all__ = [
    "DataIdentity",
    "EpochSpectrum",
    "ObservedExtremes",
    "SetSummary",
    "Theorem1Comparison",
    "Theorem1Forward",
    "Theorem1Reverse",
    "TrueVsEmpiricalResult",
    "summarize_density",
]


@savable
@dataclass(frozen=True)
class SetSummary:
    """The paper-000 numbers of one spectrum and of the model on its set (tables 1-3; §1.5-1.6).

    Attributes:
        num_samples: samples of the set (N, or N·K for the augmented set).
        loss, accuracy: of the model on the set (``accuracy`` is ``None`` for regression).
        smallest, largest: extremal Ritz values over all probes.
        negative_count: negative Ritz values counted by the well-separated rule (§1.6).
        negative_mass, negative_mass_naive, zero_cluster_mass: the rule's mass, the naive mass
            of all negative Ritz values and the mass of the zero cluster (means over probes).
        top_weights: the three heaviest Ritz weights of probe 0 (paper 000 table 3 uses one
            probe; pooled over probes the top three would just be each probe's zero node).
        trace, trace_stderr: the SLQ trace estimate.
        num_products: block products of the SLQ run.
        seconds: its wall time.
    """

    num_samples: int
    loss: float
    accuracy: float | None
    smallest: float
    largest: float
    negative_count: int
    negative_mass: float
    negative_mass_naive: float
    zero_cluster_mass: float
    top_weights: tuple[RitzPair, ...]
    trace: float
    trace_stderr: float
    num_products: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (``top_weights`` as dicts of weight, node, probe)."""
        return dataclasses.asdict(self)


def summarize_density(
    density: SpectralDensity, *, num_samples: int, loss: float, accuracy: float | None
) -> SetSummary:
    """The :class:`SetSummary` of one spectrum and of the model's loss and accuracy on its set.

    Extremal Ritz values, the negative Ritz count and mass by the well-separated rule (§1.6,
    defaults) with the naive negative mass and the zero-cluster mass, the three heaviest
    Ritz weights of probe 0, and the SLQ trace estimate.
    """
    neg = density.negative_mass()
    lo, hi = density.extremal
    trace = density.trace()
    return SetSummary(
        num_samples=int(num_samples),
        loss=float(loss),
        accuracy=None if accuracy is None else float(accuracy),
        smallest=float(lo),
        largest=float(hi),
        negative_count=int(neg.count),
        negative_mass=float(neg.mass),
        negative_mass_naive=float(neg.naive),
        zero_cluster_mass=float(neg.zero_cluster),
        top_weights=tuple(density.top_weights(3, probe=0)),
        trace=float(trace.value),
        trace_stderr=float(trace.stderr),
        num_products=int(density.num_products),
        seconds=float(density.timings.get("total", math.nan)),
    )


@savable
@dataclass(frozen=True)
class ObservedExtremes:
    """Observed ``(smallest, largest)`` Ritz values of the empirical and augmented spectra."""

    empirical: tuple[float, float]
    augmented: tuple[float, float]


@savable
@dataclass(frozen=True)
class Theorem1Forward:
    """Empirical extremes predicted from the augmented ones (the augmented matrix as H_true).

    Attributes:
        noise_scale: s of the empirical set.
        spikes: ``(largest, smallest)`` augmented values fed to
            :func:`~curvscope.rmt.spiked_extremes` (``"from"`` in ``summary.json``).
        predicted_smallest, predicted_largest: ``lambda + s^2/lambda`` or the edge ``±2s``.
        separated: per spike, whether ``|lambda| > s`` (an outlier survives).
        smallest_from_noise, largest_from_noise: whether the prediction is the noise edge.
        observed_smallest, observed_largest: the empirical extremes to compare with.
    """

    noise_scale: float
    spikes: tuple[float, ...]
    predicted_smallest: float
    predicted_largest: float
    separated: tuple[bool, ...]
    smallest_from_noise: bool
    largest_from_noise: bool
    observed_smallest: float
    observed_largest: float


@savable
@dataclass(frozen=True)
class Theorem1Reverse:
    """True extremes implied by the empirical ones (:func:`~curvscope.rmt.deflated_extremes`).

    Attributes:
        noise_scale: s of the empirical set.
        predicted_true: implied ``(smallest, largest)``; NaN where unresolved (``|lambda'| <= 2s``).
        resolved: whether each could be resolved.
        bound: the resolution bound ``2s``.
        notes: the rmt layer's notes on unresolved values.
        observed_augmented: the augmented extremes to compare with.
    """

    noise_scale: float
    predicted_true: tuple[float, ...]
    resolved: tuple[bool, ...]
    bound: float
    notes: tuple[str, ...]
    observed_augmented: tuple[float, float]


@savable
@dataclass(frozen=True)
class Theorem1Comparison:
    """Theorem 1 (spec §1.3) next to the observed shrinkage; see :func:`theorem1_comparison`.

    Attributes:
        num_params, num_train, views: P, N and K.
        q_empirical, q_augmented_nominal: ``P/N`` and ``P/(N K)``.
        observed: the observed extremes of both sets.
        observed_ratio_empirical_over_augmented: ``|emp| / |aug|`` for ``(smallest, largest)``.
        shrinks: whether both augmented extremes are smaller in magnitude than the empirical.
        noise_empirical, noise_augmented: the split-half noise estimates (``None``: skipped).
        forward, reverse: the two predictions (``None`` without a positive noise scale).
        effective_num_augmented: ``N s_emp^2 / s_aug^2`` (``None`` without both estimates).
    """

    num_params: int
    num_train: int
    views: int
    q_empirical: float
    q_augmented_nominal: float
    observed: ObservedExtremes
    observed_ratio_empirical_over_augmented: tuple[float, float]
    shrinks: bool
    noise_empirical: NoiseEstimate | None
    noise_augmented: NoiseEstimate | None
    forward: Theorem1Forward | None
    reverse: Theorem1Reverse | None
    effective_num_augmented: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the ``theorem1`` entry of ``summary.json``)."""
        out = dataclasses.asdict(self)
        if out["forward"] is not None:
            out["forward"]["from"] = out["forward"].pop("spikes")
        if out["reverse"] is not None:
            out["reverse"]["predicted_true"] = [
                None if math.isnan(v) else v for v in out["reverse"]["predicted_true"]
            ]
        return out


@savable
@dataclass(frozen=True)
class DataIdentity:
    """What fixes the data of a study: enough to load the same samples again.

    Attributes:
        name, options: the dataset of :func:`curvscope.data.load_dataset` and its options.
        seed: the dataset's seed (the training seed: it fixes synthetic data and splits).
        data_dir: the folder the data was read from (``None``: the default).
        views, view_seed: K and the seed of the frozen augmentation views.
        subset_indices: the indices (in the full training split) of the samples used when an
            option selects a subset (``per_class``), so the subset is named, not only
            re-derivable; ``None`` for the whole split. :meth:`TrueVsEmpiricalResult.rebuild_data`
            checks that the rebuilt subset is this one.
    """

    name: str
    options: dict[str, Any]
    seed: int
    data_dir: str | None
    views: int
    view_seed: int
    subset_indices: np.ndarray | None = None


@savable
@dataclass(frozen=True)
class EpochSpectrum:
    """The empirical spectrum at one training snapshot (paper 000 figs. 14-33).

    Attributes:
        epoch: the snapshot's epoch (0 = the initial weights).
        summary: its :class:`SetSummary` (extremes, negative mass, loss, accuracy).
        density: the SLQ density.
    """

    epoch: int
    summary: SetSummary
    density: SpectralDensity


@savable
@dataclass(frozen=True)
class TrueVsEmpiricalResult:
    """The outcome of :func:`true_vs_empirical`; plots and the report read only this.

    It holds what is needed to recompute every number it reports: the network's weights
    (``weights``, its state dict) and architecture (``model``), and the data's identity
    (``data``); :meth:`rebuild_model`, :meth:`rebuild_data` and :meth:`rebuild_loss` give
    them back.

    Attributes:
        config: the :class:`TrueVsEmpiricalConfig` as a dict.
        train_config: the checkpoint's training configuration as a dict.
        model: the checkpoint's model spec (name, input shape, outputs, options).
        history: the per-epoch training records of the checkpoint.
        num_params: P of the matrix (the selected parameters).
        num_train, num_test: N of the training and test sets (``num_test`` 0 without test).
        num_augmented: N·K.
        spectra: SLQ densities by set name (``"empirical"``, ``"augmented"``, ``"test"``).
        summaries: :class:`SetSummary` by set name.
        theory: the :class:`Theorem1Comparison`.
        weights: the network's state dict as numpy arrays (saved in the NPZ file).
        data: the :class:`DataIdentity` of the sets.
        timings: seconds per stage.
        device, version: where it ran and the curvscope version.
        per_sample_noise: estimators (b), (c) on the training set (``None``: skipped).
        noise_spectrum: D's spectrum against the semicircle (``None``: skipped).
        epoch_spectra: empirical spectra at training snapshots (the study's
            ``spectra_at_epochs``; empty otherwise).

    Example:
        >>> result = TrueVsEmpiricalResult.load("runs/spectrum/result")  # doctest: +SKIP
        >>> model, train = result.rebuild_model(), result.rebuild_data("train")  # doctest: +SKIP
        >>> evaluate(model, train, result.rebuild_loss())[0]  # doctest: +SKIP
    """

    config: dict[str, Any]
    train_config: dict[str, Any]
    model: dict[str, Any]
    history: list[dict[str, float]]
    num_params: int
    num_train: int
    num_test: int
    num_augmented: int
    spectra: dict[str, SpectralDensity]
    summaries: dict[str, SetSummary]
    theory: Theorem1Comparison
    weights: dict[str, np.ndarray]
    data: DataIdentity
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    version: str = __version__
    per_sample_noise: PerSampleNoiseEstimate | None = None
    noise_spectrum: NoiseSpectrumCheck | None = None
    epoch_spectra: tuple[EpochSpectrum, ...] = ()

    # ------------------------------------------------------------------ derived views
    def summary(self) -> dict[str, Any]:
        """The headline numbers (what ``summary.json`` holds and ``--json`` prints)."""
        return json_safe(
            {
                "matrix": self.config["matrix"],
                "model": self.model.get("name"),
                "data": self.train_config.get("data"),
                "num_params": self.num_params,
                "num_train": self.num_train,
                "views": self.config["views"],
                "num_augmented": self.num_augmented,
                "num_test": self.num_test,
                "sets": {name: s.to_dict() for name, s in self.summaries.items()},
                "theorem1": self.theory.to_dict(),
                "per_sample_noise": None
                if self.per_sample_noise is None
                else self.per_sample_noise.to_dict(),
                "noise_spectrum": None
                if self.noise_spectrum is None
                else self.noise_spectrum.to_dict(),
                "epoch_spectra": [
                    {"epoch": e.epoch, **e.summary.to_dict()} for e in self.epoch_spectra
                ],
                "timings": self.timings,
                "version": self.version,
            }
        )

    # ------------------------------------------------------------------ rebuilding
    def rebuild_model(self, *, device: str = "cpu") -> torch.nn.Module:
        """The network at the weights the spectra were computed at, in eval mode.

        Built from ``model`` (the :class:`~curvscope.models.ModelSpec`) in the training dtype,
        then loaded with ``weights``.
        """
        spec = ModelSpec.from_dict(self.model)
        net = spec.build(seed=int(self.train_config.get("seed", 0)))
        net.to(dtype=getattr(torch, self.train_config.get("dtype", "float32")))
        state = {k: torch.from_numpy(np.array(v)) for k, v in self.weights.items()}
        net.load_state_dict(state)
        return net.to(device).eval()

    def rebuild_data(self, split: Literal["train", "test", "augmented"] = "train") -> Any:
        """The dataset of one set: ``"train"`` (the empirical set), ``"test"``, or
        ``"augmented"`` (the K frozen views of the training set, seeded as in the study).
        """
        if split not in ("train", "test", "augmented"):
            raise InputError(
                f"rebuild_data expects split 'train', 'test' or 'augmented', got {split!r}"
            )
        d = self.data
        kwargs = {"data_dir": d.data_dir, "seed": d.seed, **d.options}
        dataset = load_dataset(d.name, "test" if split == "test" else "train", **kwargs)
        rebuilt = getattr(dataset, "subset_indices", None)
        if (
            split != "test"
            and d.subset_indices is not None
            and (rebuilt is None or not np.array_equal(np.asarray(rebuilt), d.subset_indices))
        ):
            raise InputError(
                f"the rebuilt {d.name!r} training subset is not the one the result was computed "
                f"on ({len(d.subset_indices)} recorded indices); the data in "
                f"{d.data_dir or 'the default folder'} or the dataset code changed since"
            )
        if split == "augmented":
            return AugmentedViews(dataset, views=d.views, seed=d.view_seed)
        return dataset

    def rebuild_loss(self) -> Any:
        """The loss function of the study (the training run's loss)."""
        train_set = self.rebuild_data("train")
        return loss_function(TrainConfig.from_dict(self.train_config), train_set)
