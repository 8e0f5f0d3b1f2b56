"""The covariance of per-sample gradients: the SGD noise of paper 002."""

from __future__ import annotations

import torch

from curvscope._validate import is_int
from curvscope.errors import InputError
from curvscope.operators._autodiff import OutputState, ggn_apply, ggn_prepare
from curvscope.operators._data import Batch
from curvscope.operators.output_space import OutputSpaceOperator

__all__ = ["GradientCovarianceOperator", "minibatch_noise_scale"]


class GradientCovarianceOperator(OutputSpaceOperator):
    """The centred covariance of per-sample gradients.

    .. math:: \\Sigma = \\frac{1}{N}\\sum_{i=1}^N (g_i - \\bar g)(g_i - \\bar g)^\\top,
              \\qquad \\bar g = \\frac1N \\sum_i g_i

    Paper 002 §2 (spec §3.2: the population covariance of per-sample gradients). The mean
    gradient :math:`\\bar g` costs one gradient pass at the first product (``mean_gradient``).
    Products use the centred coefficients :math:`c_i = g_i^\\top v - \\bar g^\\top v`:
    :math:`\\Sigma v = \\frac1N(\\sum_i c_i g_i - \\bar g \\sum_i c_i)`, which avoids the
    cancellation of :math:`F_{\\rm emp} - \\bar g \\bar g^\\top` when the mean gradient dominates.
    The covariance of a mini-batch gradient is ``minibatch_noise_scale(S, N) * Sigma``.

    With a sum-reduced loss (``reduction="sum"``) the per-sample gradients are those of the
    summed per-sample losses and the matrix is their scatter
    :math:`\\sum_i (g_i - \\bar g)(g_i - \\bar g)^\\top = N\\Sigma`, like every operator of a
    sum-reduced loss (the sum over samples, not the average); :math:`\\bar g` stays the mean
    per-sample gradient.

    Takes the options of :class:`~curvscope.operators.curvature.CurvatureOperator`, no others.
    """

    #: the mean gradient once computed (per instance; the class default says "not yet").
    _mean_gradient: torch.Tensor | None = None

    @property
    def mean_gradient(self) -> torch.Tensor:
        """:math:`\\bar g = \\frac1N \\sum_i g_i`, the mean per-sample gradient (the gradient of
        the average loss; 1/N times that of a sum-reduced loss). One data pass, then kept."""
        if self._mean_gradient is None:
            total = torch.zeros(self.layout.size, dtype=self.dtype, device=self.device)
            count = 0
            with self._full_float32(), self._model_mode():
                for batch in self._batches():
                    fn = self.model_fn(batch.inputs)
                    with torch.enable_grad():
                        leaves = tuple(p.detach().requires_grad_(True) for p in self.params)
                        value = self.loss.batch_sum(fn(leaves), batch.targets)
                        grads = torch.autograd.grad(value, leaves, allow_unused=True)
                    grads = tuple(
                        torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves)
                    )
                    total += torch.cat([g.reshape(-1) for g in grads])
                    count += batch.size
            if count == 0:
                raise InputError("the data is empty: it yielded no samples")
            total = self._reduce(total)
            if self._num_data is None:
                self._set_num_data(count)
            self._mean_gradient = total / self.num_data
        return self._mean_gradient

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        _ = self.mean_gradient  # one gradient pass, in the operator's dtype, before any product
        return super()._matmat(block)

    def _apply(
        self, state: OutputState, block: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, ...]:
        # c_i = r_i^T (J_i v) - gbar^T v; the product is J^T (c r) and the aux sum is sum_i c_i.
        gbar = self.layout.split(self.mean_gradient.to(block[0].dtype)[:, None])
        gbar_v = sum((g * v).reshape(v.shape[0], -1).sum(dim=1) for g, v in zip(gbar, block))
        residual = state.residual
        assert residual is not None  # set by _prepare
        coeff_sum: list[torch.Tensor] = []

        def op(_: torch.Tensor, jv: torch.Tensor) -> torch.Tensor:
            k, b = jv.shape[0], jv.shape[1]
            r = residual.reshape(b, -1)
            coeff = torch.einsum("bd,kbd->kb", r, jv.reshape(k, b, -1)) - gbar_v[:, None]
            coeff_sum.append(coeff.sum(dim=1))
            return torch.einsum("kb,bd->kbd", coeff, r).reshape(jv.shape)

        product = ggn_apply(state, block, op)
        return (*product, coeff_sum[0])

    def _prepare(self, method: str, batch: Batch, params: tuple[torch.Tensor, ...]) -> OutputState:
        state = ggn_prepare(method, self.model_fn(batch.inputs), params)
        state.residual = self.loss.output_grad(state.outputs.detach(), batch.targets)
        return state

    def _finalize(
        self, total: torch.Tensor, aux: list[torch.Tensor], block: torch.Tensor
    ) -> torch.Tensor:
        (coeff_sum,) = aux
        return (total - self.mean_gradient[:, None] * coeff_sum[None, :]) / self.normaliser


def minibatch_noise_scale(batch_size: int, num_data: int, *, replacement: bool = False) -> float:
    """The factor c with Cov[mini-batch gradient] = c * Sigma (Sigma = population covariance, 1/N).

    .. math:: c = \\frac{1}{S}\\Big(1 - \\frac{S}{N}\\Big)\\frac{N}{N-1} \\ \\text{(without replacement)},
              \\qquad c = \\frac{1}{S} \\ \\text{(with replacement)}

    Spec §3.2 (paper 002 eq. 2; exact by enumeration of all batches). The paper's and Hoffer et
    al.'s :math:`(1/S)(1 - S/N)` omits the factor N/(N-1), which tends to 1 for large N.

    Args:
        batch_size: S, the mini-batch size, 1 <= S <= N.
        num_data: N, the dataset size.
        replacement: whether batch indices are drawn i.i.d. (True) or as a uniform S-subset, as
            with epoch shuffling (False, the default).
    """
    if not (is_int(num_data, minimum=1) and is_int(batch_size, minimum=1, maximum=num_data)):
        raise InputError(
            f"need integers 1 <= batch_size <= num_data; got batch_size={batch_size}, num_data={num_data}"
        )
    if replacement:
        return 1.0 / batch_size
    if num_data == 1:
        return 0.0
    return (1.0 / batch_size) * (1.0 - batch_size / num_data) * num_data / (num_data - 1)
