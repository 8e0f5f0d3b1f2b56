"""Exact kernel rewrites of the model's forward, used only for products: BatchNorm folding and
channels_last memory.

**BatchNorm folding.** An eval-mode BatchNorm with running statistics (mean ``m``, variance
``v``, affine ``gamma``, ``beta``) that directly follows a convolution or linear layer with
weight ``W`` and bias ``b`` is the same function as one layer with

.. math:: s = \\gamma / \\sqrt{v + \\epsilon}, \\qquad W' = W \\cdot s, \\qquad
          b' = (b - m)\\, s + \\beta

(``s`` scales each output channel). The fold is done *inside* the functional forward, as a
function of the original parameters ``(W, b, gamma, beta)``: autodiff differentiates through
the fold, so gradients and Hessians are those with respect to the original parameters, exactly
(the rewritten function equals the original one everywhere, hence so do all its derivatives),
while each product runs one fused convolution instead of a convolution and a normalisation.
The user's model is never changed: the rewrite is a ``torch.fx`` graph that shares its
submodules and adds one fused module per folded pair.

**channels_last.** The model's 4-D floating inputs are converted to ``torch.channels_last``
memory, which lets convolutions pick NHWC kernels. It is exact in exact arithmetic but not on
every torch build (on torch 2.13 CPU it made a CNN's gradient 2e-3 wrong), which is why every
rewrite is verified against the unrewritten reverse-over-reverse product before use
(:func:`curvscope.operators.verify.verify_rewrites`).

Train-mode BatchNorm (batch statistics) is never folded: its output depends on the whole batch,
not on running statistics, so there is nothing to fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from curvscope.errors import InputError
from curvscope.operators._inputs import map_tensors

__all__ = ["REWRITES", "RewrittenModel", "foldable_pairs", "parse_rewrite", "rewrite_model"]

#: the rewrites, by name; a candidate is a ``+``-joined combination ("fold-bn+channels-last").
REWRITES = ("fold-bn", "channels-last")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def parse_rewrite(rewrite: str | None) -> tuple[str, ...] | None:
    """``"auto"`` -> ``None``; ``"none"``/``None`` -> ``()``; ``"fold-bn+channels-last"`` ->
    its parts, checked."""
    if rewrite == "auto":
        return None
    if rewrite is None or rewrite == "none":
        return ()
    if not isinstance(rewrite, str):
        raise InputError(f"rewrite must be a string such as 'auto' or 'fold-bn', got {rewrite!r}")
    parts = tuple(p.strip() for p in rewrite.split("+"))
    bad = [p for p in parts if p not in REWRITES]
    if bad or len(set(parts)) != len(parts):
        raise InputError(
            f"rewrite must be 'auto', 'none' or a '+'-joined combination of {REWRITES} "
            f"(e.g. 'fold-bn+channels-last'), got {rewrite!r}"
        )
    return tuple(p for p in REWRITES if p in parts)  # canonical order


def rewrite_name(parts: tuple[str, ...]) -> str:
    return "+".join(parts) if parts else "none"


class _FoldedLayer(nn.Module):
    """A Conv/Linear followed by an eval-mode BatchNorm, as one layer; owns no parameters.

    ``forward`` receives the layer's input and the original tensors (so autodiff sees them).
    """

    def __init__(self, layer: nn.Module, eps: float) -> None:
        super().__init__()
        object.__setattr__(self, "_layer", layer)  # not a submodule: no parameter names
        self.eps = eps

    def forward(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        gamma: torch.Tensor | None,
        beta: torch.Tensor | None,
        mean: torch.Tensor,
        var: torch.Tensor,
    ) -> torch.Tensor:
        scale = torch.rsqrt(var + self.eps)
        if gamma is not None:
            scale = gamma * scale
        shift = -mean * scale if bias is None else (bias - mean) * scale
        if beta is not None:
            shift = shift + beta
        folded = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
        layer = self._layer
        if isinstance(layer, nn.Linear):
            if x.ndim != 2:  # BatchNorm1d would normalise another dimension: no fold
                out = nn.functional.linear(x, weight, bias)
                return nn.functional.batch_norm(out, mean, var, gamma, beta, False, 0.0, self.eps)
            return nn.functional.linear(x, folded, shift)
        return layer._conv_forward(x, folded, shift)


def foldable_pairs(graph: torch.fx.Graph, modules: dict[str, nn.Module]) -> list[tuple[Any, Any]]:
    """``(layer node, norm node)`` pairs where an eval-mode BatchNorm with running statistics
    takes as its only input a Conv/Linear output that nothing else uses."""
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _NORMS):
            continue
        norm = modules[node.target]
        if norm.training or not norm.track_running_stats or norm.running_mean is None:
            continue
        if len(node.args) != 1 or node.kwargs:
            continue
        prev = node.args[0]
        if not isinstance(prev, torch.fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        layer = modules.get(prev.target)
        if isinstance(layer, _CONVS) and not layer.transposed and len(prev.args) == 1:
            pairs.append((prev, node))
        elif isinstance(layer, nn.Linear) and len(prev.args) == 1:
            pairs.append((prev, node))
    return pairs


@dataclass
class RewrittenModel:
    """The module products evaluate, and how the inputs are prepared for it."""

    module: nn.Module
    prepare_inputs: Callable[[Any], Any]
    folded: int = 0


def _channels_last(inputs: Any) -> Any:
    return map_tensors(
        inputs,
        lambda t: (
            t.contiguous(memory_format=torch.channels_last)
            if t.is_floating_point() and t.ndim == 4
            else t
        ),
    )


def rewrite_model(model: nn.Module, parts: tuple[str, ...]) -> RewrittenModel:
    """The model with the rewrites ``parts`` applied, sharing the user's submodules.

    Raises :class:`InputError` saying why when a rewrite does not apply (no eval-mode
    BatchNorm after a Conv/Linear; a model torch.fx cannot trace; no 4-D input for
    channels_last is found only at run time and then does nothing).
    """
    module: nn.Module = model
    folded = 0
    if "fold-bn" in parts:
        try:
            traced = torch.fx.symbolic_trace(model)
        except Exception as err:
            raise InputError(
                f"fold-bn: torch.fx cannot trace the model ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"
            ) from err
        modules = dict(traced.named_modules())
        graph = traced.graph
        for index, (prev, node) in enumerate(foldable_pairs(graph, modules)):
            layer, norm = modules[prev.target], modules[node.target]
            name = f"_curvscope_fold_{index}"
            traced.add_submodule(name, _FoldedLayer(layer, norm.eps))
            with graph.inserting_before(node):

                def attr(path: str, present: bool) -> Any:
                    return graph.get_attr(path) if present else None

                args = (
                    prev.args[0],
                    attr(f"{prev.target}.weight", True),
                    attr(f"{prev.target}.bias", layer.bias is not None),
                    attr(f"{node.target}.weight", norm.affine),
                    attr(f"{node.target}.bias", norm.affine),
                    attr(f"{node.target}.running_mean", True),
                    attr(f"{node.target}.running_var", True),
                )
                fused = graph.call_module(name, args)
            node.replace_all_uses_with(fused)
            graph.erase_node(node)
            graph.erase_node(prev)
            folded += 1
        if folded == 0:
            raise InputError(
                "fold-bn: no eval-mode BatchNorm (with running statistics) directly follows a "
                "Conv1d/2d/3d or Linear layer whose output nothing else uses"
            )
        graph.lint()
        traced.recompile()
        module = traced
    prepare = _channels_last if "channels-last" in parts else (lambda inputs: inputs)
    return RewrittenModel(module=module, prepare_inputs=prepare, folded=folded)
