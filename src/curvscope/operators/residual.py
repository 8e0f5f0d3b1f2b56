"""The residual term H1 = H - GGN (Pennington & Bahri's H1)."""

from __future__ import annotations

import torch

from curvscope.operators._autodiff import HessianState, hessian_apply, hessian_prepare
from curvscope.operators._data import Batch
from curvscope.operators.hessian import HessianOperator

__all__ = ["ResidualOperator"]


class ResidualOperator(HessianOperator):
    """The residual-weighted second-derivative term of the Hessian.

    .. math:: H_1 = H - G = \\frac{1}{N}\\sum_{i=1}^N \\sum_c
              \\frac{\\partial \\ell_i}{\\partial f_{ic}}\\, \\nabla^2_\\theta f_{ic}

    Paper 001 eq. 4 (there :math:`H_1 = \\frac{1}{m}\\sum e_{i\\mu} \\nabla^2 f_{i\\mu}` for MSE).
    Computed directly, not as a difference: it is the Hessian of the functional
    :math:`\\theta \\mapsto \\sum_i \\langle r_i, f(x_i;\\theta) \\rangle` with the output
    residuals :math:`r_i = \\nabla_{f}\\ell_i` held fixed at the current weights, so it costs one
    Hessian product and is exact to rounding even where H and G nearly cancel.
    """

    def _prepare(self, method: str, batch: Batch, params: tuple[torch.Tensor, ...]) -> HessianState:
        fn = self.model_fn(batch.inputs)
        with torch.no_grad():
            residual = self.loss.output_grad(fn(params), batch.targets)
        return hessian_prepare(method, lambda ps: (fn(ps) * residual).sum(), params)

    def _apply(
        self, state: HessianState, block: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        return hessian_apply(state, block)
