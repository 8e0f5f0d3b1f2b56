"""curvscope.training: SGD with the paper-000 schedule (eq. 11), augmentation, checkpoints."""

from curvscope.training.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from curvscope.training.config import DTYPES, TrainConfig
from curvscope.training.loop import TrainResult, evaluate, loss_function, train
from curvscope.training.schedules import (
    SCHEDULE_PRESETS,
    SchedulePreset,
    paper000_learning_rate,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DTYPES",
    "SCHEDULE_PRESETS",
    "Checkpoint",
    "SchedulePreset",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_checkpoint",
    "loss_function",
    "paper000_learning_rate",
    "save_checkpoint",
    "train",
]
