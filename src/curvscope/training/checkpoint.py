"""Checkpoints: ``torch.save`` of a plain dict recording config, model, history and state."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from curvscope._outputs import temporary_name
from curvscope._version import __version__
from curvscope.errors import InputError
from curvscope.models import ModelSpec, count_parameters
from curvscope.training.config import TrainConfig

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "curvscope-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt model (eval mode) and everything recorded with it.

    Attributes:
        model: the model with the checkpoint's weights, on ``map_location``, in eval mode.
        spec: how to rebuild the model (name, input shape, outputs, options).
        config: the full training configuration.
        history: per-epoch records (``epoch``, ``lr``, ``train_loss``, ``train_accuracy``,
            ``test_loss``, ``test_accuracy``, ``running_loss``, ``seconds``).
        epoch: number of completed epochs.
        version: the curvscope version that wrote it.
        num_parameters: P.
        optimizer_state: the SGD state dict (momentum buffers), for resuming.
        path: where it was read from.
    """

    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    history: list[dict[str, float]]
    epoch: int
    version: str
    num_parameters: int
    optimizer_state: dict[str, Any] = field(repr=False)
    path: Path


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    spec: ModelSpec,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, float]],
) -> Path:
    """Write a checkpoint atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "curvscope_version": __version__,
        "torch_version": str(torch.__version__),
        "config": config.to_dict(),
        "model": spec.to_dict(),
        "num_parameters": count_parameters(model),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "epoch": epoch,
        "history": [dict(h) for h in history],
    }
    tmp = temporary_name(path)  # unique: two writers never share a temporary file
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint_dict(path: str | Path, *, map_location: str = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, after checking that the file is a curvscope checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"no checkpoint at {str(path)!r}; pass the checkpoint.pt that `curvscope train` "
            "wrote into its --out folder"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise InputError(
            f"{str(path)!r} could not be read as a curvscope checkpoint ({type(exc).__name__}: "
            f"{exc}); pass a checkpoint.pt written by `curvscope train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise InputError(
            f"{str(path)!r} is not a curvscope checkpoint (expected format "
            f"{CHECKPOINT_FORMAT!r}, found {found!r}); pass a checkpoint.pt written by "
            "`curvscope train`"
        )
    return payload


def load_checkpoint(
    path: str | Path, *, model: str | None = None, map_location: str = "cpu"
) -> Checkpoint:
    """Rebuild the model of a checkpoint and return it with its config and history.

    Args:
        path: a ``checkpoint.pt`` written by :func:`curvscope.training.train`.
        model: the model name the caller expects (e.g. ``"mlp"``); a checkpoint of another
            model raises :class:`InputError`. ``None`` accepts any.
        map_location: device for the weights.

    Example:
        >>> ckpt = load_checkpoint("runs/digits/checkpoint.pt", model="mlp")  # doctest: +SKIP
        >>> ckpt.history[-1]["test_accuracy"]  # doctest: +SKIP
    """
    payload = read_checkpoint_dict(path, map_location=map_location)
    spec = ModelSpec.from_dict(payload["model"])
    if model is not None and spec.name != model:
        raise InputError(
            f"checkpoint {str(path)!r} holds a {spec.name!r} model, but {model!r} was asked "
            f"for; pass a checkpoint of a {model!r} model, or ask for {spec.name!r}"
        )
    config = TrainConfig.from_dict(payload["config"])
    net = spec.build(seed=config.seed)
    net.load_state_dict(payload["model_state"])
    net.to(device=map_location, dtype=getattr(torch, config.dtype))
    net.eval()
    return Checkpoint(
        model=net,
        spec=spec,
        config=config,
        history=list(payload["history"]),
        epoch=int(payload["epoch"]),
        version=str(payload["curvscope_version"]),
        num_parameters=int(payload["num_parameters"]),
        optimizer_state=payload["optimizer_state"],
        path=Path(path),
    )
