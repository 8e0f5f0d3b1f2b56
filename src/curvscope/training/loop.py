"""SGD training with the paper-000 schedule, random augmentation, history and checkpoints."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from curvscope.data import TensorDataset, apply_shift_flip, load_dataset
from curvscope.errors import InputError, NonFiniteError
from curvscope.models import ModelSpec, count_parameters
from curvscope.training.checkpoint import read_checkpoint_dict, save_checkpoint
from curvscope.training.config import TrainConfig
from curvscope.training.losses import OneHotMSELoss
from curvscope.training.schedules import paper000_learning_rate

__all__ = [
    "Callback",
    "TrainResult",
    "evaluate",
    "flat_parameters",
    "loss_function",
    "momentum_buffer",
    "snapshot_path",
    "train",
]


@dataclass(frozen=True)
class Callback:
    """A measurement taken during training (e.g. a Hessian spectrum, papers 002 and 003).

    ``fn(model, epoch=e, step=s, loss=l)`` is called every ``every`` epochs (after epochs 0,
    k, 2k, ...: epoch 0 is the initial model, with ``loss=None``) or every ``every`` SGD steps
    (after steps k, 2k, ...; ``loss`` is that minibatch's loss before the step). ``step`` counts
    batch slots from the start of training (``epoch * steps_per_epoch + batch + 1``). A returned
    mapping of JSON-friendly values (numbers, lists) is recorded in
    :attr:`TrainResult.measurements` as ``{"epoch": e, "step": s, "name": name, **values}``
    and saved in the checkpoint, so a resumed run keeps the earlier ones.

    The callback runs under :func:`torch.random.fork_rng` and the model is put back in train
    mode afterwards, so measuring changes neither the RNG stream nor the run.

    Example:
        >>> cb = Callback(lambda model, **_: {"norm": 1.0}, every=5, name="norm")
    """

    fn: Callable[..., Mapping[str, Any] | None]
    every: int = 1
    unit: Literal["epoch", "step"] = "epoch"
    name: str = "callback"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise InputError(
                f"Callback needs a function fn(model, epoch=, step=, loss=), got {self.fn!r}"
            )
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise InputError(f"Callback every must be an integer >= 1, got {self.every!r}")
        if self.unit not in ("epoch", "step"):
            raise InputError(f"Callback unit must be 'epoch' or 'step', got {self.unit!r}")

    def _due(self, unit: str, count: int) -> bool:
        return self.unit == unit and count % self.every == 0

    def _run(
        self, model: nn.Module, *, epoch: int, step: int, loss: float | None, device: torch.device
    ) -> dict[str, Any] | None:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            values = self.fn(model, epoch=epoch, step=step, loss=loss)
        model.train()
        if values is None:
            return None
        if not isinstance(values, Mapping):
            raise InputError(
                f"callback {self.name!r} returned {type(values).__name__}; return a dict of "
                "measurements (e.g. {'top_eigenvalue': 3.2}) or None"
            )
        record = {"epoch": epoch, "step": step, "name": self.name}
        for key, value in values.items():
            record[str(key)] = value.tolist() if isinstance(value, torch.Tensor) else value
        return record


def _trainable(model: nn.Module) -> list[torch.Tensor]:
    # The curvature operators' parameter order: model.named_parameters(), trainable only.
    return [p for _, p in model.named_parameters() if p.requires_grad]


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """The trainable parameters as one detached vector, in the curvature operators' order."""
    return torch.cat([p.detach().reshape(-1) for p in _trainable(model)]).clone()


def momentum_buffer(optimizer: torch.optim.Optimizer, model: nn.Module) -> torch.Tensor:
    r"""SGD's momentum buffer as one vector aligned with :func:`flat_parameters`.

    torch's SGD keeps :math:`b_{t+1} = \mu b_t + g_t + \lambda \theta_t` (weight decay
    folded into the gradient) and steps :math:`\theta_{t+1} = \theta_t - \eta b_{t+1}`;
    parameters not yet stepped (or momentum 0) give zeros.
    """
    parts = []
    for p in _trainable(model):
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        parts.append(torch.zeros_like(p).reshape(-1) if buf is None else buf.reshape(-1))
    return torch.cat(parts).detach().clone()


def snapshot_path(out: str | Path, epoch: int) -> Path:
    """Where :func:`train` writes the snapshot after ``epoch`` (``config.save_at``)."""
    return Path(out) / "snapshots" / f"epoch-{epoch:04d}.pt"


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
        measurements: the records of the callbacks (see :class:`Callback`).
        snapshots: the snapshot checkpoints written by this call (``config.save_at``).
    """

    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    history: list[dict[str, float | None]]
    epoch: int
    num_parameters: int
    checkpoint: Path | None
    seconds: float
    measurements: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)


def loss_function(config: TrainConfig, dataset: TensorDataset) -> Callable:
    """The mean-over-samples loss of a run.

    ``"auto"``: cross-entropy for classes, MSE for real targets. ``"cross_entropy"`` is
    ``nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)`` (paper 002), which the
    curvature operators take as it is. ``"mse_onehot"`` is :class:`OneHotMSELoss` (paper 003's
    MSE variant); its operators are built from ``OneHotMSELoss.operator_loss()`` with the data
    passed through :func:`~curvscope.training.one_hot_batches`.
    """
    kind = config.loss
    if kind == "auto":
        kind = "cross_entropy" if dataset.task == "classification" else "mse"
    if kind in ("cross_entropy", "mse_onehot") and dataset.task != "classification":
        raise InputError(
            f"{kind} needs class labels, but {dataset.name!r} has real targets; use loss='mse'"
        )
    if kind == "cross_entropy":
        return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if kind == "mse_onehot":
        return OneHotMSELoss(dataset.num_outputs)
    return nn.MSELoss()


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


@dataclass
class _Setup:
    """What a run (or a replay of it) needs: data, model, loss and optimiser."""

    train_set: TensorDataset
    test_set: TensorDataset
    spec: ModelSpec
    model: nn.Module
    loss_fn: Callable
    optimizer: torch.optim.SGD
    device: torch.device
    dtype: torch.dtype
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.train_set) // self.batch_size)


def _setup(config: TrainConfig) -> _Setup:
    train_set, test_set = _load_data(config)
    spec = ModelSpec(
        config.model, train_set.input_shape, train_set.num_outputs, config.model_options
    )
    dtype = getattr(torch, config.dtype)
    device = torch.device(config.device)
    model = spec.build(seed=config.seed).to(device=device, dtype=dtype)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    return _Setup(
        train_set,
        test_set,
        spec,
        model,
        loss_function(config, train_set),
        optimizer,
        device,
        dtype,
        config.batch_size,
    )


def _epoch_steps(run: _Setup, config: TrainConfig, epoch: int) -> Iterator[tuple[int, float]]:
    """Take the SGD steps of ``epoch``, yielding ``(batch index, minibatch loss)`` after each.

    Every draw (order, augmentation, dropout) comes from ``(config.seed, epoch)``, so the
    steps of an epoch are a function of the weights and optimiser state at its start.
    """
    model, optimizer, train_set = run.model, run.optimizer, run.train_set
    lr = paper000_learning_rate(
        epoch, lr0=config.lr, epochs=config.epochs, final_ratio=config.final_ratio
    )
    for group in optimizer.param_groups:
        group["lr"] = lr
    gen = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
    n = len(train_set)
    order = torch.randperm(n, generator=gen)
    augmentation = train_set.augmentation if config.augment else None
    model.train()
    device = run.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(_epoch_seed(config.seed, epoch) ^ 0x5A5A)
        for b in range(run.steps_per_epoch):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            if idx.numel() < 2 and b > 0:
                continue
            x = train_set.raw(idx)
            if augmentation is not None:
                x = apply_shift_flip(x, *augmentation.sample(idx.numel(), gen))
            x = train_set.finish(x).to(device=device, dtype=run.dtype)
            y = train_set.targets[idx].to(device)
            if y.is_floating_point():
                y = y.to(run.dtype)
            loss = run.loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise NonFiniteError(
                    f"the training loss became {float(loss)} at epoch {epoch}, step {b} "
                    f"(lr {lr:g}); lower --lr or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            yield b, float(loss.detach())


def train(
    config: TrainConfig,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` with SGD and the paper-000 eq.-11 schedule.

    Each epoch: set the learning rate of eq. 11, shuffle the training set and (if
    ``config.augment``) draw a random :class:`~curvscope.data.ShiftFlip` per image, take SGD
    steps with momentum and weight decay, then evaluate loss and accuracy on the clean training
    and test sets in eval mode. Every random draw of epoch t (order, augmentation, dropout)
    comes from a generator seeded by ``(seed, t)``; dropout runs under
    :func:`torch.random.fork_rng` so the caller's global RNG is left as it was. Hence a run
    resumed from a checkpoint equals the uninterrupted run, and
    :func:`~curvscope.training.replay` repeats its iterates. A ragged last batch of one sample
    is skipped (BatchNorm cannot train on it).

    Args:
        config: the run.
        out: folder for ``checkpoint.pt`` (written after every epoch) and the snapshots of
            ``config.save_at`` (``snapshots/epoch-NNNN.pt``, same format); ``None`` writes
            nothing.
        resume: a checkpoint of this same config to continue from (only ``device``,
            ``data_dir`` and ``save_at`` may differ).
        stop_after: stop once this many epochs are complete (to split a run); default
            ``config.epochs``.
        progress: show a tqdm progress bar (on stderr).
        callbacks: measurements taken every k epochs or steps (:class:`Callback`).

    Returns:
        A :class:`TrainResult`.

    Raises:
        InputError: bad names or options, missing data, or a checkpoint of another config.
        NonFiniteError: the training loss became NaN or infinite (lower ``lr``).
    """
    start = time.perf_counter()
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise InputError(
                f"callbacks must be Callback objects, got {type(cb).__name__}; wrap the "
                "function: Callback(fn, every=1, unit='epoch')"
            )
    if config.save_at and out is None:
        raise InputError(
            f"save_at={config.save_at} asks for snapshots, but out is None; pass out=FOLDER "
            "or save_at=()"
        )
    run = _setup(config)
    model, optimizer, spec, device = run.model, run.optimizer, run.spec, run.device
    history: list[dict[str, float | None]] = []
    measurements: list[dict[str, Any]] = []
    snapshots: list[Path] = []
    epoch = 0
    if resume is not None:
        payload = read_checkpoint_dict(resume, map_location=str(device))
        saved = TrainConfig.from_dict(payload["config"])
        # Where the run happens (device, data folder) and which snapshots it keeps may
        # change; what it computes may not.
        movable = ("device", "data_dir", "save_at")
        if saved.replace(device=config.device, data_dir=config.data_dir) != config.replace(
            save_at=saved.save_at
        ):
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
        measurements = [dict(m) for m in payload.get("measurements", [])]
    final = config.epochs if stop_after is None else min(stop_after, config.epochs)
    steps = run.steps_per_epoch
    checkpoint = None

    def save(path: Path) -> Path:
        return save_checkpoint(
            path,
            model=model,
            spec=spec,
            config=config,
            optimizer=optimizer,
            epoch=epoch,
            history=history,
            measurements=measurements,
        )

    def epoch_end(loss: float | None) -> None:
        for cb in callbacks:
            if cb._due("epoch", epoch):
                record = cb._run(model, epoch=epoch, step=epoch * steps, loss=loss, device=device)
                if record is not None:
                    measurements.append(record)
        if out is not None and epoch in config.save_at:
            snapshots.append(save(snapshot_path(out, epoch)))

    if epoch == 0 and epoch < final:
        epoch_end(None)
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
            running, seen = 0.0, 0
            done = 0
            for b, loss in _epoch_steps(run, config, epoch):
                bar.update(b + 1 - done)
                done = b + 1
                size = min(config.batch_size, len(run.train_set) - b * config.batch_size)
                running += loss * size
                seen += size
                step = epoch * steps + b + 1
                for cb in callbacks:
                    if cb._due("step", step):
                        record = cb._run(model, epoch=epoch, step=step, loss=loss, device=device)
                        if record is not None:
                            measurements.append(record)
            bar.update(steps - done)
            lr = optimizer.param_groups[0]["lr"]
            tr_loss, tr_acc = evaluate(
                model,
                run.train_set,
                run.loss_fn,
                batch_size=config.eval_batch_size,
                device=device,
                dtype=run.dtype,
            )
            te_loss, te_acc = evaluate(
                model,
                run.test_set,
                run.loss_fn,
                batch_size=config.eval_batch_size,
                device=device,
                dtype=run.dtype,
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
            epoch_end(tr_loss)
            if out is not None:
                checkpoint = save(Path(out) / "checkpoint.pt")
    finally:
        bar.close()
    if checkpoint is None and out is not None and resume is not None and epoch > 0:
        # Nothing was left to train: the resumed checkpoint is the result; keep it in ``out``.
        target = Path(out) / "checkpoint.pt"
        if not target.exists() or not target.samefile(resume):
            checkpoint = save(target)
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
        measurements=measurements,
        snapshots=snapshots,
    )
