"""Cost of curvature products, as ratios in one run (not a test).

For the digits MLP (64-32-10, P = 2410) and a small CNN with BatchNorm (SmallCNN, ~260k
parameters, 3x32x32 inputs), it times, over the same data:

- a gradient pass (forward + backward over all batches): the unit of every ratio;
- one Hessian product without graph cache, and with every batch graph cached;
- a block of 10 Hessian products (one data pass) vs ten single products;
- the same block with each product method forced (rev-rev, rev-rev-batched, fwd-rev);
- the double-backward product PyHessian uses (per batch: create_graph gradient, then one
  backward), re-implemented here so that no peer is needed, and PyHessian's own
  ``dataloader_hv_product`` when ``pyhessian`` is importable.

Usage: ``python benchmarks/products.py [--device cuda] [--repeats 3] [--out benchmarks/results]``.
Writes ``products-<device>.md``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from curvscope.data import load_dataset
from curvscope.models import build_model
from curvscope.operators import HessianOperator


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device, repeats: int, label: str = "") -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    if label:
        print(f"  {label}: {statistics.median(times):.4f} s", flush=True)
    return statistics.median(times)


def _setup(name: str, device: torch.device, num_data: int, batch_size: int):
    gen = torch.Generator().manual_seed(0)
    if name == "mlp":
        ds = load_dataset("digits", "train")
        x, y = ds.get_batch(list(range(len(ds))))
        x = x.reshape(len(ds), -1)
        model = build_model("mlp", input_shape=(64,), num_outputs=10, seed=0)
    else:
        x = torch.randn(num_data, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (num_data,), generator=gen)
        model = build_model("cnn", input_shape=(3, 32, 32), num_outputs=10, seed=0)
    model = model.to(device).eval()
    batches = [
        (x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
        for i in range(0, len(x), batch_size)
    ]
    return model, batches


def _gradient_pass(model: nn.Module, loss_fn: nn.Module, batches) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    for x, y in batches:
        torch.autograd.grad(loss_fn(model(x), y), params)


def _pyhessian_style_product(
    model: nn.Module, loss_fn: nn.Module, batches, v: list[torch.Tensor]
) -> None:
    """PyHessian's dataloader_hv_product: per batch, create_graph gradient then one backward."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        loss = loss_fn(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        hv = torch.autograd.grad(grads, params, grad_outputs=v)
        total = [t + h * x.shape[0] for t, h in zip(total, hv)]


def bench(
    name: str, device: torch.device, repeats: int, num_data: int, batch_size: int
) -> dict[str, float]:
    model, batches = _setup(name, device, num_data, batch_size)
    print(f"{name}:", flush=True)
    loss_fn = nn.CrossEntropyLoss()
    num_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(1)
    block = torch.randn(num_params, 10, generator=gen).to(device)
    vec = block[:, 0].contiguous()
    t: dict[str, float] = {"P": num_params, "N": sum(len(b[1]) for b in batches)}

    _gradient_pass(model, loss_fn, batches)  # warm-up
    t["gradient pass"] = _time(
        lambda: _gradient_pass(model, loss_fn, batches), device, repeats, "gradient pass"
    )

    op = HessianOperator(model, loss_fn, batches, cache=False)
    op @ vec
    op @ block  # verification and per-k tuning happen on first use; time the steady state
    t["1 product"] = _time(lambda: op @ vec, device, repeats, "1 product")
    t["block of 10"] = _time(lambda: op @ block, device, repeats, "block of 10")
    t["10 single products"] = _time(
        lambda: [op @ block[:, j].contiguous() for j in range(10)], device, 1
    )
    t["chosen (k=1, k=10)"] = (
        f"{op.report.chosen.get(('fresh', 1))}, {op.report.chosen.get(('fresh', 10))}"  # type: ignore[assignment]
    )
    for method in ("rev-rev", "rev-rev-batched", "fwd-rev"):
        forced = HessianOperator(model, loss_fn, batches, cache=False, method=method, verify=False)
        try:
            forced @ block
            t[f"block of 10, {method}"] = _time(
                lambda forced=forced: forced @ block, device, repeats
            )
        except RuntimeError as err:
            print(f"{name}: {method} failed: {err}")

    cached = HessianOperator(model, loss_fn, batches, cache=True)
    cached @ vec
    cached @ block
    t["1 product, cached graphs"] = _time(
        lambda: cached @ vec, device, repeats, "1 product, cached graphs"
    )
    t["block of 10, cached graphs"] = _time(
        lambda: cached @ block, device, repeats, "block of 10, cached graphs"
    )
    t["cache memory (MiB)"] = cached.cache_info.cached_bytes / 2**20

    v = [p.detach().clone() for p in op.layout.split(vec[:, None])]
    v = [p[0] for p in v]
    t["PyHessian-style product"] = _time(
        lambda: _pyhessian_style_product(model, loss_fn, batches, v), device, repeats
    )
    try:
        import pyhessian  # noqa: F401
        from pyhessian import hessian as pyh

        if not hasattr(torch, "eig"):
            torch.eig = lambda a, eigenvectors=False: (
                None
            )  # shim: the pip release imports it, we never call it
        loader = batches
        h = pyh(model, loss_fn, dataloader=loader, cuda=device.type == "cuda")
        h.device = device
        t["PyHessian dataloader_hv_product"] = _time(
            lambda: h.dataloader_hv_product(v), device, repeats
        )
    except ImportError:
        pass
    return t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cnn-data", type=int, default=512, help="samples for the CNN")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = {
        name: bench(name, device, args.repeats, args.cnn_data, args.batch_size)
        for name in ("mlp", "cnn")
    }
    dev = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    lines = [
        f"# Hessian products — {dev}, torch {torch.__version__}",
        "",
        "Seconds (median of repeats) and ratio to one gradient pass over the same data. "
        f"Batch size {args.batch_size}. Command: `python benchmarks/products.py --device {args.device}`.",
        "",
        "| quantity | MLP s | MLP / grad | CNN s | CNN / grad |",
        "|---|---|---|---|---|",
    ]
    keys = [k for k in rows["cnn"] if k not in ("P", "N")]
    for key in keys:
        cells = []
        for name in ("mlp", "cnn"):
            val = rows[name].get(key, "")
            if isinstance(val, float) and "MiB" not in key:
                cells += [f"{val:.4f}", f"{val / rows[name]['gradient pass']:.2f}"]
            elif isinstance(val, float):
                cells += [f"{val:.1f}", ""]
            else:
                cells += [str(val), ""]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for name in ("mlp", "cnn"):
        r = rows[name]
        lines.append("")
        lines.append(
            f"**{name}** (P = {r['P']}, N = {r['N']}): block of 10 / ten singles = "
            f"{r['block of 10'] / r['10 single products']:.2f}; cached block of 10 / ten singles = "
            f"{r['block of 10, cached graphs'] / r['10 single products']:.2f}; cached product = "
            f"{r['1 product, cached graphs'] / r['gradient pass']:.2f} gradient passes; PyHessian-style product = "
            f"{r['PyHessian-style product'] / r['gradient pass']:.2f} gradient passes."
        )
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"products-{device.type}.md"
    path.write_text(text)
    print(text)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
