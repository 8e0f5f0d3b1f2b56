"""The base of the matrices J^T Lambda J whose middle factor acts in the model's output space."""

from __future__ import annotations

from collections.abc import Callable

import torch

from curvscope.operators._autodiff import GGN_METHODS, OutputState, ggn_apply, ggn_prepare
from curvscope.operators._data import Batch
from curvscope.operators.curvature import CurvatureOperator

__all__ = ["OutputSpaceOperator"]


class OutputSpaceOperator(CurvatureOperator):
    """Base of the matrices :math:`\\frac1N\\sum_i J_i^\\top \\Lambda_i J_i` with
    :math:`J_i = \\partial f(x_i;\\theta)/\\partial\\theta` and :math:`\\Lambda_i` acting on the
    outputs of sample i. Subclasses give :math:`\\Lambda` through :meth:`_output_op`.

    Methods: ``"rev"`` (reverse only: :math:`Jv` by the double-vjp trick, the reference),
    ``"rev-batched"`` (vmapped), ``"fwd"`` (``vmap(jvp)`` then ``vmap(vjp)``).
    """

    _methods = GGN_METHODS
    _graph_methods = GGN_METHODS[:2]  # the reverse-mode ones share a retained graph

    def _output_op(
        self, batch: Batch, outputs: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        raise NotImplementedError

    def _prepare(self, method: str, batch: Batch, params: tuple[torch.Tensor, ...]) -> OutputState:
        state = ggn_prepare(method, self.model_fn(batch.inputs), params)
        state.output_op = self._output_op(batch, state.outputs.detach())
        return state

    def _apply(
        self, state: OutputState, block: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        assert state.output_op is not None  # set by _prepare
        return ggn_apply(state, block, state.output_op)
