"""True vs Empirical curvature spectra at fixed weights (paper 000; spec ``theory.md`` §1).

For the model of a checkpoint, SLQ spectra of one curvature matrix over

- the training set (the *Empirical* matrix, N samples),
- K frozen augmentation views of it (the paper's proxy of the *True* matrix, N·K samples),
- optionally the test set,

with the paper-000 numbers of each (extremal Ritz values, negative Ritz count and mass by the
rule of §1.6, the three heaviest Ritz weights, loss and accuracy) and the Theorem-1 comparison
(§1.3): the noise scale ``s`` is estimated by the split-half estimator (§1.4(a)) on both sets,
the empirical extremes are predicted from the augmented ones with
:func:`~curvscope.rmt.spiked_extremes`, and the true extremes from the empirical ones with
:func:`~curvscope.rmt.deflated_extremes`, each next to what was observed.

The study is one function, :func:`true_vs_empirical`: a frozen :class:`TrueVsEmpiricalConfig`
in, a frozen :class:`TrueVsEmpiricalResult` out (``save``/``load`` as JSON + NPZ by
:mod:`curvscope.persistence`), which holds the network's weights and the data's identity so that
every number it reports can be recomputed (:meth:`TrueVsEmpiricalResult.rebuild_model`,
:meth:`~TrueVsEmpiricalResult.rebuild_data`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from curvscope._distributed import is_distributed, shard
from curvscope._memory import available_memory, format_bytes
from curvscope._validate import (
    check_bool,
    check_device,
    check_dtype,
    check_int,
    check_seed,
    is_int,
)
from curvscope.data import AugmentedViews, BatchLoader, TensorDataset, load_dataset
from curvscope.errors import InputError, MemoryLimitError, NonFiniteError
from curvscope.experiments._sources import split_halves
from curvscope.experiments.noise import (
    HalfDifferenceOperator,
    NoiseEstimate,
    NoiseSpectrumCheck,
    PerSampleNoiseEstimate,
    noise_spectrum_check,
    per_sample_noise,
    split_half_noise,
)
from curvscope.experiments.true_vs_empirical_results import (
    DataIdentity,
    EpochSpectrum,
    ObservedExtremes,
    SetSummary,
    Theorem1Comparison,
    Theorem1Forward,
    Theorem1Reverse,
    TrueVsEmpiricalResult,
    summarize_density,
)
from curvscope.operators import select_parameters
from curvscope.operators.registry import MATRICES  # re-exported for compatibility
from curvscope.rmt import deflated_extremes, spiked_extremes
from curvscope.spectral import SpectralDensity, make_generator, slq
from curvscope.spectral.lanczos import basis_bytes
from curvscope.training import evaluate, load_checkpoint, loss_function

__all__ = [
    "MATRICES",
    "DataIdentity",
    "EpochSpectrum",
    "ObservedExtremes",
    "SetSummary",
    "Theorem1Comparison",
    "Theorem1Forward",
    "Theorem1Reverse",
    "TrueVsEmpiricalConfig",
    "TrueVsEmpiricalResult",
    "epoch_spectrum",
    "make_operator",
    "preflight",
    "summarize_density",
    "theorem1_comparison",
    "true_vs_empirical",
]

SET_NAMES = ("empirical", "augmented", "test")


def _check_config(config: Any) -> None:
    """Validate a :class:`TrueVsEmpiricalConfig` and store canonical values (dtype, device)."""
    set_ = object.__setattr__  # frozen dataclass
    if isinstance(config.checkpoint, os.PathLike):
        set_(config, "checkpoint", os.fspath(config.checkpoint))
    if not isinstance(config.checkpoint, str):
        raise InputError(
            f"checkpoint must be the path of a checkpoint.pt, got {config.checkpoint!r} "
            f"({type(config.checkpoint).__name__}); pass e.g. 'runs/train/checkpoint.pt'"
        )
    if not isinstance(config.matrix, str) or config.matrix not in MATRICES:
        raise InputError(f"unknown matrix {config.matrix!r}; expected one of {', '.join(MATRICES)}")
    check_int(
        "views",
        config.views,
        minimum=1,
        expected="a positive integer (K frozen views per sample, e.g. 9)",
    )
    check_int(
        "num_steps",
        config.num_steps,
        minimum=1,
        expected="a positive integer (Lanczos steps, e.g. 80)",
    )
    check_int(
        "num_probes",
        config.num_probes,
        minimum=1,
        expected="a positive integer (SLQ probes, e.g. 3)",
    )
    check_int("batch_size", config.batch_size, minimum=1, expected="a positive integer (e.g. 2048)")
    if not is_int(config.noise_probes, minimum=0) or config.noise_probes == 1:
        raise InputError(
            f"noise_probes must be 0 (skip the noise estimate) or an integer >= 2, "
            f"got {config.noise_probes!r}"
        )
    if not is_int(config.estimator_samples, minimum=0) or config.estimator_samples in (1, 2):
        raise InputError(
            f"estimator_samples must be 0 (skip estimators (b), (c)) or an integer >= 3, "
            f"got {config.estimator_samples!r}"
        )
    check_int(
        "noise_spectrum_steps",
        config.noise_spectrum_steps,
        minimum=0,
        expected="0 (skip) or a positive integer (Lanczos steps on D, e.g. 40)",
    )
    if (config.estimator_samples or config.noise_spectrum_steps) and not config.noise_probes:
        raise InputError(
            "estimator_samples and noise_spectrum_steps need noise_probes >= 2 (the shared "
            "probes of (b), (c) and the scale s of the semicircle); set noise_probes=8 or "
            "set them to 0"
        )
    check_bool("compare_test", config.compare_test)
    for name in ("params", "model", "data_dir"):
        value = getattr(config, name)
        if isinstance(value, os.PathLike) and name == "data_dir":
            set_(config, name, value := os.fspath(value))
        if value is not None and not isinstance(value, str):
            raise InputError(
                f"{name} must be a string or None, got {value!r} ({type(value).__name__}); "
                "e.g. params='net.2.*', model='mlp', data_dir='~/data'"
            )
    set_(config, "seed", check_seed(config.seed))
    set_(config, "dtype", check_dtype(config.dtype))
    set_(config, "device", check_device(config.device))


@dataclass(frozen=True)
class TrueVsEmpiricalConfig:
    """Everything that fixes a True-vs-Empirical comparison (with the seed, it is reproducible).

    Attributes:
        checkpoint: path of a ``checkpoint.pt`` written by :func:`curvscope.training.train`.
        matrix: ``"hessian"`` (paper 000), ``"ggn"``, ``"fisher"`` (exact) or ``"covariance"``
            (per-sample gradient covariance, the SGD noise).
        views: K, frozen augmentation views per training sample (paper 000: 30 on CIFAR).
        num_steps: Lanczos steps m of each SLQ run.
        num_probes: SLQ probes per set (paper 000 uses one).
        noise_probes: Rademacher probes of the split-half noise estimate (§1.4(a)); 0 skips it.
            They are also the k shared probes of the per-sample estimators.
        estimator_samples: n_s, training samples of the per-sample estimators (b), (c) of
            §1.4 (one single-sample block product each); 0 (the default, as in
            ``curvscope run``) skips them.
        noise_spectrum_steps: Lanczos steps of SLQ on ``D = (H_A - H_B)/2`` of the empirical
            split, compared with the semicircle of radius ``2s`` (Assumption 1); each step is
            one data pass; 0 (the default) skips it.
        compare_test: also compute the spectrum over the test set.
        params: ``None`` (all parameters) or a glob pattern / names of a subset (``"fc2.*"``).
        model: the model name the checkpoint must hold (``None``: any).
        data_dir: overrides the checkpoint's data folder (CIFAR moved to another machine).
        batch_size: batch size of every data pass.
        seed: fixes the frozen views, the SLQ probes and the split of the noise estimate.
        device: where the products run.
        dtype: precision of the products (``"float32"`` or ``"float64"``).
    """

    checkpoint: str
    matrix: Literal["hessian", "ggn", "fisher", "covariance"] = "hessian"
    views: int = 9
    num_steps: int = 80
    num_probes: int = 3
    noise_probes: int = 8
    estimator_samples: int = 0
    noise_spectrum_steps: int = 0
    compare_test: bool = True
    params: str | None = None
    model: str | None = None
    data_dir: str | None = None
    batch_size: int = 2048
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        _check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return dataclasses.asdict(self)


def make_operator(
    matrix: str,
    model: torch.nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    params: str | None = None,
    dtype: torch.dtype | None = None,
    num_data: int | None = None,
) -> Any:
    """The curvature operator ``matrix`` of ``model`` over ``data`` (an entry of :data:`MATRICES`)."""
    if matrix not in MATRICES:
        raise InputError(f"unknown matrix {matrix!r}; expected one of {', '.join(MATRICES)}")
    return MATRICES[matrix](model, loss_fn, data, params=params, dtype=dtype, num_data=num_data)


def theorem1_comparison(
    empirical: SetSummary,
    augmented: SetSummary,
    *,
    noise_empirical: NoiseEstimate | None,
    noise_augmented: NoiseEstimate | None,
    num_params: int,
    num_train: int,
    views: int,
) -> Theorem1Comparison:
    """Theorem 1 (spec §1.3) next to the observed shrinkage, from summaries and noise estimates.

    - forward: treating the augmented matrix as ``H_true``, its extremes
      ``[lambda_P, lambda_1]`` are pushed out by the empirical noise scale ``s``:
      ``lambda + s^2/lambda`` where ``|lambda| > s``, else the edge ``±2s``
      (:func:`~curvscope.rmt.spiked_extremes`);
    - reverse: the true extremes implied by the observed empirical ones,
      ``(lambda' + sign(lambda') sqrt(lambda'^2 - 4 s^2)) / 2`` where ``|lambda'| > 2s``
      (:func:`~curvscope.rmt.deflated_extremes`), to compare with the augmented ones.

    ``q = P/N``; the augmented set has the nominal ``q = P/(N K)`` and an effective sample count
    ``N_eff = N s_emp^2 / s_aug^2`` (the paper's ``N_eff < N K``, §1.4).

    ``empirical`` and ``augmented`` need only ``smallest`` and ``largest``; the noise estimates
    only ``noise_scale`` and ``s2``.
    """
    emp = (float(empirical.smallest), float(empirical.largest))
    aug = (float(augmented.smallest), float(augmented.largest))
    ratio = tuple((abs(e) / abs(a)) if a != 0 else math.inf for e, a in zip(emp, aug))
    shrinks = bool(abs(aug[0]) < abs(emp[0]) and abs(aug[1]) < abs(emp[1]))
    forward = reverse = effective = None
    if noise_empirical is not None and noise_empirical.noise_scale > 0:
        s = float(noise_empirical.noise_scale)
        spikes = (aug[1], aug[0])
        nonzero = [v for v in spikes if v != 0]
        if nonzero:
            fwd = spiked_extremes(nonzero, scale=s)
            forward = Theorem1Forward(
                noise_scale=s,
                spikes=spikes,
                predicted_smallest=float(fwd.smallest),
                predicted_largest=float(fwd.largest),
                separated=tuple(bool(b) for b in fwd.separated),
                smallest_from_noise=bool(fwd.smallest_from_noise),
                largest_from_noise=bool(fwd.largest_from_noise),
                observed_smallest=emp[0],
                observed_largest=emp[1],
            )
        rev = deflated_extremes(list(emp), scale=s)
        reverse = Theorem1Reverse(
            noise_scale=s,
            predicted_true=tuple(float(v) for v in rev.true),
            resolved=tuple(bool(b) for b in rev.resolved),
            bound=float(rev.bound),
            notes=tuple(rev.notes),
            observed_augmented=aug,
        )
        if noise_augmented is not None and noise_augmented.s2 > 0:
            effective = num_train * noise_empirical.s2 / noise_augmented.s2
    return Theorem1Comparison(
        num_params=num_params,
        num_train=num_train,
        views=views,
        q_empirical=num_params / num_train,
        q_augmented_nominal=num_params / (num_train * views),
        observed=ObservedExtremes(empirical=emp, augmented=aug),
        observed_ratio_empirical_over_augmented=ratio,  # type: ignore[arg-type]
        shrinks=shrinks,
        noise_empirical=noise_empirical,
        noise_augmented=noise_augmented,
        forward=forward,
        reverse=reverse,
        effective_num_augmented=effective,
    )


def _checkpoint_and_data(config: TrueVsEmpiricalConfig) -> tuple[Any, dict[str, Any]]:
    """The checkpoint (model checked) and the options that rebuild its data as training saw
    it (``config.data_dir`` overrides the recorded folder)."""
    ckpt = load_checkpoint(config.checkpoint, model=config.model, map_location=config.device)
    tc = ckpt.config
    data_dir = config.data_dir if config.data_dir is not None else tc.data_dir
    return ckpt, {"data_dir": data_dir, "seed": tc.seed, **tc.data_options}


def _subset_indices(dataset: Any) -> np.ndarray | None:
    indices = getattr(dataset, "subset_indices", None)
    return None if indices is None else np.asarray(indices, dtype=np.int64).copy()


def _rank_loader(dataset: Any, batch_size: int, indices: torch.Tensor | None = None) -> Any:
    """Batches over ``indices`` (default: all samples); under ``torch.distributed`` this rank's
    share only, since the operators all-reduce the sums and counts of every rank."""
    if not is_distributed():
        return (
            dataset.loader(batch_size)
            if indices is None
            else BatchLoader(dataset, batch_size, indices=indices)
        )
    return BatchLoader(
        dataset, batch_size, indices=shard(indices if indices is not None else len(dataset))
    )


def _check_finite_weights(model: torch.nn.Module, where: str) -> None:
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(
                f"the weights of {where} are not finite ({name} holds NaN or inf); the "
                "curvature is undefined there: use a checkpoint from before training diverged"
            )


def _check_finite_loss(
    loss: float, name: str, where: str, dtype: torch.dtype, *, classification: bool
) -> None:
    """Refuse a state whose curvature the dtype cannot represent.

    A non-finite loss has no curvature. A loss past sqrt(max) overflows the products (they
    square the scale). A mean cross-entropy past -log(tiny) means softmax probabilities below
    the smallest normal number: their curvature p(1 - p) underflows to exactly 0, so the
    spectrum would be a spike at 0 that says nothing about the network (weights x 1e20 do
    this). 87 in float32, 708 in float64; chance level is log(classes), a few units.
    """
    info = torch.finfo(dtype)
    saturated = classification and loss > -math.log(info.tiny)
    if not math.isfinite(loss) or loss > math.sqrt(info.max) or saturated:
        why = (
            "the softmax is saturated, so the curvature underflows to exactly zero"
            if saturated and math.isfinite(loss)
            else f"beyond what {dtype} resolves (the products would overflow)"
        )
        raise NonFiniteError(
            f"the loss of {where} on the {name} set is {loss:.4g}: {why}. Check the "
            "checkpoint's weights (did training diverge?) or use --dtype float64"
        )


def preflight(
    config: TrueVsEmpiricalConfig, model: torch.nn.Module, train_set: TensorDataset
) -> int:
    """Refuse, before any work, what :func:`true_vs_empirical` could not finish.

    Checks that the data has an augmentation family (the augmented set needs one) and that the
    memory the study holds at once fits on the device: the Lanczos basis,
    ``num_probes * (num_steps + 1) * P`` numbers (the sets run one after the other), plus, with
    a noise estimate, the random split of the N*K augmented samples into halves (a permutation
    and the two index halves: 16 bytes per sample). Returns the predicted bytes.

    Raises:
        InputError: data without an augmentation family (e.g. blobs, random).
        MemoryLimitError: it would not fit; the message gives the numbers.
    """
    AugmentedViews(train_set, views=config.views, seed=config.seed)
    layout, _ = select_parameters(model, config.params)
    size = layout.size
    basis = basis_bytes(
        config.num_probes, min(config.num_steps, size), size, getattr(torch, config.dtype)
    )
    split = 16 * len(train_set) * config.views if config.noise_probes else 0
    # the per-sample products H_i V are kept (float64) for the jackknife
    split += 8 * config.estimator_samples * config.noise_probes * size
    available = available_memory(torch.device(config.device))
    if basis + split > available:
        raise MemoryLimitError(
            f"this study needs {format_bytes(basis + split)} at once but "
            f"{format_bytes(available)} is available on {config.device}: the Lanczos basis of "
            f"{config.num_probes} probes x {min(config.num_steps, size) + 1} vectors x "
            f"P = {size:,} takes {format_bytes(basis)}, the noise split of N*K = "
            f"{len(train_set):,} x {config.views:,} augmented samples {format_bytes(split)}; "
            "use fewer probes, steps or views (or --noise-probes 0), or select fewer parameters "
            "with --params"
        )
    return basis + split


def true_vs_empirical(
    config: TrueVsEmpiricalConfig,
    *,
    progress: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
) -> TrueVsEmpiricalResult:
    """Empirical, augmented ("True") and test spectra of a checkpoint's model (paper 000).

    Loads the checkpoint (checking the model name when ``config.model`` is set), rebuilds its
    training and test sets exactly as training did, and runs SLQ on the chosen matrix over the
    training set, its K frozen views (:class:`~curvscope.data.AugmentedViews`, seeded by
    ``config.seed``) and optionally the test set; then the split-half noise scales and the
    Theorem-1 comparison (:func:`theorem1_comparison`).

    Args:
        config: the comparison.
        progress: show progress bars (Lanczos steps, noise estimate) on stderr.
        state_dir: a folder for resumable state: each SLQ run checkpoints its Lanczos state
            there every ``checkpoint_every`` steps, and each finished noise estimate is saved,
            so a rerun with the same ``state_dir`` resumes where an interrupted one stopped and
            returns the same result. The Lanczos checkpoints refuse other weights or data.
        checkpoint_every: Lanczos steps between checkpoints (with ``state_dir``).

    Raises:
        InputError: a missing or foreign checkpoint, a checkpoint of another model, missing data,
            or data without an augmentation family.
        NonFiniteError: the weights, a loss or a product are NaN or infinite.
    """
    start = time.perf_counter()
    state = Path(state_dir) if state_dir is not None else None
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    ckpt, kwargs = _checkpoint_and_data(config)
    tc = ckpt.config
    train_set: TensorDataset = load_dataset(tc.data, "train", **kwargs)
    test_set = load_dataset(tc.data, "test", **kwargs) if config.compare_test else None
    preflight(config, ckpt.model, train_set)
    augmented = AugmentedViews(train_set, views=config.views, seed=config.seed)
    loss_fn = loss_function(tc, train_set)
    model = ckpt.model
    _check_finite_weights(model, f"checkpoint {config.checkpoint!r}")
    model_dtype = next(model.parameters()).dtype
    op_dtype = getattr(torch, config.dtype)
    bs = config.batch_size

    sets: dict[str, Any] = {"empirical": train_set, "augmented": augmented}
    if test_set is not None:
        sets["test"] = test_set
    spectra: dict[str, SpectralDensity] = {}
    summaries: dict[str, SetSummary] = {}
    num_params = 0
    for name, ds in sets.items():
        tick = time.perf_counter()
        loss, acc = evaluate(
            model, ds, loss_fn, batch_size=bs, device=config.device, dtype=model_dtype
        )
        _check_finite_loss(
            loss,
            name,
            f"checkpoint {config.checkpoint!r}",
            op_dtype,
            classification=ds.task == "classification",
        )
        op = make_operator(
            config.matrix,
            model,
            loss_fn,
            _rank_loader(ds, bs),
            params=config.params,
            dtype=op_dtype,
            num_data=len(ds),
        )
        num_params = int(op.shape[0])
        if progress:
            tqdm.write(
                f"{name}: {config.matrix} over {len(ds):,} samples, P = {num_params:,}",
                file=sys.stderr,
            )
        density = slq(
            op,
            num_steps=config.num_steps,
            num_probes=config.num_probes,
            seed=config.seed,
            progress=progress,
            checkpoint=None if state is None else state / f"lanczos_{name}.pt",
            checkpoint_every=checkpoint_every,
        )
        spectra[name] = density
        summaries[name] = summarize_density(density, num_samples=len(ds), loss=loss, accuracy=acc)
        timings[name] = time.perf_counter() - tick

    noise: dict[str, NoiseEstimate | None] = {"empirical": None, "augmented": None}
    noise_spectrum = per_sample = None
    if config.noise_probes:
        tick = time.perf_counter()
        for name in ("empirical", "augmented"):
            saved = None if state is None else state / f"noise_{name}"
            half_a, half_b = (
                _rank_loader(h.dataset, bs, h.indices)
                for h in split_halves(sets[name], seed=config.seed, batch_size=bs)
            )
            ops = [
                make_operator(
                    config.matrix, model, loss_fn, h, params=config.params, dtype=op_dtype
                )
                for h in (half_a, half_b)
            ]
            if saved is not None and saved.with_suffix(".json").is_file():
                noise[name] = NoiseEstimate.load(saved)  # exact floats, NaN included
                if name == "empirical" and config.noise_spectrum_steps:
                    noise_spectrum = _noise_spectrum(config, ops, noise[name], state, progress)
                continue
            estimate = split_half_noise(
                ops[0],
                ops[1],
                num_data=len(train_set),
                half_size=len(train_set) // 2,
                num_probes=config.noise_probes,
                seed=config.seed + 1,
            )
            noise[name] = estimate
            if saved is not None:
                estimate.save(saved)
            if name == "empirical" and config.noise_spectrum_steps:
                noise_spectrum = _noise_spectrum(config, ops, estimate, state, progress)
            if progress:
                tqdm.write(
                    f"noise scale ({name}, split-half): s = {estimate.noise_scale:.4g}",
                    file=sys.stderr,
                )
        timings["noise"] = time.perf_counter() - tick
    if config.estimator_samples:
        tick = time.perf_counter()
        per_sample = _per_sample(config, model, loss_fn, train_set, op_dtype, state)
        timings["per_sample_noise"] = time.perf_counter() - tick
        if progress:
            tqdm.write(
                f"sigma^2 per sample: (b) {per_sample.sigma2_frobenius:.4g}, (c) "
                f"{per_sample.sigma2_quadratic:.4g}, (c)/(b) {per_sample.ratio:.3g}",
                file=sys.stderr,
            )

    theory = theorem1_comparison(
        summaries["empirical"],
        summaries["augmented"],
        noise_empirical=noise["empirical"],
        noise_augmented=noise["augmented"],
        num_params=num_params,
        num_train=len(train_set),
        views=config.views,
    )
    timings["total"] = time.perf_counter() - start
    return TrueVsEmpiricalResult(
        config=config.to_dict(),
        train_config=tc.to_dict(),
        model=ckpt.spec.to_dict(),
        history=[dict(h) for h in ckpt.history],
        num_params=num_params,
        num_train=len(train_set),
        num_test=len(test_set) if test_set is not None else 0,
        num_augmented=len(augmented),
        spectra=spectra,
        summaries=summaries,
        theory=theory,
        weights={k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()},
        data=DataIdentity(
            name=tc.data,
            options=dict(tc.data_options),
            seed=tc.seed,
            data_dir=None if kwargs["data_dir"] is None else str(kwargs["data_dir"]),
            views=config.views,
            view_seed=config.seed,
            subset_indices=_subset_indices(train_set),
        ),
        timings=timings,
        device=str(config.device),
        per_sample_noise=per_sample,
        noise_spectrum=noise_spectrum,
    )


def _noise_spectrum(
    config: TrueVsEmpiricalConfig,
    ops: list[Any],
    estimate: NoiseEstimate,
    state: Path | None,
    progress: bool,
) -> NoiseSpectrumCheck:
    """SLQ on D = (H_A - H_B)/2 of the empirical split, beside the semicircle of radius 2 s_D
    (s_D^2 = ||D||_F^2 / P, the split-half estimate before its rescaling to N samples)."""
    density = slq(
        HalfDifferenceOperator(ops[0], ops[1]),
        num_steps=config.noise_spectrum_steps,
        num_probes=config.num_probes,
        seed=config.seed + 3,
        progress=progress,
        checkpoint=None if state is None else state / "lanczos_difference.pt",
    )
    s2_d = estimate.s2 * estimate.num_data / (2 * estimate.half_size)
    return noise_spectrum_check(density, scale=math.sqrt(max(s2_d, 0.0)))


def _per_sample(
    config: TrueVsEmpiricalConfig,
    model: torch.nn.Module,
    loss_fn: Any,
    train_set: TensorDataset,
    op_dtype: torch.dtype,
    state: Path | None,
) -> PerSampleNoiseEstimate:
    """Estimators (b), (c) on ``estimator_samples`` training samples drawn without replacement
    (seed ``config.seed + 2``), each matrix the study's over one sample."""
    saved = None if state is None else state / "noise_per_sample"
    if saved is not None and saved.with_suffix(".json").is_file():
        return PerSampleNoiseEstimate.load(saved)
    count = min(config.estimator_samples, len(train_set))
    order = torch.randperm(len(train_set), generator=make_generator(config.seed + 2))[:count]
    ops = (
        make_operator(
            config.matrix,
            model,
            loss_fn,
            _rank_loader(train_set, 1, order[i : i + 1]),
            params=config.params,
            dtype=op_dtype,
            num_data=1,
        )
        for i in range(count)
    )
    estimate = per_sample_noise(
        ops, num_data=len(train_set), num_probes=config.noise_probes, seed=config.seed + 1
    )
    if saved is not None:
        estimate.save(saved)
    return estimate


def epoch_spectrum(
    config: TrueVsEmpiricalConfig,
    epoch: int,
    *,
    progress: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
) -> EpochSpectrum:
    """The empirical SLQ spectrum of the snapshot ``config.checkpoint`` taken after ``epoch``
    (the training set only; resumable through a Lanczos checkpoint in ``state_dir``)."""
    ckpt, kwargs = _checkpoint_and_data(config)
    tc = ckpt.config
    train_set: TensorDataset = load_dataset(tc.data, "train", **kwargs)
    loss_fn = loss_function(tc, train_set)
    model = ckpt.model
    where = f"snapshot {config.checkpoint!r}"
    _check_finite_weights(model, where)
    op_dtype = getattr(torch, config.dtype)
    model_dtype = next(model.parameters()).dtype
    loss, acc = evaluate(
        model,
        train_set,
        loss_fn,
        batch_size=config.batch_size,
        device=config.device,
        dtype=model_dtype,
    )
    _check_finite_loss(
        loss, "empirical", where, op_dtype, classification=train_set.task == "classification"
    )
    op = make_operator(
        config.matrix,
        model,
        loss_fn,
        _rank_loader(train_set, config.batch_size),
        params=config.params,
        dtype=op_dtype,
        num_data=len(train_set),
    )
    state = Path(state_dir) if state_dir is not None else None
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
    density = slq(
        op,
        num_steps=config.num_steps,
        num_probes=config.num_probes,
        seed=config.seed,
        progress=progress,
        checkpoint=None if state is None else state / f"lanczos_epoch-{epoch:04d}.pt",
        checkpoint_every=checkpoint_every,
    )
    summary = summarize_density(density, num_samples=len(train_set), loss=loss, accuracy=acc)
    return EpochSpectrum(epoch=int(epoch), summary=summary, density=density)
