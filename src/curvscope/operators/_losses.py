"""What the engine needs to know about a loss: per-sample values, output-space curvature, sampling.

A loss is a *mean-reduced* or a *sum-reduced* function of the model outputs and the targets,
exactly as torch reduces it (``reduction="mean"``, the default, or ``reduction="sum"``). The
per-sample loss :math:`\\ell_i` is sample i's share of the batch loss under that reduction:

- ``"mean"``: :math:`\\ell_i` is the mean over sample i's entries (its D outputs for MSE and
  BCE-with-logits, its L positions for cross-entropy over sequences), and the batch loss is
  :math:`\\frac1b\\sum_i \\ell_i`, so the batch *sum* is ``b * loss_fn(outputs, targets)``;
- ``"sum"``: :math:`\\ell_i` is the sum over sample i's entries, and the batch loss is
  :math:`\\sum_i \\ell_i` itself. For MSE and BCE this sum runs over all output entries, so
  :math:`\\ell_i^{\\rm sum} = D\\,\\ell_i^{\\rm mean}` (torch's own reduction).

Known losses (cross-entropy, with or without label smoothing and with class-probability
targets; MSE; BCE-with-logits, with hard or soft labels) have closed-form output Hessians and
predictive distributions; any other callable of either reduction works for the Hessian, the
residual, the empirical Fisher and the gradient covariance, with its output Hessian taken by
double backward for the GGN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from curvscope.errors import InputError

__all__ = ["LossSpec", "loss_spec"]

Kind = Literal["cross_entropy", "mse", "bce_logits", "custom"]
Reduction = Literal["mean", "sum"]
REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum")


@dataclass(frozen=True)
class LossSpec:
    """A mean- or sum-reduced loss and the closed forms the engine uses for it."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    kind: Kind
    label_smoothing: float = 0.0
    reduction: Reduction = "mean"

    def entry_scale(self, outputs: torch.Tensor) -> float:
        """:math:`\\ell_i` as a multiple of the sum over sample i's entries: ``1`` for a sum,
        ``1/D`` for a mean (``1/L`` for cross-entropy: classes are not entries, positions are)."""
        if self.reduction == "sum":
            return 1.0
        entries = outputs[0].numel() if outputs.shape[0] else 1
        if self.kind == "cross_entropy":
            entries //= outputs.shape[1]
        return 1.0 / entries

    # ------------------------------------------------------------------ values
    def check_shapes(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """MSE and BCE broadcast mismatched targets silently (a warning, then a wrong loss)."""
        if self.kind in ("mse", "bce_logits") and outputs.shape != targets.shape:
            raise InputError(
                f"{type(self.fn).__name__} needs targets shaped like the outputs; got outputs "
                f"{tuple(outputs.shape)} and targets {tuple(targets.shape)} (torch would "
                "broadcast them into a different loss); reshape the targets"
            )

    def batch_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """:math:`\\sum_i \\ell_i` over the batch: ``b`` times a mean-reduced loss, a
        sum-reduced loss itself."""
        self.check_shapes(outputs, targets)
        value = self.fn(outputs, targets)
        return value if self.reduction == "sum" else value * outputs.shape[0]

    def per_sample(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The vector :math:`(\\ell_1, \\dots, \\ell_b)` whose mean (``"mean"``) or sum
        (``"sum"``) is the batch loss."""
        b = outputs.shape[0]
        self.check_shapes(outputs, targets)
        if self.kind == "cross_entropy":
            raw = F.cross_entropy(
                outputs, targets, reduction="none", label_smoothing=self.label_smoothing
            )
        elif self.kind == "mse":
            raw = F.mse_loss(outputs, targets, reduction="none")
        elif self.kind == "bce_logits":
            raw = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
        else:
            return torch.func.vmap(lambda o, t: self.fn(o.unsqueeze(0), t.unsqueeze(0)))(
                outputs, targets
            )
        per_entry = raw.reshape(b, -1)
        return per_entry.sum(dim=1) if self.reduction == "sum" else per_entry.mean(dim=1)

    def output_grad(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Row i is :math:`\\nabla_{f_i} \\ell_i` (per-sample gradient with respect to outputs)."""
        if torch.compiler.is_compiling():  # compile=: autograd.grad would break the graph
            return torch.func.grad(lambda out: self.per_sample(out, targets).sum())(
                outputs.detach()
            )
        with torch.enable_grad():
            out = outputs.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.per_sample(out, targets).sum(), out)
        return grad

    # ------------------------------------------------------------------ curvature in output space
    def output_hessian_apply(
        self, outputs: torch.Tensor, targets: torch.Tensor | None, block: torch.Tensor
    ) -> torch.Tensor:
        """:math:`\\Lambda_i u_i` for each sample, with :math:`\\Lambda_i = \\nabla^2_{f_i} \\ell_i`.

        ``block`` has shape ``(k, *outputs.shape)``; the result has the same shape. Closed forms
        (per sample, D = number of output entries per sample, L = positions per sample, s = the
        :meth:`entry_scale`, 1/L or 1/D for a mean and 1 for a sum):
        cross-entropy :math:`s(\\operatorname{diag}(p) - p p^\\top)` along the class dimension
        (label smoothing does not change it), MSE :math:`2s I`, BCE-with-logits
        :math:`s\\operatorname{diag}(\\sigma(1-\\sigma))` (soft labels do not change it).
        """
        out = outputs.detach()
        scale = self.entry_scale(out)
        if self.kind == "cross_entropy":
            probs = torch.softmax(out, dim=1)
            mass = self._soft_target_mass(targets, out)
            pu = probs * block
            return mass * (pu - probs * pu.sum(dim=2, keepdim=True)) * scale
        if self.kind == "mse":
            return block * (2.0 * scale)
        if self.kind == "bce_logits":
            s = torch.sigmoid(out)
            return block * (s * (1 - s)) * scale
        return self._generic_hessian_apply(out, targets, block)

    @staticmethod
    def _soft_target_mass(targets: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor | float:
        # Class-probability targets q: Hessian is (sum_c q_c)(diag p - p p^T); sum_c q_c = 1 usually.
        if targets is not None and targets.is_floating_point() and targets.shape == out.shape:
            return targets.sum(dim=1, keepdim=True)
        return 1.0

    def _generic_hessian_apply(
        self, out: torch.Tensor, targets: torch.Tensor, block: torch.Tensor
    ) -> torch.Tensor:
        with torch.enable_grad():
            o = out.requires_grad_(True)
            (g,) = torch.autograd.grad(self.per_sample(o, targets).sum(), o, create_graph=True)
            cols = []
            for u in block:
                (hu,) = torch.autograd.grad(
                    g, o, grad_outputs=u, retain_graph=True, allow_unused=True
                )
                cols.append(torch.zeros_like(u) if hu is None else hu)
        return torch.stack(cols)

    # ------------------------------------------------------------------ the model's predictive law
    @property
    def has_exact_fisher(self) -> bool:
        """True where :math:`E_{y\\sim p(y|f)}[\\nabla\\ell\\nabla\\ell^\\top] = \\nabla^2_f \\ell` (so Fisher = GGN)."""
        return self.kind in ("cross_entropy", "mse", "bce_logits")

    def sample_output_grads(
        self, outputs: torch.Tensor, num_samples: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Gradients :math:`\\nabla_f(-\\log p(\\tilde y|f))` per sample for labels drawn from the model.

        Returns shape ``(num_samples, *outputs.shape)``: the gradient of the summed negative
        log-likelihood times :math:`\\sqrt{s}` (s = :meth:`entry_scale`, 1/L or 1/D for a mean, 1
        for a sum), so that :math:`E[r r^\\top] = s\\,\\nabla^2_f(-\\log p)` is the loss's own
        output Hessian and the Monte-Carlo Fisher estimates the exact one (= GGN). (Scaling by
        s itself, the gradient of the mean-reduced loss, would give :math:`s^2`: wrong by a
        factor L or D whenever a sample has several positions or entries.) Cross-entropy:
        :math:`\\tilde y \\sim \\mathrm{Cat}(\\mathrm{softmax}(f))` at every position, gradient
        :math:`\\sqrt{s}(p - e_{\\tilde y})` (label smoothing changes the loss, not the
        likelihood). MSE is the Gaussian likelihood with variance :math:`1/(2s)` (D/2 for a mean,
        1/2 for a sum), whose negative log-likelihood is the per-sample loss:
        :math:`\\tilde y = f + (2s)^{-1/2}\\xi`, gradient :math:`2s(f - \\tilde y)`, the same as
        :math:`\\sqrt{s}` times the summed form's. BCE-with-logits:
        :math:`\\tilde y \\sim \\mathrm{Bernoulli}(\\sigma(f))` per entry, gradient
        :math:`\\sqrt{s}(\\sigma - \\tilde y)`. Each sample (and position) gets its own draw;
        draws happen on the CPU from ``generator`` so that a seed gives the same labels on every
        device.
        """
        out = outputs.detach()
        entries = out[0].numel()
        scale = self.entry_scale(out)
        if self.kind == "cross_entropy":
            probs = torch.softmax(out.double(), dim=1)
            classes = out.shape[1]
            flat = probs.movedim(1, -1).reshape(-1, classes).cpu()
            draws = torch.multinomial(flat, num_samples, replacement=True, generator=generator)
            onehot = F.one_hot(draws.T, classes).to(out.dtype)  # (S, b*L, C)
            onehot = onehot.reshape(num_samples, *probs.movedim(1, -1).shape).movedim(-1, 2)
            return (probs.to(out.dtype).unsqueeze(0) - onehot.to(out.device)) * scale**0.5
        if self.kind == "mse":
            noise = torch.randn((num_samples, *out.shape), generator=generator, dtype=torch.float64)
            variance = entries / 2 if self.reduction == "mean" else 0.5
            noise = (noise * variance**0.5).to(out.device, out.dtype)
            return -(2.0 * scale) * noise
        if self.kind == "bce_logits":
            s = torch.sigmoid(out)
            u = torch.rand((num_samples, *out.shape), generator=generator, dtype=torch.float64)
            draws = (u.to(out.device) < s.double()).to(out.dtype)
            return (s.unsqueeze(0) - draws) * scale**0.5
        raise InputError(
            f"FisherOperator needs the model's predictive distribution, which curvscope knows for "
            f"nn.CrossEntropyLoss, nn.MSELoss and nn.BCEWithLogitsLoss; got {self.fn!r}. Use one "
            "of those, or EmpiricalFisherOperator / GGNOperator"
        )


def loss_spec(loss_fn: Callable[..., torch.Tensor]) -> LossSpec:
    """Classify ``loss_fn`` and refuse what would silently give a wrong average.

    Accepted reductions: ``"mean"`` (the default) and ``"sum"``, read from the loss's
    ``reduction`` attribute (a plain function counts as mean-reduced; give it an attribute
    ``reduction = "sum"`` if it sums). Refused: ``reduction="none"`` (the engine needs the batch
    loss as one number); class weights in cross-entropy (the mean is then weighted by class, not
    per sample); a non-callable.
    """
    if not callable(loss_fn):
        raise InputError(
            f"loss_fn must be a callable loss such as nn.CrossEntropyLoss(); got {type(loss_fn).__name__}"
        )
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction not in REDUCTIONS:
        name = type(loss_fn).__name__
        raise InputError(
            f"loss_fn has reduction={reduction!r}; curvscope needs the loss of a batch as one "
            f"number, reduction='mean' or reduction='sum': pass {name}() "
            f"(reduction='mean', the default: the curvature of the average loss) or "
            f"{name}(reduction='sum') (the curvature of the summed loss)"
        )
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        if loss_fn.weight is not None:
            raise InputError(
                "nn.CrossEntropyLoss with class weights averages by class weight, not per sample, "
                "so the curvature would not be a per-sample average; drop weight= or pass a custom "
                "mean-reduced callable"
            )
        return LossSpec(loss_fn, "cross_entropy", float(loss_fn.label_smoothing), reduction)
    if isinstance(loss_fn, nn.MSELoss):
        return LossSpec(loss_fn, "mse", reduction=reduction)
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        if loss_fn.weight is not None or loss_fn.pos_weight is not None:
            raise InputError(
                "nn.BCEWithLogitsLoss with weight= or pos_weight= is not supported; drop them"
            )
        return LossSpec(loss_fn, "bce_logits", reduction=reduction)
    return LossSpec(loss_fn, "custom", reduction=reduction)


def check_loss_on_batch(
    spec: LossSpec, outputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Evaluate the loss on one batch, turning shape errors and a wrong reduction into clear errors."""
    spec.check_shapes(outputs, targets)
    try:
        value = spec.fn(outputs, targets)
    except (RuntimeError, IndexError, ValueError) as err:
        raise InputError(
            f"loss_fn failed on outputs {tuple(outputs.shape)} ({outputs.dtype}) and targets "
            f"{tuple(targets.shape)} ({targets.dtype}): {err}"
        ) from err
    if value.ndim != 0:
        raise InputError(
            f"loss_fn returned a tensor of shape {tuple(value.shape)}; it must return the loss "
            "of the batch as a scalar (reduction='mean' or reduction='sum')"
        )
    if spec.kind == "custom" and outputs.shape[0] > 1:
        per_sample = spec.per_sample(outputs.detach(), targets)
        if spec.reduction == "sum":
            expected, what = per_sample.sum(), "sum"
            hint = "a mean reduction? drop its reduction='sum' attribute"
        else:
            expected, what = per_sample.mean(), "mean"
            hint = (
                "a sum reduction? give the callable an attribute reduction='sum', or use e.g. "
                "nn.CrossEntropyLoss(reduction='sum')"
            )
        if not torch.allclose(value.detach(), expected, rtol=1e-4, atol=1e-7):
            raise InputError(
                f"loss_fn is not a per-sample {what}: on a batch of {outputs.shape[0]} it returned "
                f"{float(value):.6g}, but the {what} of its per-sample values is "
                f"{float(expected):.6g} ({hint}; or a loss that couples samples); curvscope needs "
                f"loss(outputs, targets) = {what}_i loss(outputs[i], targets[i])"
            )
    return value
