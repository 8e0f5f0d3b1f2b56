"""The learning-rate schedule of paper 000 eq. 11 and its presets (spec/theory.md §1.8)."""

from __future__ import annotations

from dataclasses import dataclass

from curvscope.errors import InputError

__all__ = ["SCHEDULE_PRESETS", "SchedulePreset", "paper000_learning_rate"]


def paper000_learning_rate(epoch: int, *, lr0: float, epochs: int, final_ratio: float) -> float:
    """Learning rate at a 0-based ``epoch`` under paper 000 eq. 11 (Izmailov et al.'s schedule).

    With ``x = epoch / epochs``:

    .. math::
        \\alpha(t) = \\begin{cases} \\alpha_0 & x \\le 0.5 \\\\
        \\alpha_0 [1 - (1 - r)(x - 0.5)/0.4] & 0.5 < x \\le 0.9 \\\\
        \\alpha_0 r & x > 0.9 \\end{cases}

    Continuous and non-increasing; evaluated once per epoch (spec/theory.md §1.8).

    Args:
        epoch: t, the 0-based epoch index.
        lr0: alpha_0, the initial learning rate.
        epochs: T, the total number of epochs.
        final_ratio: r, the final learning rate as a fraction of alpha_0.
    """
    if epochs < 1:
        raise InputError(f"epochs must be a positive integer, got {epochs!r}")
    if not 0.0 <= final_ratio <= 1.0:
        raise InputError(f"final_ratio r must lie in [0, 1], got {final_ratio!r}; e.g. 0.01")
    if epoch < 0:
        raise InputError(f"epoch must be >= 0, got {epoch}")
    x = epoch / epochs
    if x <= 0.5:
        return lr0
    if x <= 0.9:
        return lr0 * (1.0 - (1.0 - final_ratio) * (x - 0.5) / 0.4)
    return lr0 * final_ratio


@dataclass(frozen=True)
class SchedulePreset:
    """alpha_0, T and r of a named schedule of paper 000."""

    lr0: float
    epochs: int
    final_ratio: float


#: Paper 000 §6: "normal" (alpha_0 = 0.1, T = 225) and "overfit" (alpha_0 = 0.001, T = 1000),
#: both with r = 0.01; VGG16-BN's normal schedule uses alpha_0 = 0.05, T = 300.
SCHEDULE_PRESETS: dict[str, SchedulePreset] = {
    "normal": SchedulePreset(lr0=0.1, epochs=225, final_ratio=0.01),
    "overfit": SchedulePreset(lr0=0.001, epochs=1000, final_ratio=0.01),
    "vgg16bn-normal": SchedulePreset(lr0=0.05, epochs=300, final_ratio=0.01),
}
