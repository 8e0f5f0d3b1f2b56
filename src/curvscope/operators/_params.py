"""Which parameters a curvature operator differentiates with respect to, and their flat layout."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from curvscope.errors import InputError

__all__ = ["ParameterLayout", "select_parameters"]


@dataclass(frozen=True)
class ParameterLayout:
    """Names and shapes of the selected parameters, in the flat order of every vector.

    A vector of length P is the concatenation of the flattened parameters in ``names`` order
    (the order of ``model.named_parameters()``).
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def size(self) -> int:
        """P, the number of selected scalar parameters."""
        return sum(self.numels)

    def split(self, block: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A ``(P, k)`` block as per-parameter tensors of shape ``(k, *shape)`` (views where possible)."""
        k = block.shape[1]
        pieces = torch.split(block, self.numels, dim=0)
        return tuple(p.T.reshape(k, *s) for p, s in zip(pieces, self.shapes))

    def join(self, pieces: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-parameter ``(k, *shape)`` tensors back into a ``(P, k)`` block."""
        return torch.cat([p.reshape(p.shape[0], -1) for p in pieces], dim=1).T

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """A ``(P,)`` vector as a ``{name: tensor}`` dict shaped like the parameters."""
        pieces = torch.split(vector, self.numels)
        return {n: p.reshape(s) for n, p, s in zip(self.names, pieces, self.shapes)}

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """A ``{name: tensor}`` dict (e.g. gradients) as one ``(P,)`` vector in layout order."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise InputError(f"flatten() is missing the parameters {missing}")
        return torch.cat([tensors[n].reshape(-1) for n in self.names])


def select_parameters(
    model: nn.Module, params: str | Sequence[str] | None
) -> tuple[ParameterLayout, list[str]]:
    """Choose the parameters to differentiate, by exact name or glob pattern.

    Args:
        model: the network.
        params: ``None`` for every trainable parameter (``requires_grad=True``), or a name / glob
            pattern (``"fc2.*"``, ``"*.weight"``) or a list of them, matched against
            ``model.named_parameters()`` names. Frozen parameters are never selected.

    Returns:
        The layout of the selected parameters and the names of all other parameters (held fixed).
    """
    named = list(model.named_parameters())
    if not named:
        raise InputError(
            f"the model ({type(model).__name__}) has no parameters; curvature needs a model with "
            "trainable parameters"
        )
    trainable = [n for n, p in named if p.requires_grad]
    if not trainable:
        raise InputError(
            f"the model ({type(model).__name__}) has no trainable parameters (all have "
            "requires_grad=False); unfreeze the ones you want the curvature of with "
            "p.requires_grad_(True)"
        )
    if params is None:
        chosen = trainable
    else:
        patterns = [params] if isinstance(params, str) else list(params)
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise InputError(
                f"params must be a parameter name, a glob pattern or a list of them; got {params!r}"
            )
        chosen_set: set[str] = set()
        for pattern in patterns:
            hits = [n for n in trainable if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                frozen_hits = [
                    n for n, p in named if not p.requires_grad and fnmatch.fnmatchcase(n, pattern)
                ]
                hint = (
                    f"it matches only frozen parameters {frozen_hits}; unfreeze them first"
                    if frozen_hits
                    else f"trainable parameters are: {', '.join(trainable[:12])}"
                    + (" ..." if len(trainable) > 12 else "")
                )
                raise InputError(
                    f"the params pattern {pattern!r} matches no trainable parameter; {hint}"
                )
            chosen_set.update(hits)
        chosen = [n for n in trainable if n in chosen_set]
    by_name = dict(named)
    layout = ParameterLayout(tuple(chosen), tuple(by_name[n].shape for n in chosen))
    fixed = [n for n, _ in named if n not in set(chosen)]
    return layout, fixed
