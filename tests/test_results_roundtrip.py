"""Every result of the package saves and loads back equal, found by walking the package.

The classes are not listed by hand: the test imports every module of ``curvscope`` and collects
(a) every class registered with :func:`curvscope.persistence.savable` and (b) every dataclass a
module exports in ``__all__``. Each savable class needs a factory below, and each exported
dataclass must be savable or be named in ``NOT_RESULTS`` with the reason, so a new result cannot
be forgotten.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import curvscope
from curvscope import persistence
from curvscope.errors import InputError

#: Exported dataclasses that are not results, and why.
NOT_RESULTS = {
    "TrueVsEmpiricalConfig": "an input: the study's config (to_dict; recorded in its result)",
    "TrainConfig": "an input: a training config (to_dict/from_dict; recorded in checkpoints)",
    "ModelSpec": "an input: an architecture (to_dict/from_dict; recorded in results)",
    "ShiftFlip": "an augmentation transform, not an outcome",
    "SchedulePreset": "a constant of paper 000's learning-rate schedules, not an outcome",
    "TrainResult": (
        "holds the live nn.Module for the caller; its saved form is the checkpoint.pt that train "
        "writes (load_checkpoint), and a study's result keeps the weights it used"
    ),
    "EngineReport": "mutable diagnostics of a live operator's product engine, not an outcome",
    "CacheInfo": "mutable diagnostics of a live operator's graph cache, not an outcome",
    "Checkpoint": "the loaded form of checkpoint.pt (torch.save), which is its persistence",
    "Study": "a registry entry (functions), not an outcome",
    "Claim": "derived from a study's result by the study (claims.json is a report of it)",
    "Section": "report content derived from a result, rendered, never stored",
    "Table": "report content derived from a result, rendered, never stored",
    "Text": "report content derived from a result, rendered, never stored",
    "FigureRef": "report content derived from a result, rendered, never stored",
    "IndexEntry": "a row of the reproduce index, rendered from the studies' claims",
    "Whitening": "a preprocessing map fitted on training data, refitted when data is rebuilt",
    "Callback": "an input: a function called during training (its records land in results)",
    "TrainingDefaults": "a constant: the default training of the bundled digits run",
    "TrueVsEmpiricalStudyConfig": "an input: the study's config (to_dict; config.json)",
    "SmallNetsWidthConfig": "an input: the study's config (to_dict; recorded in its result)",
    "SmallNetsRandomConfig": "an input: the study's config (to_dict; recorded in its result)",
    "BlobsStudyConfig": "an input: the study's config (to_dict; recorded in its result)",
    "InterpolationConfig": "an input: the study's config (to_dict; recorded in its result)",
    "FluctuationStudyConfig": "an input: the study's config (to_dict; recorded in its result)",
    "DecompositionConfig": "an input: the study's config (to_dict; recorded in its result)",
    "TraceDynamicsConfig": "an input: the study's config (to_dict; recorded in its result)",
    "ValleyPathsConfig": "an input: the study's config (to_dict; recorded in its result)",
    "ToyModelsConfig": "an input: the study's config (to_dict; recorded in its result)",
    "DesignedNoiseConfig": "an input: the study's config (to_dict; recorded in its result)",
    "ToyModel": "a model definition (loss, gradient and Hessian functions), not an outcome",
    "ArmChange": "derived from a DesignedNetResult by net_changes, never stored",
    "AlignmentConfig": "an input: the study's config (to_dict; recorded in its result)",
    "NegativeConfig": "an input: the study's config (to_dict; recorded in its result)",
    "FDRConfig": "an input: the study's config (to_dict; recorded in its result)",
    "LossPair": "live loss modules of a paper-002 study, rebuilt from the recorded config",
    "CriticalPointsConfig": "an input: the study's config (to_dict; recorded in its result)",
    "EnsembleDescent": (
        "an intermediate of the critical-points study, whose result keeps its arrays"
    ),
}


def _walk() -> tuple[dict[str, type], dict[str, type]]:
    """(registered result classes, exported dataclasses) of every module of curvscope."""
    exported: dict[str, type] = {}
    for info in pkgutil.walk_packages(curvscope.__path__, "curvscope."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)  # registers its results
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # a private module's __all__ is internal machinery
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                if obj.__module__.startswith("curvscope."):
                    exported[obj.__name__] = obj
    registered = {
        name: cls
        for name, cls in persistence.registered().items()
        # only classes a module of the package defines (not a doctest's or a test's)
        if cls.__module__.startswith("curvscope.")
        and getattr(sys.modules.get(cls.__module__), cls.__name__, None) is cls
    }
    return registered, exported


# ---------------------------------------------------------------------- factories
def _dense(values: list[float]) -> Any:
    from curvscope import DenseOperator

    return DenseOperator(torch.diag(torch.tensor(values, dtype=torch.float64)))


_EIGS = [-2.0, -0.5, 0.0, 0.0, 0.1, 0.3, 1.0, 4.0, 9.0, 10.0]


def _density() -> Any:
    from curvscope.spectral import slq

    return slq(_dense(_EIGS), num_steps=6, num_probes=2, seed=3)


def _noise(s2: float) -> Any:
    from curvscope.experiments import NoiseEstimate

    return NoiseEstimate(
        s2=s2,
        s2_stderr=math.nan,  # NaN must come back NaN
        noise_scale=math.sqrt(s2),
        sigma2=s2 / 2,
        q=2.0,
        num_params=10,
        num_data=5,
        half_size=2,
        num_probes=1,
        seed=0,
    )


def _per_sample_noise() -> Any:
    from curvscope.experiments import PerSampleNoiseEstimate

    return PerSampleNoiseEstimate(
        sigma2_frobenius=0.5,
        sigma2_frobenius_stderr=0.1,
        sigma2_quadratic=0.75,
        sigma2_quadratic_stderr=math.nan,
        ratio=1.5,
        s2_frobenius=1.0,
        s2_quadratic=1.5,
        q=2.0,
        num_params=10,
        num_data=5,
        num_samples=4,
        num_probes=2,
        seed=1,
    )


def _noise_spectrum() -> Any:
    from curvscope.experiments import noise_spectrum_check

    return noise_spectrum_check(_density(), scale=1.5)


def _epoch_spectrum(epoch: int = 0) -> Any:
    from curvscope.experiments.true_vs_empirical import EpochSpectrum

    return EpochSpectrum(epoch=epoch, summary=_set_summary(), density=_density())


def _theorem1() -> Any:
    from curvscope.experiments import theorem1_comparison

    emp, aug = _set_summary(-0.3, 0.6), _set_summary(-0.01, 0.5)
    return theorem1_comparison(
        emp,
        aug,
        noise_empirical=_noise(0.01),
        noise_augmented=_noise(0.0025),
        num_params=100,
        num_train=50,
        views=4,
    )


def _set_summary(lo: float = -1.0, hi: float = 2.0, accuracy: float | None = None) -> Any:
    from curvscope.experiments import SetSummary
    from curvscope.spectral.slq import RitzPair

    return SetSummary(
        num_samples=5,
        loss=0.25,
        accuracy=accuracy,
        smallest=lo,
        largest=hi,
        negative_count=1,
        negative_mass=0.1,
        negative_mass_naive=0.2,
        zero_cluster_mass=0.5,
        top_weights=(RitzPair(0.5, 0.0, 0), RitzPair(0.25, hi, 0)),
        trace=1.5,
        trace_stderr=math.inf,
        num_products=6,
        seconds=math.nan,
    )


def _data_identity() -> Any:
    from curvscope.experiments import DataIdentity

    return DataIdentity(
        name="digits", options={"subset": 100}, seed=1, data_dir=None, views=3, view_seed=7
    )


def _true_vs_empirical() -> Any:
    from curvscope.experiments import TrueVsEmpiricalResult

    density = _density()
    return TrueVsEmpiricalResult(
        config={"matrix": "hessian", "views": 3, "params": None, "seed": 0},
        train_config={"data": "digits", "seed": 1, "dtype": "float32"},
        model={"name": "mlp", "input_shape": [64], "num_outputs": 10, "options": {}},
        history=[{"epoch": 1, "train_loss": 0.5, "test_accuracy": math.nan}],
        num_params=10,
        num_train=5,
        num_test=0,
        num_augmented=15,
        spectra={"empirical": density, "augmented": density},
        summaries={"empirical": _set_summary(accuracy=0.5), "augmented": _set_summary()},
        theory=_theorem1(),
        weights={
            "net.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
            "net.0.bias": np.array([math.nan, 1.0]),
            "bn.num_batches_tracked": np.array(3, dtype=np.int64),
        },
        data=_data_identity(),
        timings={"total": 1.0},
        per_sample_noise=_per_sample_noise(),
        noise_spectrum=_noise_spectrum(),
        epoch_spectra=(_epoch_spectrum(0), _epoch_spectrum(10)),
    )


def _spectral() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.spectral import (
        exact_spectrum,
        hutchinson_trace,
        hutchpp_trace,
        lanczos,
        top_eigenpairs,
    )

    op = _dense(_EIGS)
    return {
        "LanczosResult": lambda: [lanczos(op, num_steps=5, num_probes=2)],
        "SpectralDensity": lambda: [_density()],
        "Moments": lambda: [_density().moments(3)],
        "NegativeMass": lambda: [_density().negative_mass()],
        "RitzPair": lambda: [_density().top_weights(1)[0]],
        "TraceEstimate": lambda: [
            hutchinson_trace(op, num_matvecs=3),
            hutchpp_trace(op, num_matvecs=6),
        ],
        "EigenResult": lambda: [top_eigenpairs(op, 2)],
        "ExactSpectrum": lambda: [
            exact_spectrum(np.diag(_EIGS)),
            exact_spectrum(np.diag(_EIGS), eigenvectors=True),
        ],
    }


def _rmt() -> dict[str, Callable[[], list[Any]]]:
    from curvscope import rmt

    return {
        "Semicircle": lambda: [rmt.semicircle(0.4)],
        "MarchenkoPastur": lambda: [rmt.marchenko_pastur(1.5, scale=0.3)],
        "ProductWishart": lambda: [rmt.product_wishart(1.0, 0.5)],
        "PenningtonBahri": lambda: [rmt.pennington_bahri(0.1, 0.5, model="improved", sigma=2.0)],
        "DiscreteMeasure": lambda: [rmt.as_law([1.0, 3.0, 3.0])],
        "FreeConvolution": lambda: [
            rmt.free_convolution([0.0, 1.0], rmt.semicircle(0.5)),
            rmt.free_convolution(rmt.marchenko_pastur(0.5), rmt.semicircle(0.3), eta=1e-3),
        ],
        "FreenessTest": lambda: [
            rmt.freeness_test(np.diag(_EIGS), np.diag(_EIGS[::-1]), num_rotations=2, generator=0)
        ],
        "IndexCurve": lambda: [rmt.index_curve(0.5, [0.0, 0.05])],
        "CriticalEnergyCurve": lambda: [rmt.critical_energy_curve(np.array([1e-9, 0.5]))],
        "IndexScalingFit": lambda: [
            rmt.fit_index_scaling(np.linspace(0.2, 0.6, 5), np.linspace(0.2, 0.6, 5) ** 1.5)
        ],
        "SpikedExtremes": lambda: [rmt.spiked_extremes([6.0, 0.5, -4.0], scale=1.0)],
        "DeflatedExtremes": lambda: [rmt.deflated_extremes([6.0, 1.0, -4.0], scale=1.0)],
    }


def _others() -> dict[str, Callable[[], list[Any]]]:
    from curvscope import rmt
    from curvscope.experiments import ObservedExtremes
    from curvscope.operators import EngineCheck
    from curvscope.training.ensemble import EnsembleResult
    from curvscope.training.full_batch import DescentResult
    from curvscope.training.replay import Iterate

    theory = _theorem1()
    return {
        "NoiseEstimate": lambda: [_noise(0.01)],
        "PerSampleNoiseEstimate": lambda: [_per_sample_noise()],
        "NoiseSpectrumCheck": lambda: [_noise_spectrum()],
        "EpochSpectrum": lambda: [_epoch_spectrum(3)],
        "SetSummary": lambda: [_set_summary(), _set_summary(accuracy=0.75)],
        "ObservedExtremes": lambda: [ObservedExtremes((-1.0, 2.0), (-0.5, math.inf))],
        "Theorem1Forward": lambda: [theory.forward],
        "Theorem1Reverse": lambda: [theory.reverse],
        "Theorem1Comparison": lambda: [theory],
        "DataIdentity": lambda: [
            _data_identity(),
            dataclasses.replace(_data_identity(), subset_indices=np.array([3, 1, 4], np.int64)),
        ],
        "TrueVsEmpiricalResult": lambda: [_true_vs_empirical()],
        "EngineCheck": lambda: [EngineCheck({"hessian": {"jvp": "ok", "vmap": "wrong: 1e-3"}})],
        "SampledSpectrum": lambda: [rmt.sample_spectrum(rmt.semicircle(1.0), 6, seed=0)],
        "DescentResult": lambda: [
            DescentResult(
                steps=3,
                loss=0.5,
                grad_norm=math.nan,
                stop_reason="max_steps",
                method="gd",
                history=[{"step": 0, "loss": 1.0, "grad_norm": 2.0}],
                num_hvps=0,
            )
        ],
        "EnsembleResult": lambda: [
            EnsembleResult(
                parameters={"0.weight": torch.arange(6.0, dtype=torch.float64).reshape(2, 3)},
                losses=torch.tensor([[1.0, 0.5], [2.0, 1.5]]),
                seeds=(0, 1),
                steps=2,
                path="stacked",
            ),
            EnsembleResult(
                parameters={"0.weight": torch.ones(2, 3, dtype=torch.float64)},
                losses=torch.tensor([[1.0], [2.0]]),
                seeds=(0, 1),
                steps=4,
                path="stacked",
                member_steps=(4, 2),
                grad_norms=torch.tensor([1e-3, 1e-5], dtype=torch.float64),
                stop_reasons=("max_steps", "grad_tol"),
            ),
        ],
        "Iterate": lambda: [
            Iterate(
                epoch=0,
                step=1,
                lr=0.1,
                loss=0.7,
                parameters=torch.arange(4.0),
                momentum=torch.zeros(4),
            )
        ],
    }


def _small_nets() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper003_width import (
        SmallNetData,
        SmallNetSpectrum,
        SmallNetsResult,
    )

    data = SmallNetData("digits", {"per_class": 10}, 0, None)
    spectrum = SmallNetSpectrum(
        label="k=3",
        data="real",
        hidden=(3,),
        init_seed=0,
        state={"net.1.weight": np.arange(6.0).reshape(3, 2)},
        eigenvalues=np.array([-0.1, 0.0, 2.0]),
        steps=4,
        loss=0.5,
        grad_norm=1e-3,
        stop_reason="grad_tol",
        accuracy=1.0,
        zero_fraction=1 / 3,
        cumulative=np.array([0.0, 1 / 3, 1.0]),
        outliers=np.array([2.0]),
        outlier_ratio=math.nan,
        seconds=0.1,
    )
    result = SmallNetsResult(
        study="small-nets-width",
        config={"widths": [3], "tol": 1e-3},
        data={"real": data},
        num_samples=100,
        num_classes=10,
        input_dim=64,
        spectra=(spectrum,),
        timings={"total": 1.0},
    )
    return {
        "SmallNetData": lambda: [data, SmallNetData("mnist", {}, 1, "/data")],
        "SmallNetSpectrum": lambda: [
            spectrum,
            dataclasses.replace(
                spectrum,
                method="slq",
                params=40,
                zero_fraction_se=0.01,
                zero_fraction_ambiguous=0.02,
                density_nodes=np.array([0.0, 1.0]),
                density_weights=np.array([0.75, 0.25]),
            ),
        ],
        "SmallNetsResult": lambda: [result],
    }


def _critical() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper001_critical import (
        CriticalFit,
        CriticalPointsResult,
        PhiRuns,
    )

    fit = CriticalFit(True, 0.1, 0.01, 2.0, 0.2, 1.5, 0.1, 3.2, 4, True)
    bad = CriticalFit(
        False,
        math.nan,
        math.nan,
        math.nan,
        math.nan,
        1.5,
        math.nan,
        math.nan,
        0,
        False,
        "2 index values",
    )
    ints, floats = np.array([0, 2]), np.array([0.5, 0.25])
    runs = PhiRuns(
        phi_target=0.5,
        phi=0.5,
        m=4,
        seeds=np.array([7, 9]),
        u=floats,
        loss0=floats,
        gd_steps=ints,
        gd_stop=ints,
        jg_steps=ints,
        jg_stop=ints,
        theta=np.ones((2, 8)),
        jg=np.array([1e-9, 1e-3]),
        eps=floats,
        kept=np.array([True, False]),
        index=np.array([1, -1]),
        num_zero=np.array([0, -1]),
        num_negative_raw=np.array([1, -1]),
        lambda_min=np.array([-0.1, math.nan]),
        lambda_max=np.array([2.0, math.nan]),
        h0_scale=floats,
        index_values=np.array([1]),
        counts=np.array([1]),
        mean_eps=np.array([0.5]),
        sem_eps=np.array([math.nan]),
        fit_fixed=bad,
        fit_free=fit,
        seconds=1.0,
    )
    result = CriticalPointsResult({"n": 2}, 2, (runs,), {"total": 1.0})
    return {
        "CriticalFit": lambda: [fit, bad],
        "PhiRuns": lambda: [runs],
        "CriticalPointsResult": lambda: [result],
    }


def _blobs() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper003_blobs import BlobsResult, BlobsRun, TrajectoryPoint

    run = BlobsRun(
        width=2,
        loss="nll",
        std=0.5,
        num_params=18,
        radius=2.1,
        steps=3,
        loss_value=0.5,
        grad_norm=1e-4,
        stop_reason="grad_tol",
        eigenvalues=np.array([-1e-9, 0.0, 2.5]),
        weights={"0.weight": np.ones((2, 2))},
        data={"name": "blobs", "options": {"num_samples": 10, "std": 0.5}, "seed": 0},
        hessian=np.eye(3),
        init_seed=1000,
        active_init=(2, 1),
        active_final=(2, 0),
    )
    point = TrajectoryPoint(20, 0.6, 0.1, np.array([0.0, 1.0]))
    result = BlobsResult({"zero_tol": 1e-3}, (run,), (point,), None, (run,), {"all": 1.0})
    return {
        "BlobsRun": lambda: [run, dataclasses.replace(run, hessian=None)],
        "TrajectoryPoint": lambda: [point],
        "BlobsResult": lambda: [result],
    }


def _interpolation() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper003_interpolation import (
        InterpolationPair,
        InterpolationResult,
    )

    pair = InterpolationPair(
        name="one start",
        methods=("gd", "sgd"),
        init_seeds=(0, 0),
        shuffle_seeds=(None, 3),
        steps=np.array([0, 5]),
        s=np.array([0.0, 0.5, 1.0]),
        losses=np.array([[0.7, 0.7, 0.7], [0.5, 0.6, 0.4]]),
        weights_a=np.ones((2, 4)),
        weights_b=np.zeros((2, 4)),
    )
    data = {"name": "blobs", "options": {"num_samples": 10, "std": 0.5}, "seed": 0}
    result = InterpolationResult({"num_points": 3, "margin": 0.0}, data, 1.5, (pair,), {"all": 1.0})
    return {"InterpolationPair": lambda: [pair], "InterpolationResult": lambda: [result]}


def _fluctuation() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper003_fluctuation import FluctuationResult

    result = FluctuationResult(
        config={"cv_agree": 0.1},
        width=2,
        num_params=18,
        radius=2.1,
        seeds=(0, 1),
        lambda_max=np.array([0.3, 0.31]),
        loss_value=np.array([0.1, 0.2]),
        grad_norm=np.array([1e-3, 2e-3]),
        weights=np.ones((2, 18)),
        data={"name": "blobs", "options": {"num_samples": 10, "std": 0.5}, "seed": 0},
        timings={"training": 1.0, "spectra": 0.5},
        steps=np.array([5, 7]),
    )
    return {"FluctuationResult": lambda: [result, dataclasses.replace(result, steps=None)]}


def _decomposition() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper001_decomposition import (
        DecompData,
        DecompNetwork,
        DecompositionResult,
        GapScan,
        InitH0,
        NoiseH1,
        TrainedPoint,
    )
    from curvscope.rmt import FreenessTest

    data = DecompData("digits", 4, 0, np.array([3, 1, 4], dtype=np.int64))
    net = DecompNetwork(
        "fig3 phi=0.25", 2, 3, 3, 5, {"net.1.weight": np.ones((2, 3))}, data, 7, 50.0
    )
    plain = DecompNetwork("fig2 trained", 2, 3, 3, 0, {"net.1.weight": np.ones((2, 3))}, data)
    free = FreenessTest(
        np.array([0.1, 0.2]), np.array([0.01, 0.02]), np.array([0.1]), np.array([0.01]), 2, 12
    )
    values = np.array([-0.1, 0.0, 0.5, 2.0])
    trained = TrainedPoint(
        0,
        10,
        "max_steps",
        0.5,
        1e-3,
        0.03,
        0.27,
        values,
        values,
        values,
        values,
        free,
        1e-16,
        1e-17,
        0.8,
        0.25,
        0.0,
        0.004,
        0.0,
        0.05,
        0.2,
        0.1,
        0.12,
    )
    noise = NoiseH1(1, 0.25, 50.0, values, 0.02, 0.005)
    init = InitH0(0, 0.125, values[2:], np.zeros(2), 1.25, 0.4, 0.5, 0.2)
    gap = GapScan(
        np.array([0.1, 0.2]),
        np.array([320, 160]),
        np.ones((2, 3)),
        np.zeros((2, 3), np.int64),
        0.9,
        np.array([0.01, -0.02]),
    )
    result = DecompositionResult(
        "hessian-decomposition",
        {"seed": 0},
        (plain, net),
        trained,
        dataclasses.replace(trained, steps=0, stop_reason="init"),
        (noise,),
        init,
        gap,
        {"total": 1.0},
    )
    return {
        "DecompData": lambda: [data, DecompData("cifar10", 4, 1, np.arange(2), "/data")],
        "DecompNetwork": lambda: [net, plain],
        "TrainedPoint": lambda: [trained],
        "NoiseH1": lambda: [noise],
        "InitH0": lambda: [init],
        "GapScan": lambda: [gap],
        "DecompositionResult": lambda: [result],
    }


def _paper002_paths() -> dict[str, Callable[[], list[Any]]]:
    import torch

    from curvscope.experiments._paper002 import TracePoint
    from curvscope.experiments.paper002_trace import TraceDynamicsResult, TraceRun
    from curvscope.experiments.paper002_valley import ValleyPath, ValleyPathsResult
    from curvscope.experiments.paper003_width import SmallNetData
    from curvscope.training import ProjectedPath, Projection

    projection = Projection(torch.ones(3, dtype=torch.float64), 4, 0.7, 0.5, 0.55, True)
    path = ProjectedPath(
        steps=np.array([0, 5, 6, 10]),
        parameters=np.ones((4, 3)),
        losses=np.array([0.5, 0.51, 0.52, 0.5]),
        projection_steps=np.array([3, 0, 1, 2]),
        reached=np.array([True, True, True, False]),
        segment_max=np.array([0.52, 0.9, 0.53]),
        breaks=((5, 6),),
        threshold=0.55,
        num_points=10,
    )
    point = TracePoint(3.0, 0.1, float("nan"))
    state = {"0.weight": np.ones((2, 3)), "0.bias": np.zeros(2)}
    data = SmallNetData("digits", {"per_class": 5}, 0, None)
    run = TraceRun(
        kind="sgd",
        lr=0.1,
        seed=1,
        steps=np.array([0, 10]),
        loss=np.array([0.52, 0.51]),
        projected_loss=np.array([0.5, 0.5]),
        projection_steps=np.array([2, 7]),
        trace=np.array([3.0, 2.9]),
        trace_stderr=np.array([0.1, 0.1]),
        exact=np.array([3.01, float("nan")]),
        final_state=state,
        projected=np.arange(6.0).reshape(2, 3),
    )
    trace = TraceDynamicsResult(
        "noise-trace-dynamics",
        {"lrs": [0.1]},
        data,
        50,
        10,
        64,
        18,
        0.5,
        0.52,
        0.51,
        state,
        0.519,
        0.6,
        (run,),
        {"total": 1.0},
    )
    valley = ValleyPath(
        variant="random-labels",
        train_config={"lr": 0.1},
        shuffled_indices=np.array([3, 9]),
        shuffled_labels=np.array([1, 0]),
        steps_per_epoch=5,
        epoch_loss=np.array([2.0, 0.6, 0.55]),
        path=path,
        test_loss=np.array([1.0, 1.1, 1.0, 0.9]),
        trace_steps=np.array([0, 10]),
        trace=(point, TracePoint(2.9, 0.1, 2.95)),
        seconds=2.0,
    )
    valleys = ValleyPathsResult(
        "noise-valley-paths", {"epochs": 2}, data, 50, 10, 64, 18, 0.5, (valley,), {"total": 3.0}
    )
    return {
        "Projection": lambda: [projection],
        "ProjectedPath": lambda: [path],
        "TracePoint": lambda: [point],
        "TraceRun": lambda: [run],
        "TraceDynamicsResult": lambda: [trace],
        "ValleyPath": lambda: [valley],
        "ValleyPathsResult": lambda: [valleys],
    }


def _paper002_toy() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper002_toy import (
        DesignedSigns,
        Theta2Equilibrium,
        ToyModelsResult,
        TraceRate,
    )
    from curvscope.experiments.paper002_toy_models import ChainRun

    two = np.array([0.1, -0.2])
    rate = TraceRate(
        np.array([0.01, 0.02, 0.04]), 10, 5, 5, two, two, two, two, -13.0, 52.0,
        np.ones((3, 2)), np.zeros(3), np.array([0, 5]), np.ones((3, 2)),
    )  # fmt: skip
    signs = DesignedSigns(
        0.01, 10, 5, (0.5, -0.5), 1.0, two, two, two, two, two, two, np.array([0, 5]),
        np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)),
    )  # fmt: skip
    theta2 = Theta2Equilibrium(
        0.01, 1e-4, 4, 10, 10, -0.02, 1e-4, -0.02, 0.005, 0.005, np.array([0, 10]), two, two,
        two, -1e-6,
    )  # fmt: skip
    result = ToyModelsResult({"sigmas": 3.0}, rate, signs, theta2, {"a": 1.0})
    run = ChainRun(np.ones((2, 4)), np.array([0, 3]), np.ones((2, 2, 1)), np.zeros((2, 0)))
    return {
        "TraceRate": lambda: [rate],
        "DesignedSigns": lambda: [signs],
        "Theta2Equilibrium": lambda: [theta2],
        "ToyModelsResult": lambda: [result],
        "ChainRun": lambda: [run],
    }


def _paper002_designed() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper002_designed import (
        DesignedNetResult,
        DesignedNoiseResult,
        DesignedToyResult,
    )
    from curvscope.experiments.paper003_width import SmallNetData

    three = np.array([0.0, -0.1, 0.2])
    toy = DesignedToyResult(
        0.01, 10, 5, 5, (0.5, -0.5), 1.0, 3.1, np.array([0, 5, 10]), np.ones((3, 3)),
        np.ones((3, 3)), np.ones((3, 3)), np.ones((3, 3)), three, three, three, three,
    )  # fmt: skip
    net = DesignedNetResult(
        SmallNetData("digits", {"per_class": 3}, 0), 64, 10, (2,), "tanh", 0, 0.1, (0, 1),
        1.0, 0.003, 0.001, 3, 2, 2, np.ones(160), 0.5, 1e-3, np.array([0, 2]),
        np.ones((2, 3)), np.ones((2, 160)), np.ones((2, 2, 2, 3)), np.ones((2, 2, 2, 160)),
        np.ones((3, 2, 2)), 1e-12,
    )  # fmt: skip
    result = DesignedNoiseResult({"sigmas": 3.0}, toy, net, {"toy": 1.0})
    return {
        "DesignedToyResult": lambda: [toy],
        "DesignedNetResult": lambda: [net],
        "DesignedNoiseResult": lambda: [result],
    }


def _paper002() -> dict[str, Callable[[], list[Any]]]:
    from curvscope.experiments.paper002_alignment import (
        AlignmentEstimate,
        AlignmentPoint,
        AlignmentResult,
        AlignmentRun,
        AlignmentValues,
    )
    from curvscope.experiments.paper002_fdr import FDRResult
    from curvscope.experiments.paper002_negative import LineFit, NegativePoint, NegativeResult
    from curvscope.experiments.paper002_smallnet import NetData

    data = NetData("digits", {"per_class": 2, "size": 7}, 0, None, np.arange(20))
    values = AlignmentValues(0.9, 0.01, 1.0, 2.0, 3.0, 4.0, 5.0)
    estimate = AlignmentEstimate(*([0.5, 0.1] * 7), num_probes=8, seed=1)
    state = {"1.weight": np.ones((2, 3))}
    point = AlignmentPoint(2, 10, 0.3, 0.9, values, estimate, state, 1.5)
    bare = AlignmentPoint(0, 0, 2.3, 0.1, None, estimate, state, 0.5)
    run = AlignmentRun("mse", 0.1, 0.0, 0.01, (point, bare))
    alignment = AlignmentResult({"hidden": 3}, data, 49, 10, 20, 190, (run,), {"total": 1.0})
    fit = LineFit(-2.0, 0.1, 1e-5, math.nan, 0.9, 4)
    neg = NegativePoint(0.1, 5, 100, 0.51, 0.01, -1e-3, 7, -1e-4, 3.0, 9.0, state)
    negative = NegativeResult(
        {"hidden": 3}, data, 64, 10, 20, 205, 0.5, neg, 300, 1e-4, (neg, neg), fit, fit, {}
    )
    fdr = FDRResult(
        config={"channels": [2, 1]},
        data=data,
        input_shape=(1, 8, 8),
        classes=10,
        num_samples=20,
        num_params=139,
        prefactor=0.0475,
        window_states=(state, state),
        top_values=np.array([1.0, 2.0]),
        top_vectors=np.ones((2, 139)),
        window_bounds=np.array([0, 2, 4]),
        left_full=np.arange(4.0),
        right_full=np.arange(4.0),
        left_top=np.arange(4.0),
        right_top=np.arange(4.0),
        batch_loss=np.arange(4.0),
        epoch_loss=np.array([2.3, 2.2]),
        epoch_accuracy=np.array([0.1, 0.2]),
        ratio_full=np.array([1.1, 0.9]),
        ratio_full_stderr=np.array([0.1, math.nan]),
        ratio_top=np.array([1.0, 1.01]),
        ratio_top_stderr=np.array([0.01, 0.02]),
        timings={"total": 3.0},
    )
    return {
        "NetData": lambda: [data],
        "AlignmentValues": lambda: [values],
        "AlignmentEstimate": lambda: [estimate],
        "AlignmentPoint": lambda: [point, bare],
        "AlignmentRun": lambda: [run],
        "AlignmentResult": lambda: [alignment],
        "LineFit": lambda: [fit],
        "NegativePoint": lambda: [neg],
        "NegativeResult": lambda: [negative],
        "FDRResult": lambda: [fdr],
    }


def _factories() -> dict[str, Callable[[], list[Any]]]:
    return {
        **_paper002(),
        **_spectral(),
        **_rmt(),
        **_others(),
        **_small_nets(),
        **_blobs(),
        **_critical(),
        **_interpolation(),
        **_fluctuation(),
        **_decomposition(),
        **_paper002_paths(),
        **_paper002_toy(),
        **_paper002_designed(),
    }


# ---------------------------------------------------------------------- comparison
def assert_same(got: Any, want: Any, where: str = "result") -> None:
    """Equal field by field: same types, arrays bit-exact (dtype too), NaN where NaN was."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if dataclasses.is_dataclass(want):
        for f in dataclasses.fields(want):
            assert_same(getattr(got, f.name), getattr(want, f.name), f"{where}.{f.name}")
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, where
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype, where
        assert torch.equal(got.nan_to_num(), want.nan_to_num()), where
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    else:
        assert got == want, where


