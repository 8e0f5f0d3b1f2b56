"""Independent dense references for the curvature operators, and the shared test cases.

Everything here is built without curvscope's engine: reverse-over-reverse Hessians from
``torch.autograd.functional.hessian`` (never jacfwd-of-jacrev, which is wrong for LayerNorm in
torch 2.13), per-sample Jacobians from reverse-mode ``torch.autograd.functional.jacobian``, output
Hessians from reverse-over-reverse in output space, and loops over samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    model: nn.Module, inputs: Any
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


# ---------------------------------------------------------------------------- any reduction, any inputs
#
# References for sum- or mean-reduced losses and for inputs that are tuples or mappings, written
# without the engine's decomposition: the Hessian and the GGN come from the loss *as written*
# evaluated on the whole dataset at once (whatever its reduction), the per-sample quantities from
# a Python loop that calls the loss on one sample at a time, and the Fisher from an explicit sum
# over the model's labels. The structure handling is this file's own (slice each tensor).


def sample_slice(inputs, start: int, stop: int):
    """Samples start:stop of a tensor, a tuple/list of tensors, or a dict/UserDict of tensors."""
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(sample_slice(v, start, stop) for v in inputs)
    return type(inputs)({k: sample_slice(v, start, stop) for k, v in inputs.items()})


def ragged_batches(inputs, targets: torch.Tensor, sizes: tuple[int, ...]) -> list:
    """A list of (inputs, targets) batches of the given sizes."""
    out, start = [], 0
    for size in sizes:
        out.append((sample_slice(inputs, start, start + size), targets[start : start + size]))
        start += size
    assert start == targets.shape[0]
    return out


@dataclass
class AnyCase:
    """A model, a loss of either reduction and N samples of inputs of any structure."""

    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    inputs: object
    targets: torch.Tensor

    @property
    def num_data(self) -> int:
        return int(self.targets.shape[0])

    @property
    def average(self) -> float:
        """The loss as written over the data is ``average * sum_i loss(sample i)``."""
        return 1.0 / self.num_data if self.loss_fn.reduction == "mean" else 1.0


def any_hessian(case: AnyCase) -> torch.Tensor:
    """The Hessian of ``loss_fn(model(all inputs), all targets)``: the loss as written."""
    case.model.eval()
    fn, theta = _flat_fn(case.model, case.inputs)
    return hessian(lambda t: case.loss_fn(fn(t), case.targets), theta)


def any_ggn(case: AnyCase) -> torch.Tensor:
    """:math:`J^\\top \\nabla^2_F L(F) J` with F all N outputs stacked and L the loss as written."""
    case.model.eval()
    fn, theta = _flat_fn(case.model, case.inputs)
    outputs = fn(theta).detach()
    jac = jacobian(fn, theta).reshape(outputs.numel(), -1)
    lam = hessian(
        lambda f: case.loss_fn(f.reshape(outputs.shape), case.targets), outputs.reshape(-1)
    )
    return jac.T @ lam @ jac


def any_per_sample_gradients(case: AnyCase) -> torch.Tensor:
    """Row i: the gradient of ``loss_fn`` on sample i alone (a loop; (N, P))."""
    case.model.eval()
    rows = []
    for i in range(case.num_data):
        fn, theta = _flat_fn(case.model, sample_slice(case.inputs, i, i + 1))
        y = case.targets[i : i + 1]
        rows.append(jacobian(lambda t, fn=fn, y=y: case.loss_fn(fn(t), y), theta))
    return torch.stack(rows)


def any_empirical_fisher(case: AnyCase) -> torch.Tensor:
    g = any_per_sample_gradients(case)
    return case.average * g.T @ g


def any_covariance(case: AnyCase) -> torch.Tensor:
    g = any_per_sample_gradients(case)
    c = g - g.mean(dim=0)
    return case.average * c.T @ c


def any_fisher(case: AnyCase) -> torch.Tensor:
    """The exact Fisher as an explicit expectation over the model's labels, per sample.

    The likelihood is tempered like the loss: :math:`F_i = s\\,E_y[\\nabla\\log p\\,\\nabla\\log
    p^\\top]` with s the ratio of the per-sample loss to its summed form (1/L or 1/D for a mean,
    1 for a sum), so that the Fisher equals the GGN for these losses. Cross-entropy: every class
    label (per position) weighted by softmax; BCE-with-logits: every 0/1 label vector weighted
    by its Bernoulli probability; MSE: the Gaussian whose negative log-likelihood is the
    per-sample loss, whose Fisher in output space is the loss's (constant) output Hessian. Each expectation is of :math:`r r^\\top`, r the loss gradient with respect to
    the outputs for the drawn label.
    """
    case.model.eval()
    total = 0
    for i in range(case.num_data):
        fn, theta = _flat_fn(case.model, sample_slice(case.inputs, i, i + 1))
        out = fn(theta).detach()
        jac = jacobian(fn, theta).reshape(out.numel(), -1)

        # the summed negative log-likelihood (label smoothing changes the loss, not the model's
        # law), and the temperature s = loss / summed loss of one sample (1/L or 1/D for a mean)
        def nll(reduction: str) -> nn.Module:
            if isinstance(case.loss_fn, nn.CrossEntropyLoss):
                return nn.CrossEntropyLoss(reduction=reduction)
            return type(case.loss_fn)(reduction=reduction)

        likelihood = nll("sum")
        y_i = case.targets[i : i + 1]
        temperature = float(nll(case.loss_fn.reduction)(out, y_i) / likelihood(out, y_i))

        def grad_at(label: torch.Tensor, out=out, nll=likelihood) -> torch.Tensor:
            return jacobian(lambda f: nll(f.reshape(out.shape), label), out.reshape(-1))

        if isinstance(case.loss_fn, nn.CrossEntropyLoss):
            probs = torch.softmax(out, dim=1)[0]  # (C, *positions)
            classes = probs.shape[0]
            flat_p = probs.reshape(classes, -1)
            positions = flat_p.shape[1]
            lam = 0
            for labels in torch.cartesian_prod(*[torch.arange(classes)] * positions).reshape(
                -1, positions
            ):
                weight = torch.prod(flat_p[labels, torch.arange(positions)])
                r = grad_at(labels.reshape(1, *probs.shape[1:]))
                lam = lam + weight * torch.outer(r, r)
        elif isinstance(case.loss_fn, nn.BCEWithLogitsLoss):
            s = torch.sigmoid(out).reshape(-1)
            lam = 0
            for bits in torch.cartesian_prod(
                *[torch.tensor([0.0, 1.0], dtype=out.dtype)] * s.numel()
            ).reshape(-1, s.numel()):
                weight = torch.prod(torch.where(bits == 1, s, 1 - s))
                r = grad_at(bits.reshape(out.shape))
                lam = lam + weight * torch.outer(r, r)
        else:
            lam = hessian(
                lambda f, out=out: case.loss_fn(f.reshape(out.shape), torch.zeros_like(out)),
                out.reshape(-1),
            )
            temperature = 1.0  # the output Hessian of the loss itself already carries it
        total = total + temperature * jac.T @ lam @ jac
    return case.average * total


def any_references(case: AnyCase) -> dict[str, torch.Tensor]:
    h, g = any_hessian(case), any_ggn(case)
    return {
        "hessian": h,
        "ggn": g,
        "residual": h - g,
        "empirical-fisher": any_empirical_fisher(case),
        "covariance": any_covariance(case),
        "fisher": any_fisher(case),
    }


class AnyInputNet(nn.Module):
    """One network, four input structures: a (N, 7) tensor, a tuple (x, z), or a dict/UserDict
    {"x": x, "z": z} with x (N, 5) and z (N, 2); outputs (N, *out_shape). The same weights give
    the same function whatever the structure."""

    def __init__(self, kind: str, out_shape: tuple[int, ...] = (3,)) -> None:
        super().__init__()
        self.kind, self.out_shape = kind, out_shape
        self.fc = nn.Linear(5, 6)
        self.gate = nn.Linear(2, 6)
        self.head = nn.Linear(6, int(torch.tensor(out_shape).prod()))

    def forward(self, inputs) -> torch.Tensor:
        if self.kind == "tensor":
            x, z = inputs[:, :5], inputs[:, 5:]
        elif self.kind == "tuple":
            x, z = inputs
        else:
            x, z = inputs["x"], inputs["z"]
        h = torch.tanh(self.fc(x)) * torch.sigmoid(self.gate(z))
        return self.head(h).reshape(-1, *self.out_shape)


INPUT_KINDS = ("tensor", "tuple", "dict", "userdict")

#: loss name -> (loss class and options, output shape per sample, target kind)
ANY_LOSSES: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...], str]] = {
    "ce": (nn.CrossEntropyLoss, (3,), "class"),
    "ce-smooth": (lambda **kw: nn.CrossEntropyLoss(label_smoothing=0.1, **kw), (3,), "class"),
    "ce-seq": (nn.CrossEntropyLoss, (3, 2), "class-seq"),  # 3 classes at 2 positions
    "bce-soft": (nn.BCEWithLogitsLoss, (3,), "soft"),
    "mse-multi": (nn.MSELoss, (2, 3), "real"),
}


def make_inputs(kind: str, x: torch.Tensor, z: torch.Tensor):
    from collections import UserDict

    if kind == "tensor":
        return torch.cat([x, z], dim=1)
    if kind == "tuple":
        return (x, z)
    if kind == "dict":
        return {"x": x, "z": z}
    return UserDict({"x": x, "z": z})


def make_any_case(
    kind: str, loss_name: str, reduction: str, *, num_data: int = 23, seed: int = 0
) -> AnyCase:
    """The shared cases of the reduction and input-structure tests (float64)."""
    loss_cls, out_shape, targets_kind = ANY_LOSSES[loss_name]
    torch.manual_seed(seed)  # parameter initialisation only
    model = AnyInputNet(kind, out_shape).double()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(num_data, 5, generator=gen, dtype=torch.float64)
    z = torch.randn(num_data, 2, generator=gen, dtype=torch.float64)
    if targets_kind == "class":
        targets = torch.randint(0, 3, (num_data,), generator=gen)
    elif targets_kind == "class-seq":
        targets = torch.randint(0, 3, (num_data, *out_shape[1:]), generator=gen)
    elif targets_kind == "soft":
        targets = torch.rand(num_data, *out_shape, generator=gen, dtype=torch.float64)
    else:
        targets = torch.randn(num_data, *out_shape, generator=gen, dtype=torch.float64)
    return AnyCase(model, loss_cls(reduction=reduction), make_inputs(kind, x, z), targets)


# ---------------------------------------------------------------------------- training reference
def sgd_reference(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[..., torch.Tensor],
    *,
    seed: int,
    lr: float,
    momentum: float,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
) -> nn.Module:
    """One nn.Module trained by ``torch.optim.SGD``: ``steps`` full-batch steps, or ``epochs`` of
    minibatches in the ensemble trainer's per-seed order (``ensemble_order``)."""
    from curvscope.training import ensemble_order

    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    if batch_size is None:
        batches = [slice(None)] * steps
    else:
        batches = []
        for epoch in range(epochs):
            order = ensemble_order(seed, epoch, x.shape[0])
            batches += [order[i : i + batch_size] for i in range(0, x.shape[0], batch_size)]
    for idx in batches:
        opt.zero_grad()
        loss(model(x[idx]), y[idx]).backward()
        opt.step()
    return model
