"""The Hessian of the average loss."""

from __future__ import annotations

import torch

from curvscope.operators._autodiff import (
    HESSIAN_METHODS,
    HessianState,
    hessian_apply,
    hessian_prepare,
)
from curvscope.operators._data import Batch
from curvscope.operators.curvature import CurvatureOperator

__all__ = ["HessianOperator"]


class HessianOperator(CurvatureOperator):
    """The Hessian of the per-sample average loss over a finite dataset.

    .. math:: H = \\nabla^2_\\theta \\frac{1}{N} \\sum_{i=1}^N \\ell(f(x_i; \\theta), y_i)

    The object of every paper curvscope implements (paper 000 §3, paper 001 eq. 3, paper 003).
    Products ``H @ V`` for a block of k vectors cost one pass over the data; see
    :class:`~curvscope.operators.curvature.CurvatureOperator` for every option. With a
    sum-reduced loss (``reduction="sum"``) it is the Hessian of the loss as written, the sum over
    all N samples: :math:`H = \\nabla^2_\\theta \\sum_i \\ell_i`, N times the mean-reduced one
    (for MSE and BCE-with-logits the sum also runs over the output entries, as torch's does).

    Methods (``method=``): ``"rev-rev"`` (reverse-over-reverse through one retained graph, the
    reference), ``"rev-rev-batched"`` (the k backward passes vmapped), ``"fwd-rev"`` (``vmap`` of
    forward-over-reverse). ``"auto"`` verifies the fast ones against the reference on the user's
    model and times them.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
        >>> H = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
        >>> (H @ torch.randn(H.shape[0], 3)).shape
        torch.Size([26, 3])

        A sum-reduced loss (the Hessian of the summed loss, N = 10 times the one above) and a
        model that takes a dict:

        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.body = model
        ...     def forward(self, batch):
        ...         return self.body(batch["x"])
        >>> H_sum = HessianOperator(Net(), nn.CrossEntropyLoss(reduction="sum"), ({"x": x}, y))
        >>> v = torch.randn(H.shape[0])
        >>> torch.allclose(H_sum @ v, 10 * (H @ v), rtol=1e-4, atol=1e-5)
        True
    """

    _methods = HESSIAN_METHODS
    _graph_methods = HESSIAN_METHODS[:2]  # the reverse-mode ones share a retained graph

    def _prepare(self, method: str, batch: Batch, params: tuple[torch.Tensor, ...]) -> HessianState:
        fn, targets, loss = self.model_fn(batch.inputs), batch.targets, self.loss
        return hessian_prepare(method, lambda ps: loss.batch_sum(fn(ps), targets), params)

    def _apply(
        self, state: HessianState, block: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        return hessian_apply(state, block)