# ---------------------------------------------------------------------- tests
def test_every_exported_dataclass_is_a_savable_result_or_says_why_not() -> None:
    registered, exported = _walk()
    unclassified = sorted(set(exported) - set(registered) - set(NOT_RESULTS))
    assert not unclassified, (
        f"exported dataclasses neither savable nor in NOT_RESULTS: {unclassified}; decorate "
        "them with curvscope.persistence.savable (and add a factory here) or say why not"
    )
    assert not set(NOT_RESULTS) & set(registered)
    assert set(NOT_RESULTS) <= set(exported), "NOT_RESULTS names a class no module exports"


def test_every_savable_class_has_a_factory() -> None:
    registered, _ = _walk()
    missing = sorted(set(registered) - set(_factories()))
    assert not missing, f"savable classes without a factory in this test: {missing}"
    stale = sorted(set(_factories()) - set(registered))
    assert not stale, f"factories for classes that are not savable: {stale}"


@pytest.mark.parametrize("name", sorted(_factories()))
def test_result_round_trips_exactly(name: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    instances = _factories()[name]()
    assert instances
    for i, obj in enumerate(instances):
        assert type(obj).__name__ == name
        stem = obj.save(tmp_path / f"r{i}.json")
        assert stem == tmp_path / f"r{i}"
        text = (tmp_path / f"r{i}.json").read_text()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
        back = type(obj).load(stem)
        assert_same(back, obj, name)
        assert_same(persistence.load(tmp_path / f"r{i}.npz"), obj, name)


def test_tensors_round_trip_with_their_dtype(tmp_path: Path) -> None:
    @persistence.savable
    @dataclasses.dataclass(frozen=True)
    class _TensorHolder:
        state: dict[str, Any]

    state = {
        "w": torch.tensor([[1.0, math.nan]], dtype=torch.float64),
        "b": torch.tensor([0.5, -1.25], dtype=torch.bfloat16),
        "n": torch.tensor(3),
        "0": torch.zeros(0, 2),
        "__odd": 1.0,
    }
    holder = _TensorHolder({**state, 7: (1, "x")})
    back = _TensorHolder.load(holder.save(tmp_path / "t"))
    assert_same(back, holder)


def test_load_refuses_missing_foreign_corrupt_and_mixed_files(tmp_path: Path) -> None:
    from curvscope.experiments import NoiseEstimate, TrueVsEmpiricalResult
    from curvscope.spectral import SpectralDensity

    with pytest.raises(InputError, match=r"expects none\.json and none\.npz.*at least one"):
        SpectralDensity.load(tmp_path / "none")
    stem = _noise(0.01).save(tmp_path / "noise")
    with pytest.raises(InputError, match="holds a 'NoiseEstimate', not a SpectralDensity"):
        SpectralDensity.load(stem)
    other = _noise(0.04).save(tmp_path / "other")
    # a JSON file beside the arrays of another save (an interrupted save, a copied file)
    (tmp_path / "mixed.json").write_bytes(stem.with_suffix(".json").read_bytes())
    (tmp_path / "mixed.npz").write_bytes(other.with_suffix(".npz").read_bytes())
    with pytest.raises(InputError, match="come from different saves"):
        NoiseEstimate.load(tmp_path / "mixed")
    text = stem.with_suffix(".json").read_text()
    stem.with_suffix(".json").write_text(text[: len(text) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        NoiseEstimate.load(stem)
    stem.with_suffix(".json").write_text(text.replace('"NoiseEstimate"', '"Nonexistent"'))
    with pytest.raises(InputError, match="not a NoiseEstimate"):
        NoiseEstimate.load(stem)
    with pytest.raises(InputError, match="'Nonexistent', which is not a curvscope result"):
        persistence.load(stem)
    stem.with_suffix(".json").write_text(text)
    full = _true_vs_empirical().save(tmp_path / "tve")
    data = full.with_suffix(".npz").read_bytes()
    full.with_suffix(".npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"tve\.npz is not a readable array file.*truncated"):
        TrueVsEmpiricalResult.load(full)
    (tmp_path / "x.json").write_text('{"some": "json"}')
    (tmp_path / "x.npz").write_bytes(b"")
    with pytest.raises(InputError, match="not a readable curvscope result"):
        persistence.load(tmp_path / "x")


def test_save_refuses_what_it_cannot_read_back(tmp_path: Path) -> None:
    from curvscope.experiments import TrueVsEmpiricalConfig

    with pytest.raises(InputError, match="not a savable curvscope result"):
        persistence.save(TrueVsEmpiricalConfig(checkpoint="x"), tmp_path / "c")
    with pytest.raises(InputError, match="cannot save a value of type set"):
        persistence.save(dataclasses.replace(_data_identity(), options={"a": {1}}), tmp_path / "s")
    with pytest.raises(InputError, match="cannot save an object array"):
        persistence.save(
            dataclasses.replace(_data_identity(), options={"a": np.array([None])}), tmp_path / "o"
        )


def test_persistence_is_the_bottom_layer() -> None:
    """It imports nothing of curvscope above errors/_outputs/_version, and torch only lazily."""
    import ast

    tree = ast.parse(Path(persistence.__file__).read_text())
    for node in tree.body:  # module level
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert not name.startswith("torch"), name
            if name.startswith("curvscope"):
                assert name in {"curvscope.errors", "curvscope._outputs", "curvscope._version"}


def test_the_study_module_re_exports_its_result_classes() -> None:
    study = importlib.import_module("curvscope.experiments.true_vs_empirical")
    results = importlib.import_module("curvscope.experiments.true_vs_empirical_results")
    for name in results.__all__:
        assert getattr(study, name) is getattr(results, name)
