"""curvscope.training: SGD with the paper-000 schedule, full-batch GD and J_g descent,
callbacks and snapshots, replay of iterates, an ensemble trainer, checkpoints."""

from curvscope.training.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from curvscope.training.config import DTYPES, LOSSES, TrainConfig
from curvscope.training.defaults import DIGITS_DEFAULTS, TrainingDefaults
from curvscope.training.ensemble import EnsembleResult, ensemble_order, train_ensemble
from curvscope.training.full_batch import DescentResult, grad_norm_descent, gradient_descent
from curvscope.training.loop import (
    Callback,
    TrainResult,
    evaluate,
    flat_parameters,
    loss_function,
    momentum_buffer,
    snapshot_path,
    train,
)
from curvscope.training.losses import OneHotMSELoss, one_hot_batches
from curvscope.training.replay import Iterate, replay
from curvscope.training.schedules import (
    SCHEDULE_PRESETS,
    SchedulePreset,
    paper000_learning_rate,
)

__all__ = [
    # checkpoints
    "CHECKPOINT_FORMAT",
    # configuration
    "DIGITS_DEFAULTS",
    "DTYPES",
    "LOSSES",
    "SCHEDULE_PRESETS",
    # SGD runs, callbacks, snapshots, replay
    "Callback",
    "Checkpoint",
    # full batch
    "DescentResult",
    "EnsembleResult",
    "Iterate",
    # losses
    "OneHotMSELoss",
    "SchedulePreset",
    "TrainConfig",
    "TrainResult",
    "TrainingDefaults",
    "ensemble_order",
    "evaluate",
    "flat_parameters",
    "grad_norm_descent",
    "gradient_descent",
    "load_checkpoint",
    "loss_function",
    "momentum_buffer",
    "one_hot_batches",
    "paper000_learning_rate",
    "replay",
    "save_checkpoint",
    "snapshot_path",
    "train",
    "train_ensemble",
]
