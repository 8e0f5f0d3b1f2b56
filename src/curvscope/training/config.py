"""The frozen configuration of a training run; a checkpoint records it in full."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from curvscope.errors import InputError
from curvscope.training.schedules import SCHEDULE_PRESETS

__all__ = ["DTYPES", "TrainConfig"]

DTYPES = ("float32", "float64")


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
        loss: ``"auto"`` (cross-entropy for classes, MSE for real targets), ``"cross_entropy"``
            or ``"mse"``.
        preset: the schedule preset the values came from, recorded for provenance.
        device, dtype: where and in what precision to train.
        eval_batch_size: batch size of the per-epoch train/test evaluation.
    """

    batch_size: int
    weight_decay: float
    model: str = "mlp"
    data: str = "digits"
    epochs: int = 30
    lr: float = 0.1
    final_ratio: float = 0.01
    momentum: float = 0.9
    augment: bool = True
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    loss: Literal["auto", "cross_entropy", "mse"] = "auto"
    preset: str = "custom"
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise InputError(f"lr (alpha_0) must be positive, got {self.lr!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise InputError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0.0 <= self.final_ratio <= 1.0:
            raise InputError(f"final_ratio must lie in [0, 1], got {self.final_ratio!r}")
        if self.loss not in ("auto", "cross_entropy", "mse"):
            raise InputError(f"loss must be 'auto', 'cross_entropy' or 'mse', got {self.loss!r}")
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"training config has unknown keys {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
