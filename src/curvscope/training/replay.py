"""Deterministic replay of an SGD run's iterates from a checkpoint (paper 002's path analyses).

:func:`~curvscope.training.train` draws every random choice of epoch t (sample order,
augmentation, dropout) from a generator seeded by ``(seed, t)``, so the sampler state at an
epoch boundary is the pair (seed, epoch) a checkpoint records; with the weights and the SGD
state (momentum buffers) saved beside it, the steps that follow are a function of the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.training.checkpoint import read_checkpoint_dict
from curvscope.training.config import TrainConfig
from curvscope.training.loop import _epoch_steps, _setup, flat_parameters, momentum_buffer

__all__ = ["Iterate", "replay"]


@savable
@dataclass(frozen=True)
class Iterate:
    """One SGD iterate of a replayed run.

    Attributes:
        epoch: the epoch (0-based) the step belongs to.
        step: batch slots since the start of training (``epoch * steps_per_epoch + batch + 1``;
            the same count :class:`~curvscope.training.Callback` receives).
        lr: the learning rate of the step.
        loss: the minibatch loss before the step.
        parameters: the weights after the step, one vector in the curvature operators' order.
        momentum: SGD's momentum buffer after the step, aligned with ``parameters``.
    """

    epoch: int
    step: int
    lr: float
    loss: float
    parameters: torch.Tensor
    momentum: torch.Tensor


def replay(
    checkpoint: str | Path,
    *,
    epochs: int | None = None,
    every: int = 1,
    data_dir: str | None = None,
) -> Iterator[Iterate]:
    """Repeat the SGD steps that followed ``checkpoint``, yielding every ``every``-th iterate.

    The iterates equal those of the original run bit for bit (same device and dtype): the
    checkpoint holds the weights, the momentum buffers and the epoch, and the epoch fixes the
    sampler order and every other random draw. Snapshots (``TrainConfig.save_at``) are the
    natural starting points.

    Args:
        checkpoint: a checkpoint or snapshot written by :func:`~curvscope.training.train`.
        epochs: how many epochs to replay; default up to the config's last epoch.
        every: yield the iterates whose ``step`` is a multiple of ``every``.
        data_dir: where the data lives now, if it moved.

    Example:
        >>> for it in replay("runs/a/snapshots/epoch-0010.pt", epochs=1, every=50):  # doctest: +SKIP
        ...     print(it.step, it.parameters.norm())
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InputError(f"every must be an integer >= 1 (yield every k-th step), got {every!r}")
    payload = read_checkpoint_dict(checkpoint)
    config = TrainConfig.from_dict(payload["config"])
    if data_dir is not None:
        config = config.replace(data_dir=str(data_dir))
    start = int(payload["epoch"])
    left = config.epochs - start
    if epochs is None:
        epochs = left
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= left:
        raise InputError(
            f"epochs must be an integer in 1..{left} (the checkpoint is at epoch {start} of "
            f"{config.epochs}), got {epochs!r}"
        )
    run = _setup(config.replace(save_at=()))
    run.model.load_state_dict(payload["model_state"])
    run.optimizer.load_state_dict(payload["optimizer_state"])
    steps = run.steps_per_epoch
    return _iterates(run, config, start, epochs, every, steps)


def _iterates(run, config, start, epochs, every, steps) -> Iterator[Iterate]:
    for epoch in range(start, start + epochs):
        for b, loss in _epoch_steps(run, config, epoch):
            step = epoch * steps + b + 1
            if step % every == 0:
                yield Iterate(
                    epoch=epoch,
                    step=step,
                    lr=float(run.optimizer.param_groups[0]["lr"]),
                    loss=loss,
                    parameters=flat_parameters(run.model),
                    momentum=momentum_buffer(run.optimizer, run.model),
                )
