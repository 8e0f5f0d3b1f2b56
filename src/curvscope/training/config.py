"""The frozen configuration of a training run; a checkpoint records it in full."""

from __future__ import annotations

import dataclasses
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from curvscope._validate import (
    DTYPES,
    check_bool,
    check_device,
    check_dtype,
    check_int,
    check_real,
    check_seed,
)
from curvscope.data.registry import DATASETS
from curvscope.errors import InputError
from curvscope.models.registry import ModelSpec
from curvscope.training.defaults import DIGITS_DEFAULTS
from curvscope.training.schedules import SCHEDULE_PRESETS

__all__ = ["DTYPES", "LOSSES", "TrainConfig"]

LOSSES = ("auto", "cross_entropy", "mse", "mse_onehot")

# False while a recorded config is read back (see from_dict).
_CHECK_AVAILABLE: ContextVar[bool] = ContextVar("_CHECK_AVAILABLE", default=True)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the seed, the result is reproducible).

    Weight decay and batch size are not stated in paper 000, so they have no default here.

    Attributes:
        batch_size: SGD minibatch size.
        weight_decay: L2 coefficient of SGD's weight decay.
        model: a name from :data:`curvscope.models.MODELS`.
        data: a name from :data:`curvscope.data.DATASETS`.
        epochs: T, the number of epochs.
        lr: alpha_0, the initial learning rate of the eq.-11 schedule.
        final_ratio: r, the final learning rate as a fraction of alpha_0.
        momentum: SGD momentum (0.9 in paper 000).
        augment: train on random transforms from the dataset's family (random crop + flip for
            CIFAR, ±1-pixel shifts for digits); ignored for data without one.
        seed: fixes the initial weights, the data split and every shuffle/augmentation draw.
        model_options: constructor options of the model (e.g. ``{"hidden": [32]}``).
        data_options: options of :func:`curvscope.data.load_dataset`.
        data_dir: folder of the CIFAR files.
        loss: ``"auto"`` (cross-entropy for classes, MSE for real targets), ``"cross_entropy"``,
            ``"mse"`` or ``"mse_onehot"`` (MSE between the outputs and one-hot class targets,
            paper 003's MSE variant; see :func:`~curvscope.training.loss_function`).
        label_smoothing: epsilon of label-smoothed cross-entropy (paper 002); only with
            ``loss`` ``"cross_entropy"`` (or ``"auto"`` on classes).
        save_at: epochs after which a snapshot checkpoint is written to
            ``OUT/snapshots/epoch-NNNN.pt`` (0 = the initial weights); it changes no result.
        preset: the schedule preset the values came from, recorded for provenance.
        device, dtype: where and in what precision to train.
        eval_batch_size: batch size of the per-epoch train/test evaluation.
    """

    batch_size: int
    weight_decay: float
    model: str = "mlp"
    data: str = "digits"
    epochs: int = DIGITS_DEFAULTS.epochs
    lr: float = DIGITS_DEFAULTS.lr
    final_ratio: float = DIGITS_DEFAULTS.final_ratio
    momentum: float = DIGITS_DEFAULTS.momentum
    augment: bool = True
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    loss: Literal["auto", "cross_entropy", "mse", "mse_onehot"] = "auto"
    preset: str = "custom"
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    eval_batch_size: int = 1000
    label_smoothing: float = 0.0
    save_at: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the canonical form of each checked value
        for name, hint in (
            ("batch_size", "e.g. 32"),
            ("epochs", "e.g. 40"),
            ("eval_batch_size", "e.g. 1000"),
        ):
            set_(self, name, check_int(name, getattr(self, name), minimum=1, hint=hint))
        set_(self, "lr", check_real("lr (alpha_0)", self.lr, low=0, low_open=True, hint="e.g. 0.1"))
        set_(self, "momentum", check_real("momentum", self.momentum, low=0, high=1, high_open=True))
        set_(self, "weight_decay", check_real("weight_decay", self.weight_decay, low=0))
        set_(self, "final_ratio", check_real("final_ratio", self.final_ratio, low=0, high=1))
        set_(self, "augment", check_bool("augment", self.augment))
        set_(self, "seed", check_seed(self.seed))
        for name in ("model", "data", "preset"):
            if not isinstance(getattr(self, name), str):
                raise InputError(
                    f"{name} must be a name (a string), got {getattr(self, name)!r} "
                    f"({type(getattr(self, name)).__name__}); e.g. model='mlp', data='digits'"
                )
        if self.data not in DATASETS:
            raise InputError(
                f"unknown dataset {self.data!r}; expected one of {', '.join(DATASETS)}"
            )
        ModelSpec.check_name(self.model)
        for name in ("model_options", "data_options"):
            if not isinstance(getattr(self, name), dict):
                raise InputError(
                    f"{name} must be a dict of keyword options, got {getattr(self, name)!r}; "
                    'e.g. {"hidden": [32]}'
                )
        if isinstance(self.data_dir, os.PathLike):
            set_(self, "data_dir", os.fspath(self.data_dir))
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise InputError(
                f"data_dir must be a folder path or None, got {self.data_dir!r} "
                f"({type(self.data_dir).__name__})"
            )
        if self.loss not in LOSSES:
            raise InputError(
                f"loss must be one of {', '.join(map(repr, LOSSES))}, got {self.loss!r}"
            )
        set_(
            self,
            "label_smoothing",
            check_real("label_smoothing", self.label_smoothing, low=0, high=1, hint="e.g. 0.1"),
        )
        if self.label_smoothing > 0 and self.loss in ("mse", "mse_onehot"):
            raise InputError(
                f"label_smoothing={self.label_smoothing:g} applies to cross-entropy only, but "
                f"loss is {self.loss!r}; use loss='cross_entropy' or label_smoothing=0"
            )
        set_(self, "save_at", _check_save_at(self.save_at))
        if self.save_at and self.save_at[-1] > self.epochs:
            raise InputError(
                f"save_at asks for a snapshot after epoch {self.save_at[-1]}, but the run has "
                f"epochs={self.epochs}; keep save_at within 0..{self.epochs}"
            )
        set_(self, "dtype", check_dtype(self.dtype))
        set_(self, "device", check_device(self.device, available=_CHECK_AVAILABLE.get()))

    @classmethod
    def from_preset(cls, preset: str, **fields: Any) -> TrainConfig:
        """A config with alpha_0, T and r from a named preset of paper 000; ``fields`` override.

        Example:
            >>> TrainConfig.from_preset("normal", batch_size=128, weight_decay=3e-4).epochs
            225
        """
        if preset not in SCHEDULE_PRESETS:
            raise InputError(
                f"unknown schedule preset {preset!r}; expected one of {', '.join(SCHEDULE_PRESETS)}"
            )
        p = SCHEDULE_PRESETS[preset]
        values = {"lr": p.lr0, "epochs": p.epochs, "final_ratio": p.final_ratio, "preset": preset}
        values.update(fields)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`InputError`."""
        if not isinstance(d, dict):
            raise InputError(
                f"a training config must be a dict (as TrainConfig.to_dict writes it), got "
                f"{type(d).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(
                f"training config has unknown keys {sorted(unknown)}; expected only "
                f"{', '.join(sorted(known))} (was it written by another curvscope version?)"
            )
        # A checkpoint trained on a GPU must stay readable on a CPU-only machine: the recorded
        # device is checked for spelling only (train() checks the device it will run on).
        token = _CHECK_AVAILABLE.set(False)
        try:
            return cls(**d)
        finally:
            _CHECK_AVAILABLE.reset(token)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _check_save_at(value: Any) -> tuple[int, ...]:
    """Sorted distinct epochs >= 0 (a list read back from JSON is accepted)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise InputError(
            f"save_at must be a tuple of epochs (integers >= 0), got {value!r}; e.g. (0, 10, 50)"
        )
    epochs = [check_int("save_at epoch", e, minimum=0, hint="e.g. (0, 10, 50)") for e in value]
    return tuple(sorted(set(epochs)))
