"""SGD training with the paper-000 schedule, random augmentation, history and checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from curvscope.data import TensorDataset, apply_shift_flip, load_dataset
from curvscope.errors import InputError, NonFiniteError
from curvscope.models import ModelSpec, count_parameters
from curvscope.training.checkpoint import read_checkpoint_dict, save_checkpoint
from curvscope.training.config import TrainConfig
from curvscope.training.schedules import paper000_learning_rate

__all__ = ["TrainResult", "evaluate", "loss_function", "train"]


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`.

    Attributes:
        model: the trained model, in eval mode.
        spec: how to rebuild it.
        config: the configuration that produced it.
        history: one record per completed epoch (see :class:`~curvscope.training.Checkpoint`).
        epoch: completed epochs.
        num_parameters: P.
        checkpoint: path of the last checkpoint written, or ``None``.
        seconds: wall-clock time of this call.
    """

    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    history: list[dict[str, float | None]]
    epoch: int
    num_parameters: int
    checkpoint: Path | None
    seconds: float


def loss_function(config: TrainConfig, dataset: TensorDataset) -> Callable:
    """The mean-over-samples loss of a run: cross-entropy for classes, MSE for real targets."""
    kind = config.loss
    if kind == "auto":
        kind = "cross_entropy" if dataset.task == "classification" else "mse"
    if kind == "cross_entropy" and dataset.task != "classification":
        raise InputError(f"cross_entropy needs class labels, but {dataset.name!r} has real targets")
    return nn.CrossEntropyLoss() if kind == "cross_entropy" else nn.MSELoss()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: TensorDataset,
    loss_fn: Callable,
    *,
    batch_size: int = 1000,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[float, float | None]:
    """Mean loss and accuracy over a dataset, in eval mode (accuracy ``None`` for regression)."""
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, len(dataset)
    for x, y in dataset.loader(batch_size):
        x = x.to(device=device, dtype=dtype)
        y = y.to(device=device, dtype=dtype if y.is_floating_point() else y.dtype)
        out = model(x)
        total += float(loss_fn(out, y)) * x.shape[0]
        if dataset.task == "classification":
            correct += int((out.argmax(dim=1) == y).sum())
    model.train(was_training)
    accuracy = correct / n if dataset.task == "classification" else None
    return total / n, accuracy


def _epoch_seed(seed: int, epoch: int) -> int:
    # Every draw of epoch t comes from (seed, t): a resumed run repeats the uninterrupted one.
    return int(
        np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, epoch, 0x7A1]).generate_state(1)[0]
    )


def _load_data(config: TrainConfig) -> tuple[TensorDataset, TensorDataset]:
    kwargs = {"data_dir": config.data_dir, "seed": config.seed, **config.data_options}
    return (
        load_dataset(config.data, "train", **kwargs),
        load_dataset(config.data, "test", **kwargs),
    )


