"""Model names -> models, and the :class:`ModelSpec` a checkpoint records to rebuild one."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from curvscope.errors import InputError
from curvscope.models.cnn import SmallCNN
from curvscope.models.mlp import MLP
from curvscope.models.preresnet import PreResNet
from curvscope.models.vgg import VGG16BN

__all__ = ["MODELS", "ModelSpec", "build_model", "count_parameters"]

#: Model names :func:`build_model` knows (``preresnet<depth>`` takes any valid depth).
MODELS: dict[str, str] = {
    "mlp": "fully connected; options hidden=(32,), activation='tanh'|'relu'|...",
    "cnn": "small CNN with BatchNorm (about 260k parameters); option width=64",
    "preresnet<depth>": "pre-activation ResNet for 32x32 images, e.g. preresnet110 (paper 000)",
    "vgg16bn": "VGG16 with BatchNorm for 32x32 images (paper 000); option dropout=0.5",
}

_OPTIONS = {
    "mlp": {"hidden", "activation", "bias"},
    "cnn": {"width"},
    "preresnet": set(),
    "vgg16bn": {"dropout"},
}


def count_parameters(model: nn.Module) -> int:
    """P, the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _family(name: str) -> tuple[str, int | None]:
    if not isinstance(name, str):
        raise InputError(
            f"model must be a name (a string) such as 'mlp', got {name!r} ({type(name).__name__})"
        )
    match = re.fullmatch(r"preresnet(\d+)", name)
    if match:
        return "preresnet", int(match.group(1))
    if name in _OPTIONS and name != "preresnet":
        return name, None
    raise InputError(
        f"unknown model {name!r}; expected one of mlp, cnn, vgg16bn or preresnet<depth> "
        "(e.g. preresnet110, preresnet20)"
    )


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: name, input shape, output size and options.

    Attributes:
        name: ``"mlp"``, ``"cnn"``, ``"vgg16bn"`` or ``"preresnet<depth>"``.
        input_shape: shape of one input, e.g. ``(1, 8, 8)``.
        num_outputs: classes, or the regression target size.
        options: constructor options (see :data:`MODELS`); lists become tuples.
    """

    name: str
    input_shape: tuple[int, ...]
    num_outputs: int
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        family, _ = _family(self.name)
        unknown = set(self.options) - _OPTIONS[family]
        if unknown:
            allowed = ", ".join(sorted(_OPTIONS[family])) or "none"
            raise InputError(
                f"model {self.name!r} does not take the options {sorted(unknown)}; "
                f"it takes: {allowed}"
            )
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in self.options.items()}
        object.__setattr__(self, "options", opts)
        if family in ("preresnet", "vgg16bn", "cnn") and len(self.input_shape) != 3:
            raise InputError(
                f"model {self.name!r} needs image inputs (C, H, W), but the data have inputs of "
                f"shape {self.input_shape}; use --model mlp for vector data"
            )
        if family in ("preresnet", "vgg16bn") and self.input_shape[1:] != (32, 32):
            raise InputError(
                f"model {self.name!r} is built for 32x32 images (CIFAR), but the data have "
                f"inputs of shape {self.input_shape}; use --model mlp or cnn for digits"
            )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON- and torch.save-friendly)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
        }

    @staticmethod
    def check_name(name: str) -> None:
        """Raise :class:`InputError` unless ``name`` is a model :func:`build_model` knows."""
        _family(name)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; a malformed record raises :class:`InputError`."""
        try:
            return cls(
                d["name"], tuple(d["input_shape"]), int(d["num_outputs"]), dict(d["options"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(
                "a model record must be a dict with name, input_shape, num_outputs and "
                f"options (as ModelSpec.to_dict writes it), got {d!r:.200}"
            ) from None

    def build(self, seed: int = 0) -> nn.Module:
        """Construct the model with initial weights fixed by ``seed``.

        PyTorch's layer initialisers draw from the global RNG; this runs them inside
        :func:`torch.random.fork_rng` seeded with ``seed``, so the caller's global RNG state
        is restored afterwards and the weights depend on ``seed`` alone.
        """
        family, depth = _family(self.name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if family == "mlp":
                opts = dict(self.options)
                hidden = tuple(opts.pop("hidden", (32,)))
                return MLP(math.prod(self.input_shape), hidden, self.num_outputs, **opts)
            if family == "cnn":
                return SmallCNN(self.input_shape[0], self.num_outputs, **self.options)
            if family == "vgg16bn":
                return VGG16BN(self.num_outputs, in_channels=self.input_shape[0], **self.options)
            return PreResNet(depth, self.num_outputs, in_channels=self.input_shape[0])


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_outputs: int,
    seed: int = 0,
    **options: Any,
) -> nn.Module:
    """Build a model by name; weights depend only on ``seed``.

    Example:
        >>> m = build_model("mlp", input_shape=(1, 8, 8), num_outputs=10, hidden=(32,))
        >>> count_parameters(m)
        2410
    """
    return ModelSpec(name, tuple(input_shape), num_outputs, options).build(seed)
