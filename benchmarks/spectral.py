"""Benchmark curvscope.spectral.slq against PyHessian and curvlinops in the same run.

Times SLQ with ``--steps`` Lanczos steps and each of ``--probes`` probe counts on a small CNN
(3 conv + BN layers, 3x32x32 fixed synthetic inputs) and on a digits MLP, split into Hessian
products and reorthogonalisation, next to PyHessian (``density``, ``eigenvalues``, ``trace``)
and curvlinops (``fast_lanczos``), and writes a markdown table. Not a test.

    PYTHONPATH=src python benchmarks/spectral.py --device cpu --steps 100 --probes 1 10 \
        --out benchmarks/results/

PyHessian's pip release calls the removed ``torch.eig``; it is shimmed here only. Peers are
optional: missing ones are reported as such.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from curvscope._version import __version__
from curvscope.operators.base import SymmetricOperator
from curvscope.spectral import hutchinson_trace, slq, top_eigenpairs


class GraphReuseHessian(SymmetricOperator):
    """Full-batch Hessian products: one retained gradient graph, k columns per backward (vmap).

    Used only while ``curvscope.operators.HessianOperator`` is not available.
    """

    def __init__(
        self, model: nn.Module, loss_fn: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        loss = loss_fn(model(inputs), targets)
        self.grad = torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(loss, self.params, create_graph=True)]
        )
        self._size = self.grad.numel()

    shape = property(lambda self: (self._size, self._size))
    dtype = property(lambda self: self.grad.dtype)
    device = property(lambda self: self.grad.device)

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        if block.shape[1] == 1:
            parts = torch.autograd.grad(self.grad, self.params, block[:, 0], retain_graph=True)
            return torch.cat([p.reshape(-1) for p in parts])[:, None]
        parts = torch.autograd.grad(
            self.grad, self.params, block.T.contiguous(), retain_graph=True, is_grads_batched=True
        )
        return torch.cat([p.reshape(block.shape[1], -1) for p in parts], dim=1).T


def make_operator(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    engine: str = "curvscope",
    batch_size: int | None = None,
) -> tuple[SymmetricOperator, str]:
    if engine == "graph-reuse":
        return GraphReuseHessian(
            model, loss_fn, inputs, targets
        ), "GraphReuseHessian (benchmark-local)"
    try:
        from curvscope.operators import HessianOperator
    except ImportError:
        return GraphReuseHessian(
            model, loss_fn, inputs, targets
        ), "GraphReuseHessian (benchmark-local)"
    op = HessianOperator(model, loss_fn, (inputs, targets), batch_size=batch_size)
    return op, "HessianOperator"


def small_cnn() -> nn.Module:
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(3, 48, 1),
        *block(48, 96, 2),
        *block(96, 128, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 10),
    )


def problems(
    device: torch.device, num_samples: int, hidden: int
) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # model initialisation only (benchmark script, not library code)
    cnn = small_cnn().to(device).eval()
    x_cnn = torch.randn(num_samples, 3, 32, 32, generator=gen).to(device)
    y_cnn = torch.randint(0, 10, (num_samples,), generator=gen).to(device)
    x, y = load_digits(return_X_y=True)
    mlp = nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, 10)).to(device).eval()
    x_mlp = torch.as_tensor(x / 16.0, dtype=torch.float32).to(device)
    y_mlp = torch.as_tensor(y).to(device)
    return {"cnn": (cnn, x_cnn, y_cnn), "digits_mlp": (mlp, x_mlp, y_mlp)}


def split(
    x: torch.Tensor, y: torch.Tensor, batch_size: int | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The data as a list of batches (one batch when ``batch_size`` is None)."""
    size = batch_size or len(x)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_pyhessian(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    probes: int,
    device: torch.device,
    batch_size: int | None = None,
) -> dict[str, Any]:
    try:
        import importlib

        ph = importlib.import_module("pyhessian.hessian")
        if not hasattr(ph, "hessian_vector_product"):  # the package re-exports the class
            import sys

            ph = sys.modules["pyhessian.hessian"]
    except ImportError as err:
        return {"error": f"pyhessian not installed ({err})"}

    def eig_shim(
        matrix: torch.Tensor, eigenvectors: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eig(matrix)
        pairs = torch.stack([values.real, values.imag], dim=1)
        return pairs, vectors.real

    torch.eig = eig_shim  # type: ignore[attr-defined]
    product_time = [0.0]
    product_count = [0]
    original = ph.hessian_vector_product

    def timed(fn: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            sync(device)
            tick = time.perf_counter()
            out = fn(*args)
            sync(device)
            product_time[0] += time.perf_counter() - tick
            product_count[0] += 1
            return out

        return wrapper

    batches = split(x, y, batch_size)
    try:
        torch.manual_seed(0)  # PyHessian draws probes from the global RNG
        loss_fn = nn.CrossEntropyLoss()
        sync(device)
        tick = time.perf_counter()
        cuda = device.type == "cuda"
        if len(batches) == 1:  # one retained graph; a product is hessian_vector_product
            ph.hessian_vector_product = timed(original)
            comp = ph.hessian(model, loss_fn, data=(x, y), cuda=cuda)
        else:  # dataloader mode: a product is a forward + two backward passes per batch
            comp = ph.hessian(model, loss_fn, dataloader=batches, cuda=cuda)
            comp.dataloader_hv_product = timed(comp.dataloader_hv_product)
        comp.density(iter=steps, n_v=probes)
        sync(device)
        density_s = time.perf_counter() - tick
        density_products = product_time[0]
        density_count = product_count[0]
        product_count[0] = 0
        tick = time.perf_counter()
        comp.eigenvalues(maxIter=steps, top_n=1)  # power iteration, PyHessian's default tol 1e-3
        eig_s = time.perf_counter() - tick
        eig_count = product_count[0]
        product_count[0] = 0
        tick = time.perf_counter()
        comp.trace(maxIter=steps)  # stops when the running mean changes by < 1e-3 (default tol)
        trace_s = time.perf_counter() - tick
        trace_count = product_count[0]
    finally:
        ph.hessian_vector_product = original
        model.zero_grad(set_to_none=True)
    return {
        "density_s": density_s,
        "products_s": density_products,
        "products_n": density_count,
        "other_s": density_s - density_products,
        "eigenvalues_s": eig_s,
        "eigenvalues_n": eig_count,
        "trace_s": trace_s,
        "trace_n": trace_count,
    }


def run_curvlinops(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    probes: int,
    batch_size: int | None = None,
) -> dict[str, Any]:
    try:
        from curvlinops import HessianLinearOperator
        from curvlinops.papyan2020traces.spectrum import fast_lanczos
    except ImportError as err:
        return {"error": f"curvlinops not installed ({err})"}
    params = [p for p in model.parameters() if p.requires_grad]
    tick = time.perf_counter()
    op = HessianLinearOperator(
        model, nn.CrossEntropyLoss(), params, split(x, y, batch_size), check_deterministic=False
    )
    for _ in range(probes):
        fast_lanczos(op, steps)
    return {"density_s": time.perf_counter() - tick}


def run_ours(op: SymmetricOperator, steps: int, probes: int) -> dict[str, Any]:
    tick = time.perf_counter()
    density = slq(op, num_steps=steps, num_probes=probes, seed=0)
    total = time.perf_counter() - tick
    timings = density.timings
    tick = time.perf_counter()
    top = top_eigenpairs(op, 1, seed=0, tol=1e-3)
    eig_s = time.perf_counter() - tick
    tick = time.perf_counter()
    trace = hutchinson_trace(op, num_matvecs=steps, seed=0)  # the whole budget, rounds of 16
    trace_s = time.perf_counter() - tick
    return {
        "density_s": total,
        "products_s": timings["products"],
        "products_n": steps * probes,
        "other_s": timings["reorthogonalization"],
        "eigenvalues_s": eig_s,
        "eigenvalues_n": top.num_matvecs,
        "trace_s": trace_s,
        "trace_n": trace.num_matvecs,
    }


def gradient_pass_seconds(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int = 5
) -> float:
    """Median time of one forward + backward pass over the whole data (the unit 'gp')."""
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for _ in range(repeats + 1):
        sync(device)
        tick = time.perf_counter()
        torch.autograd.grad(nn.CrossEntropyLoss()(model(x), y), params)
        sync(device)
        times.append(time.perf_counter() - tick)
    return float(np.median(times[1:]))


def topk_comparison(out: Path, size: int = 2000, k: int = 5) -> None:
    """Block Lanczos vs ARPACK (eigsh) vs LOBPCG on a planted rotated-diagonal spectrum."""
    from curvscope import DenseOperator

    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.standard_normal((size, size)))[0]
    lam = np.concatenate(
        [
            np.zeros(size * 3 // 5),
            rng.uniform(0.05, 2, size - size * 3 // 5 - 7),
            [10, 20, 50, 80.0],
            [-3, -2, -1.5],
        ]
    )
    op = DenseOperator(torch.as_tensor((rotation * lam) @ rotation.T))
    ordered = np.sort(lam)
    lines = [
        f"# top_eigenpairs: methods compared (planted P = {size}, k = {k}, float64, tol 1e-10)",
        "",
        "| which | method | seconds | products (columns) | max rel. error vs eigh | max residual | converged |",
        "|---|---|---|---|---|---|---|",
    ]
    for which in ("largest", "smallest"):
        truth = ordered[::-1][:k] if which == "largest" else ordered[:k]
        for method in ("lanczos", "block_lanczos", "eigsh", "lobpcg"):
            tick = time.perf_counter()
            res = top_eigenpairs(op, k, which=which, method=method)
            seconds = time.perf_counter() - tick
            err = np.abs(res.values - truth).max() / np.abs(truth).max()
            lines.append(
                f"| {which} | {method} | {seconds:.2f} | {res.num_matvecs} | {err:.1e} | "
                f"{res.residuals.max():.1e} | {bool(res.converged.all())} |"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "spectral_topk.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--probes", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--num-samples", type=int, default=512, help="CNN dataset size N")
    parser.add_argument("--hidden", type=int, default=64, help="digits MLP hidden width")
    parser.add_argument("--problems", nargs="+", default=["cnn", "digits_mlp"])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="split the data into batches (PyHessian then uses its dataloader mode); default one",
    )
    parser.add_argument("--out", default="benchmarks/results/")
    parser.add_argument(
        "--engine",
        choices=["curvscope", "graph-reuse"],
        default="curvscope",
        help="products from curvscope's HessianOperator or the benchmark-local graph-reuse HVP",
    )
    parser.add_argument("--topk-only", action="store_true", help="only compare top-k methods")
    args = parser.parse_args()
    if args.topk_only:
        topk_comparison(Path(args.out))
        return
    device = torch.device(args.device)
    rows = []
    for name, (model, x, y) in problems(device, args.num_samples, args.hidden).items():
        if name not in args.problems:
            continue
        op, op_name = make_operator(
            model, nn.CrossEntropyLoss(), x, y, args.engine, args.batch_size
        )
        size = op.shape[0]
        # Untimed warm-up: the operator's one-time method selection and graph building.
        tick = time.perf_counter()
        op @ torch.zeros(size, 1, dtype=op.dtype, device=op.device)
        print(f"{name}: warm-up product {time.perf_counter() - tick:.2f}s", flush=True)
        grad_pass = gradient_pass_seconds(model, x, y, device)
        for probes in args.probes:
            ours = run_ours(op, args.steps, probes)
            peer = run_pyhessian(model, x, y, args.steps, probes, device, args.batch_size)
            lin = run_curvlinops(model, x, y, args.steps, probes, args.batch_size)
            row = {
                "problem": name,
                "P": size,
                "N": len(x),
                "batches": len(split(x, y, args.batch_size)),
                "probes": probes,
                "grad_pass_s": grad_pass,
                "ours": ours,
                "pyhessian": peer,
                "curvlinops": lin,
            }
            rows.append(row)
            print(row, flush=True)
    lines = [
        f"# curvscope.spectral benchmark ({args.device}, {args.steps} Lanczos steps)",
        "",
        f"curvscope {__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads {torch.get_num_threads()}; our products: {op_name}.",
        "Times in seconds; ratio = peer time / curvscope time (higher is better for curvscope).",
        "gp = one forward + backward pass over the N samples; 'gp/product' = product seconds per",
        "column / gp. Top-1 and trace: seconds (products spent); PyHessian's power iteration and",
        "trace stop at their default tol 1e-3 on the running value, ours spends the budget shown.",
        "With several batches, PyHessian's product (dataloader mode) includes a forward and a",
        "create-graph backward per batch; ours multiplies through cached batch graphs.",
        "",
        "| problem | P | N | probes | gp (s) | ours slq | ours products (gp/product) | ours reorth | "
        "PyHessian density | PyH products (gp/product) | PyH other | ratio PyH | "
        "curvlinops (no reorth) | ratio curvlinops | ours top-1 | PyH eigenvalues | ours trace | "
        "PyH trace |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def per_product(res: dict[str, Any], gp: float) -> str:
        if "products_s" not in res:
            return "-"
        return f"{res['products_s']:.2f} ({res['products_s'] / res['products_n'] / gp:.2f})"

    def with_count(res: dict[str, Any], key: str) -> str:
        if f"{key}_s" not in res:
            return str(res.get("error", "-"))
        return f"{res[f'{key}_s']:.2f} ({res[f'{key}_n']})"

    for r in rows:
        o, p, c = r["ours"], r["pyhessian"], r["curvlinops"]
        ratio_p = p["density_s"] / o["density_s"] if "density_s" in p else "n/a"
        ratio_c = c["density_s"] / o["density_s"] if "density_s" in c else "n/a"
        gp = r["grad_pass_s"]
        cells = [
            r["problem"],
            r["P"],
            r["N"] if r["batches"] == 1 else f"{r['N']} ({r['batches']} batches)",
            r["probes"],
            f"{gp:.4f}",
            o["density_s"],
            per_product(o, gp),
            o["other_s"],
            p.get("density_s", p.get("error")),
            per_product(p, gp),
            p.get("other_s", "-"),
            ratio_p,
            c.get("density_s", c.get("error")),
            ratio_c,
            with_count(o, "eigenvalues"),
            with_count(p, "eigenvalues"),
            with_count(o, "trace"),
            with_count(p, "trace"),
        ]
        lines.append("| " + " | ".join(fmt(v) for v in cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    batching = f"_batch{args.batch_size}" if args.batch_size else ""
    path = out / f"spectral_{device.type}_{args.engine}_{'_'.join(args.problems)}{batching}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
