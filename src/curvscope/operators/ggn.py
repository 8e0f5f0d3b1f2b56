"""The generalised Gauss-Newton matrix (Pennington & Bahri's H0)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from curvscope.operators._autodiff import GGN_METHODS, GraphState, ggn_apply, ggn_prepare
from curvscope.operators._data import Batch
from curvscope.operators.curvature import CurvatureOperator

__all__ = ["GGNOperator", "OutputSpaceOperator"]


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

    def _prepare(self, method: str, batch: Batch, params: tuple[torch.Tensor, ...]) -> GraphState:
        state = ggn_prepare(method, self.model_fn(batch.inputs), params)
        state.extras["output_op"] = self._output_op(batch, state.extras["outputs"].detach())
        return state

    def _apply(
        self, state: GraphState, block: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        return ggn_apply(state, block, state.extras["output_op"])


class GGNOperator(OutputSpaceOperator):
    """The generalised Gauss-Newton matrix.

    .. math:: G = \\frac{1}{N}\\sum_{i=1}^N J_i^\\top\\, \\nabla^2_{f}\\ell_i\\, J_i

    Paper 001 eq. 4: :math:`H_0`, which for MSE is :math:`JJ^\\top/m` in the paper's notation.
    Positive semi-definite for convex losses; equal to the (true) Fisher for cross-entropy and
    MSE. The output Hessian :math:`\\nabla^2_f \\ell` is closed-form for known losses and taken by
    double backward in output space for any other mean-reduced loss.
    """

    def _output_op(
        self, batch: Batch, outputs: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        loss, targets = self.loss, batch.targets
        return lambda out, jv: loss.output_hessian_apply(out, targets, jv)
