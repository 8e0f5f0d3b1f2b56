"""The (true) Fisher and the empirical Fisher: outer products of per-sample gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope._validate import check_int
from curvscope.errors import InputError
from curvscope.operators._compile import CompileMode
from curvscope.operators._data import Batch
from curvscope.operators._inputs import BatchSizeFn
from curvscope.operators.curvature import CacheMode
from curvscope.operators.output_space import OutputSpaceOperator

__all__ = ["EmpiricalFisherOperator", "FisherOperator", "outer_product_op"]


def outer_product_op(
    vectors: torch.Tensor, weight: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """:math:`\\Lambda_i u = w \\sum_s r_{si} (r_{si}^\\top u)` for ``vectors`` of shape ``(S, b, ...)``."""

    def op(_: torch.Tensor, jv: torch.Tensor) -> torch.Tensor:  # jv: (k, b, ...)
        k, b = jv.shape[0], jv.shape[1]
        r = vectors.reshape(vectors.shape[0], b, -1)  # (S, b, D)
        coeff = torch.einsum("sbd,kbd->skb", r, jv.reshape(k, b, -1))
        return (weight * torch.einsum("skb,sbd->kbd", coeff, r)).reshape(jv.shape)

    return op


class EmpiricalFisherOperator(OutputSpaceOperator):
    """The empirical Fisher: the uncentred second moment of per-sample gradients.

    .. math:: F_{\\rm emp} = \\frac{1}{N}\\sum_{i=1}^N g_i g_i^\\top, \\qquad
              g_i = \\nabla_\\theta \\ell(f(x_i;\\theta), y_i) = J_i^\\top r_i

    Paper 002 (the two-point matrix of the SGD noise, §3.2 of the spec). Per-sample gradients are
    never materialised: :math:`g_i^\\top v = r_i^\\top (J_i v)`, so a block costs one
    forward-mode and one reverse-mode pass per batch.
    """

    def _output_op(
        self, batch: Batch, outputs: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return outer_product_op(self.loss.output_grad(outputs, batch.targets).unsqueeze(0))


class FisherOperator(OutputSpaceOperator):
    """The (true, model) Fisher information with labels drawn from the model's predictive law.

    .. math:: F = \\frac{1}{N}\\sum_{i=1}^N \\mathbb{E}_{\\tilde y \\sim p(\\cdot|f(x_i))}
              \\left[\\nabla_\\theta \\log p(\\tilde y|f_i)\\, \\nabla_\\theta \\log p(\\tilde y|f_i)^\\top\\right]

    Args:
        mc_samples: ``None`` for the exact expectation :math:`J^\\top E[r r^\\top] J`, available
            for cross-entropy (categorical), MSE (Gaussian with variance D/2, D = outputs per
            sample, for a mean-reduced loss and 1/2 for a sum-reduced one, so that the
            per-sample loss is its negative log-likelihood up to a constant) and BCE-with-logits
            (Bernoulli); there it equals the GGN. An integer draws that many labels per input
            sample (Monte-Carlo Fisher), independently for every sample.
        seed: seeds the label draws. Draws are frozen: batch ``j`` always gets the labels of
            ``(seed, rank, j)``, so every product sees the same matrix.
        model, loss_fn, data, params, num_data, dtype, batch_size, batch_size_fn,
            check_deterministic, verify, method, cache, cache_memory, train_mode, progress, rewrite,
            compile, block_memory, allow_tf32: as for
            :class:`~curvscope.operators.curvature.CurvatureOperator`.

    Label smoothing changes the loss, not the model's likelihood: the Fisher of a label-smoothed
    cross-entropy model is the Fisher of its categorical predictive distribution.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        data: Any,
        *,
        mc_samples: int | None = None,
        seed: int = 0,
        params: str | Sequence[str] | None = None,
        num_data: int | None = None,
        dtype: torch.dtype | str | None = None,
        batch_size: int | None = None,
        batch_size_fn: BatchSizeFn | None = None,
        check_deterministic: bool = True,
        verify: bool = True,
        method: str = "auto",
        cache: CacheMode = "auto",
        cache_memory: int | str | None = None,
        train_mode: bool = False,
        progress: bool = False,
        rewrite: str | None = "auto",
        compile: CompileMode = False,
        block_memory: int | str = "auto",
        allow_tf32: bool = False,
    ) -> None:
        super().__init__(
            model,
            loss_fn,
            data,
            params=params,
            num_data=num_data,
            dtype=dtype,
            batch_size=batch_size,
            batch_size_fn=batch_size_fn,
            check_deterministic=check_deterministic,
            verify=verify,
            method=method,
            cache=cache,
            cache_memory=cache_memory,
            train_mode=train_mode,
            progress=progress,
            rewrite=rewrite,
            compile=compile,
            block_memory=block_memory,
            allow_tf32=allow_tf32,
        )
        if mc_samples is not None:
            mc_samples = check_int(
                "mc_samples", mc_samples, minimum=1, expected="None (exact) or a positive integer"
            )
        if mc_samples is None and not self.loss.has_exact_fisher:
            raise InputError(
                f"the exact Fisher needs a loss with a known likelihood (cross-entropy, MSE, "
                f"BCE-with-logits); got {self.loss.fn!r}. Pass mc_samples=... with one of those, "
                "or use EmpiricalFisherOperator"
            )
        self.mc_samples = mc_samples
        self.seed = seed

    def _fingerprint_options(self) -> dict[str, Any]:
        return {"mc_samples": self.mc_samples, "seed": self.seed}

    def _generator(self, index: int) -> torch.Generator:
        rank = (
            torch.distributed.get_rank()
            if torch.distributed.is_available() and torch.distributed.is_initialized()
            else 0
        )
        state = np.random.SeedSequence([self.seed, rank, index]).generate_state(1, dtype=np.uint64)[
            0
        ]
        return torch.Generator().manual_seed(int(state) & (2**63 - 1))

    def _output_op(
        self, batch: Batch, outputs: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if self.mc_samples is None:
            loss = self.loss  # the likelihood's curvature: no targets (soft or smoothed) involved
            return lambda out, jv: loss.output_hessian_apply(out, None, jv)
        grads = self.loss.sample_output_grads(
            outputs, self.mc_samples, self._generator(batch.index)
        )
        return outer_product_op(grads, 1.0 / self.mc_samples)
