"""Independent dense references for the curvature operators, and the shared test cases.

Everything here is built without curvscope's engine: reverse-over-reverse Hessians from
``torch.autograd.functional.hessian`` (never jacfwd-of-jacrev, which is wrong for LayerNorm in
torch 2.13), per-sample Jacobians from reverse-mode ``torch.autograd.functional.jacobian``, output
Hessians from reverse-over-reverse in output space, and loops over samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.functional import hessian, jacobian

# ---------------------------------------------------------------------------- models


class LayerNormGELU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.norm = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.norm(self.fc1(x))))


class TinyCNN(nn.Module):
    """Conv + BatchNorm (eval: running statistics) + ReLU + pooling + linear, on 1x6x6 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 3 * 3, 3)
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():  # non-trivial running statistics and affine parameters
            self.bn.running_mean.copy_(torch.randn(3, generator=gen) * 0.1)
            self.bn.running_var.copy_(torch.rand(3, generator=gen) + 0.5)
            self.bn.weight.copy_(torch.rand(3, generator=gen) + 0.5)
            self.bn.bias.copy_(torch.randn(3, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(h.flatten(1))


def _mlp(act: type[nn.Module]) -> nn.Module:
    return nn.Sequential(nn.Linear(5, 7), act(), nn.Linear(7, 6), act(), nn.Linear(6, 3))


def _frozen() -> nn.Module:
    model = _mlp(nn.Tanh)
    model[2].weight.requires_grad_(False)
    return model


MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp-tanh": lambda: _mlp(nn.Tanh),
    "mlp-relu": lambda: _mlp(nn.ReLU),
    "layernorm-gelu": LayerNormGELU,
    "cnn-batchnorm": TinyCNN,
    "frozen-param": _frozen,
}

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "ce": nn.CrossEntropyLoss,
    "ce-smooth": lambda: nn.CrossEntropyLoss(label_smoothing=0.1),
    "mse": nn.MSELoss,
}


@dataclass
class Case:
    model: nn.Module
    loss_fn: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor


def make_case(model_name: str, loss_name: str, *, num_data: int = 23, seed: int = 0) -> Case:
    torch.manual_seed(
        seed
    )  # parameter initialisation only; tests are seeded, never global-stateful
    model = MODELS[model_name]().double()
    gen = torch.Generator().manual_seed(seed + 1)
    shape = (num_data, 1, 6, 6) if model_name == "cnn-batchnorm" else (num_data, 5)
    inputs = torch.randn(shape, generator=gen, dtype=torch.float64)
    if loss_name == "mse":
        targets = torch.randn(num_data, 3, generator=gen, dtype=torch.float64)
    else:
        targets = torch.randint(0, 3, (num_data,), generator=gen)
    return Case(model, LOSSES[loss_name](), inputs, targets)


# ---------------------------------------------------------------------------- dense references


def _trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _flat_fn(
    model: nn.Module, inputs: torch.Tensor
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    named = _trainable(model)
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    rest = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def fn(theta: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(theta, sizes)
        tensors = {n: t.reshape(s) for n, t, s in zip(names, pieces, shapes)}
        tensors.update(rest)
        return torch.func.functional_call(model, (tensors, buffers), (inputs,))

    theta = torch.cat([p.detach().reshape(-1) for _, p in named])
    return fn, theta


def dense_hessian(case: Case, *, vectorize: bool = False) -> torch.Tensor:
    """Reverse-over-reverse Hessian of the loss in the flat trainable parameters;
    ``vectorize`` batches the P backward passes with vmap (same numbers, much faster for P in
    the hundreds)."""
    case.model.eval()
    fn, theta = _flat_fn(case.model, case.inputs)
    return hessian(lambda t: case.loss_fn(fn(t), case.targets), theta, vectorize=vectorize)


def _per_sample(case: Case) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(J_i, Lambda_i, r_i) per sample: output Jacobian, output Hessian and output gradient of
    the per-sample loss l_i = loss(f_i[None], y_i[None])."""
    case.model.eval()
    result = []
    for i in range(case.inputs.shape[0]):
        fn, theta = _flat_fn(case.model, case.inputs[i : i + 1])
        out = fn(theta).detach()[0]
        jac = jacobian(lambda t, fn=fn: fn(t)[0], theta)  # (C, P)
        y = case.targets[i : i + 1]

        def loss_i(f: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
            return case.loss_fn(f[None], y)

        lam = hessian(loss_i, out)
        r = torch.autograd.functional.jacobian(loss_i, out)
        result.append((jac, lam, r))
    return result


def dense_ggn(case: Case) -> torch.Tensor:
    terms = _per_sample(case)
    return sum(j.T @ lam @ j for j, lam, _ in terms) / len(terms)


def per_sample_gradients(case: Case) -> torch.Tensor:
    return torch.stack([j.T @ r for j, _, r in _per_sample(case)])  # (N, P)


def dense_empirical_fisher(case: Case) -> torch.Tensor:
    g = per_sample_gradients(case)
    return g.T @ g / g.shape[0]


def dense_covariance(case: Case) -> torch.Tensor:
    g = per_sample_gradients(case)
    c = g - g.mean(dim=0)
    return c.T @ c / g.shape[0]


def dense_fisher(case: Case) -> torch.Tensor:
    """The exact model Fisher: categorical (softmax) for cross-entropy; Gaussian with variance
    D/2 for MSE, whose Fisher in output space is (2/D) I."""
    total = 0
    n = case.inputs.shape[0]
    for i, (jac, _, _) in enumerate(_per_sample(case)):
        if isinstance(case.loss_fn, nn.CrossEntropyLoss):
            fn, theta = _flat_fn(case.model, case.inputs[i : i + 1])
            p = torch.softmax(fn(theta).detach()[0], dim=0)
            lam = torch.diag(p) - torch.outer(p, p)
        else:
            d = jac.shape[0]
            lam = torch.eye(d, dtype=jac.dtype) * (2.0 / d)
        total = total + jac.T @ lam @ jac
    return total / n


def assert_matches_dense(op, dense: torch.Tensor, *, rtol: float, seed: int = 0) -> None:
    """One shared comparison: the operator's full matrix, a block and a single vector."""
    got = op.to_dense(block_size=17)
    dense = dense.to(got.dtype)
    scale = dense.abs().max().clamp_min(1e-30)
    err = (got - dense).abs().max() / scale
    assert err <= rtol, f"{type(op).__name__}: max relative error {float(err):.3e} > {rtol:.0e}"
    gen = torch.Generator().manual_seed(seed)
    block = torch.randn(dense.shape[0], 3, generator=gen, dtype=torch.float64).to(got.dtype)
    err_block = ((op @ block) - dense @ block).abs().max() / (dense @ block).abs().max().clamp_min(
        1e-30
    )
    assert err_block <= rtol * 10, f"block product error {float(err_block):.3e}"
    single = op @ block[:, 0]
    assert single.shape == (dense.shape[0],)
