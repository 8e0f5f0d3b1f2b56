"""Training losses beyond plain cross-entropy/MSE: label smoothing (paper 002) and MSE on one-hot
class targets (paper 003's MSE variant), with how a study builds the matching curvature operator.

Label-smoothed cross-entropy is ``nn.CrossEntropyLoss(label_smoothing=eps)``, which the curvature
operators understand directly. :class:`OneHotMSELoss` trains on integer labels; the operators
see the same function as ``nn.MSELoss()`` on one-hot float targets, so a study passes
:meth:`OneHotMSELoss.operator_loss` and its data through :func:`one_hot_batches`:

Example:
    >>> import torch
    >>> loss = OneHotMSELoss(num_classes=3)
    >>> out, y = torch.zeros(2, 3), torch.tensor([0, 2])
    >>> float(loss(out, y)) == float(loss.operator_loss()(out, loss.targets(y, out.dtype)))
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from curvscope.errors import InputError

__all__ = ["OneHotMSELoss", "one_hot_batches"]


class OneHotMSELoss(nn.Module):
    """Mean squared error between the outputs and one-hot encodings of integer class labels.

    .. math:: L = \\frac{1}{N C} \\sum_{i, c} (f_c(x_i) - [y_i = c])^2

    The mean runs over samples *and* classes, exactly as ``nn.MSELoss()`` on ``(N, C)`` one-hot
    targets, so the curvature of this loss is the curvature operators' MSE curvature on one-hot
    targets (build them with :meth:`operator_loss` and :func:`one_hot_batches`).

    Args:
        num_classes: C, the number of outputs.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise InputError(
                f"OneHotMSELoss needs num_classes >= 2 (the number of outputs), got {num_classes!r}"
            )
        self.num_classes = num_classes

    def targets(self, labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``(N,)`` integer labels -> ``(N, C)`` one-hot targets of ``dtype``."""
        if labels.is_floating_point() or labels.dim() != 1:
            raise InputError(
                f"OneHotMSELoss expects (N,) integer class labels, got a "
                f"{tuple(labels.shape)} {labels.dtype} tensor; for real targets use loss='mse'"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise InputError(
                f"OneHotMSELoss got labels in [{int(labels.min())}, {int(labels.max())}], "
                f"expected 0..{self.num_classes - 1}; set num_classes to the number of outputs"
            )
        return nn.functional.one_hot(labels.long(), self.num_classes).to(dtype)

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(outputs, self.targets(labels, outputs.dtype))

    @staticmethod
    def operator_loss() -> nn.MSELoss:
        """The loss to give the curvature operators (with one-hot targets)."""
        return nn.MSELoss()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


def one_hot_batches(
    data: Iterable[Any], num_classes: int, *, dtype: torch.dtype = torch.float32
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(inputs, labels)`` batches of ``data`` with labels replaced by one-hot targets.

    A generator: wrap it in a list (or re-create it per pass) when an operator iterates the data
    more than once.
    """
    encode = OneHotMSELoss(num_classes)
    for x, y in data:
        yield x, encode.targets(y, dtype)
