"""curvscope.training: SGD with the paper-000 schedule, full-batch GD and J_g descent,
callbacks and snapshots, replay of iterates, an ensemble trainer, checkpoints, and the GD
projection / line connectedness / projected paths of paper 002."""

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
from curvscope.training.projection import (
    ProjectedPath,
    Projection,
    line_connected,
    line_losses,
    model_loss,
    project_to_threshold,
    projected_path,
)
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
    # projection to the valley floor (paper 002)
    "ProjectedPath",
    "Projection",
    "SchedulePreset",
    "TrainConfig",
    "TrainResult",
    "TrainingDefaults",
    "ensemble_order",
    "evaluate",
    "flat_parameters",
    "grad_norm_descent",
    "gradient_descent",
    "line_connected",
    "line_losses",
    "load_checkpoint",
    "loss_function",
    "model_loss",
    "momentum_buffer",
    "one_hot_batches",
    "paper000_learning_rate",
    "project_to_threshold",
    "projected_path",
    "replay",
    "save_checkpoint",
    "snapshot_path",
    "train",
    "train_ensemble",
]
