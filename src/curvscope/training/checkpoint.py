"""Checkpoints: ``torch.save`` of a plain dict recording config, model, history and state."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from curvscope._outputs import temporary_name
from curvscope._validate import check_device
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
        measurements: the records of the training callbacks (empty in older checkpoints).
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
    measurements: list[dict[str, Any]] = field(default_factory=list, repr=False)


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    spec: ModelSpec,
    config: TrainConfig,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, float]],
    measurements: list[dict[str, Any]] | None = None,
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
        "measurements": [dict(m) for m in measurements or []],
    }
    tmp = temporary_name(path)  # unique: two writers never share a temporary file
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_FIX = "pass a checkpoint.pt written by `curvscope train` (or rerun it to write a new one)"
_KEYS = ("config", "model", "model_state", "optimizer_state", "epoch", "history")


def _describe_file(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4)
    if size == 0:
        return "it is empty (0 bytes)"
    kind = "a zip archive, as torch.save writes" if head == b"PK\x03\x04" else "not a zip archive"
    return f"it has {size:,} bytes and starts with {head!r} ({kind})"


def read_checkpoint_dict(path: str | Path, *, map_location: str = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, after checking that the file is a curvscope checkpoint.

    Raises:
        InputError: the path is missing or a folder, the file cannot be unpickled (corrupt,
            truncated, written by something else), or it lacks the entries a checkpoint holds.
    """
    path = Path(path)
    map_location = check_device(map_location, name="map_location")
    if path.is_dir():
        inside = (
            " (it holds a checkpoint.pt: pass that file)"
            if (path / "checkpoint.pt").is_file()
            else ""
        )
        raise InputError(
            f"the checkpoint path {str(path)!r} is a folder, not a file{inside}; {_FIX}"
        )
    if not path.is_file():
        raise InputError(
            f"no checkpoint at {str(path)!r}; pass the checkpoint.pt that `curvscope train` "
            "wrote into its --out folder"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes on foreign files
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        # torch's own message advises weights_only=False, which would run arbitrary code from
        # the file; a curvscope checkpoint never needs it, so only the facts are reported.
        foreign = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = (
            f"it holds a Python object ({foreign.group(1)}) that a curvscope checkpoint never "
            "contains, so it was written by other code"
            if foreign
            else "the file is corrupt, truncated or not a checkpoint (e.g. a copy interrupted "
            "midway)"
        )
        raise InputError(
            f"{str(path)!r} is not a readable curvscope checkpoint: torch could not load it "
            f"({_describe_file(path)}); {what}; {_FIX}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise InputError(
            f"{str(path)!r} is not a curvscope checkpoint (expected format "
            f"{CHECKPOINT_FORMAT!r}, found {found!r}); {_FIX}"
        )
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise InputError(
            f"{str(path)!r} is an incomplete curvscope checkpoint: it lacks {', '.join(missing)} "
            f"(expected {', '.join(_KEYS)}); {_FIX}"
        )
    return payload


def _load_weights(net: nn.Module, state: Any, path: Path) -> None:
    """``load_state_dict`` with a message naming the mismatched entries instead of torch's."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(
            f"{str(path)!r}: model_state must map parameter names to tensors, got "
            f"{type(state).__name__}; the checkpoint was altered after it was written. {_FIX}"
        )
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: {tuple(state[k].shape)} instead of {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(unexpected)}" if unexpected else "",
            f"wrong shapes ({'; '.join(shapes)})" if shapes else "",
        ]
        raise InputError(
            f"{str(path)!r}: the saved weights do not fit the model the checkpoint describes "
            f"({'; '.join(p for p in parts if p)}); the checkpoint was altered or its config "
            f"does not match its weights. {_FIX}"
        )
    net.load_state_dict(state)


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
    path = Path(path)
    try:
        spec = ModelSpec.from_dict(payload["model"])
        config = TrainConfig.from_dict(payload["config"])
    except InputError as exc:
        raise InputError(
            f"{str(path)!r} records an invalid model or training config ({exc}); the checkpoint "
            f"was altered after it was written. {_FIX}"
        ) from None
    if model is not None and spec.name != model:
        raise InputError(
            f"checkpoint {str(path)!r} holds a {spec.name!r} model, but {model!r} was asked "
            f"for; pass a checkpoint of a {model!r} model, or ask for {spec.name!r}"
        )
    net = spec.build(seed=config.seed)
    _load_weights(net, payload["model_state"], path)
    net.to(device=map_location, dtype=getattr(torch, config.dtype))
    net.eval()
    try:
        epoch = int(payload["epoch"])
        history = [dict(h) for h in payload["history"]]
    except (TypeError, ValueError):
        raise InputError(
            f"{str(path)!r}: epoch must be an integer and history a list of dicts, got "
            f"{payload['epoch']!r:.40} and {type(payload['history']).__name__}; the checkpoint "
            f"was altered after it was written. {_FIX}"
        ) from None
    return Checkpoint(
        model=net,
        spec=spec,
        config=config,
        history=history,
        epoch=epoch,
        version=str(payload.get("curvscope_version", "unknown")),
        num_parameters=count_parameters(net),
        optimizer_state=payload["optimizer_state"],
        path=Path(path),
        measurements=[dict(m) for m in payload.get("measurements", [])],
    )