def train(
    config: TrainConfig,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` with SGD and the paper-000 eq.-11 schedule.

    Each epoch: set the learning rate of eq. 11, shuffle the training set and (if
    ``config.augment``) draw a random :class:`~curvscope.data.ShiftFlip` per image, take SGD
    steps with momentum and weight decay, then evaluate loss and accuracy on the clean training
    and test sets in eval mode. Every random draw of epoch t (order, augmentation, dropout)
    comes from a generator seeded by ``(seed, t)``; dropout runs under
    :func:`torch.random.fork_rng` so the caller's global RNG is left as it was. Hence a run
    resumed from a checkpoint equals the uninterrupted run. A ragged last batch of one sample
    is skipped (BatchNorm cannot train on it).

    Args:
        config: the run.
        out: folder for ``checkpoint.pt`` (written after every epoch); ``None`` writes nothing.
        resume: a checkpoint of this same config to continue from (only ``device`` and
            ``data_dir`` may differ).
        stop_after: stop once this many epochs are complete (to split a run); default
            ``config.epochs``.
        progress: show a tqdm progress bar (on stderr).

    Returns:
        A :class:`TrainResult`.

    Raises:
        InputError: bad names or options, missing data, or a checkpoint of another config.
        NonFiniteError: the training loss became NaN or infinite (lower ``lr``).
    """
    start = time.perf_counter()
    train_set, test_set = _load_data(config)
    spec = ModelSpec(
        config.model, train_set.input_shape, train_set.num_outputs, config.model_options
    )
    dtype = getattr(torch, config.dtype)
    device = torch.device(config.device)
    model = spec.build(seed=config.seed).to(device=device, dtype=dtype)
    loss_fn = loss_function(config, train_set)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    history: list[dict[str, float | None]] = []
    epoch = 0
    if resume is not None:
        payload = read_checkpoint_dict(resume, map_location=str(device))
        saved = TrainConfig.from_dict(payload["config"])
        # Where the run happens (device, data folder) may change; what it computes may not.
        movable = ("device", "data_dir")
        if saved.replace(device=config.device, data_dir=config.data_dir) != config:
            diff = sorted(
                k
                for k, v in saved.to_dict().items()
                if k not in movable and config.to_dict()[k] != v
            )
            raise InputError(
                f"checkpoint {str(resume)!r} was written by a different configuration "
                f"(differs in: {', '.join(diff)}); resume with the same settings"
            )
        model.load_state_dict(payload["model_state"])
        optimizer.load_state_dict(payload["optimizer_state"])
        epoch, history = int(payload["epoch"]), list(payload["history"])
    final = config.epochs if stop_after is None else min(stop_after, config.epochs)
    augmentation = train_set.augmentation if config.augment else None
    n = len(train_set)
    steps = -(-n // config.batch_size)
    checkpoint = None
    bar = tqdm(
        total=(final - epoch) * steps,
        disable=not progress or final <= epoch,
        unit="step",
        desc=f"train {config.model} on {config.data}",
        leave=False,
    )
    try:
        while epoch < final:
            t0 = time.perf_counter()
            lr = paper000_learning_rate(
                epoch, lr0=config.lr, epochs=config.epochs, final_ratio=config.final_ratio
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            gen = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
            order = torch.randperm(n, generator=gen)
            model.train()
            running, seen = 0.0, 0
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(_epoch_seed(config.seed, epoch) ^ 0x5A5A)
                for b in range(steps):
                    idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                    bar.update(1)
                    if idx.numel() < 2 and b > 0:
                        continue
                    x = train_set.raw(idx)
                    if augmentation is not None:
                        x = apply_shift_flip(x, *augmentation.sample(idx.numel(), gen))
                    x = train_set.finish(x).to(device=device, dtype=dtype)
                    y = train_set.targets[idx].to(device)
                    if y.is_floating_point():
                        y = y.to(dtype)
                    loss = loss_fn(model(x), y)
                    if not torch.isfinite(loss):
                        raise NonFiniteError(
                            f"the training loss became {float(loss)} at epoch {epoch}, step {b} "
                            f"(lr {lr:g}); lower --lr or check the data"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    running += float(loss.detach()) * idx.numel()
                    seen += idx.numel()
            tr_loss, tr_acc = evaluate(
                model,
                train_set,
                loss_fn,
                batch_size=config.eval_batch_size,
                device=device,
                dtype=dtype,
            )
            te_loss, te_acc = evaluate(
                model,
                test_set,
                loss_fn,
                batch_size=config.eval_batch_size,
                device=device,
                dtype=dtype,
            )
            epoch += 1
            history.append(
                {
                    "epoch": epoch,
                    "lr": lr,
                    "running_loss": running / max(seen, 1),
                    "train_loss": tr_loss,
                    "train_accuracy": tr_acc,
                    "test_loss": te_loss,
                    "test_accuracy": te_acc,
                    "seconds": time.perf_counter() - t0,
                }
            )
            bar.set_postfix(
                epoch=epoch,
                train_loss=f"{tr_loss:.3g}",
                **({} if te_acc is None else {"test_acc": f"{te_acc:.3f}"}),
            )
            if out is not None:
                checkpoint = save_checkpoint(
                    Path(out) / "checkpoint.pt",
                    model=model,
                    spec=spec,
                    config=config,
                    optimizer=optimizer,
                    epoch=epoch,
                    history=history,
                )
    finally:
        bar.close()
    if checkpoint is None and out is not None and resume is not None and epoch > 0:
        # Nothing was left to train: the resumed checkpoint is the result; keep it in ``out``.
        target = Path(out) / "checkpoint.pt"
        if not target.exists() or not target.samefile(resume):
            checkpoint = save_checkpoint(
                target,
                model=model,
                spec=spec,
                config=config,
                optimizer=optimizer,
                epoch=epoch,
                history=history,
            )
        else:
            checkpoint = target
    model.eval()
    return TrainResult(
        model=model,
        spec=spec,
        config=config,
        history=history,
        epoch=epoch,
        num_parameters=count_parameters(model),
        checkpoint=checkpoint,
        seconds=time.perf_counter() - start,
    )
