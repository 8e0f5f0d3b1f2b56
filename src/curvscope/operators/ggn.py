"""The generalised Gauss-Newton matrix (Pennington & Bahri's H0)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from curvscope.operators._data import Batch
from curvscope.operators.output_space import OutputSpaceOperator

__all__ = ["GGNOperator"]


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
