"""What ``compile=`` gains: torch.compile of the product, verified (issue 16 item 4).

On the digits MLP (benchmarks.topk.digits_mlp, P = 8970, all 1797 samples in one batch) and the
small CNN (benchmarks.spectral.small_cnn, eval-mode BatchNorm, CIFAR-shaped, one batch of
``--num-samples``), float32, for a Hessian operator with ``compile="always"``: the engine's
verification (float64 on 8 samples and float32 on the first batch, against reverse-over-reverse),
its compile seconds, dynamo graph breaks, and the seconds of one product ``H @ v`` (k = 1)
compiled, uncompiled through the kept graph (``cache=True``) and uncompiled prepared afresh
(``cache=False``), interleaved, median of ``--repeats``; the break-even number of products
``compile seconds / (uncompiled - compiled)`` against each. Timings depend on the machine;
verification, relative errors and graph counts do not.

    PYTHONPATH=src python -m benchmarks.compile --repeats 7
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.spectral import gradient_pass_seconds, small_cnn, sync
from benchmarks.topk import digits_mlp


def problems(
    num_samples: int, models: str = "both"
) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # model initialisation only
        cnn = small_cnn().eval()
    x = torch.randn(num_samples, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (num_samples,), generator=gen)
    chosen = {"mlp": "digits MLP", "cnn": f"small CNN N={num_samples}"}
    found = {chosen["mlp"]: digits_mlp(), chosen["cnn"]: (cnn, x, y)}
    return {k: v for k, v in found.items() if models == "both" or k == chosen[models]}


def bench(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, rewrite: str, device: Any
) -> dict[str, Any]:
    from torch._dynamo.utils import counters

    from curvscope.operators import HessianOperator

    model, x, y = model.to(device), x.to(device), y.to(device)
    size = sum(p.numel() for p in model.parameters())
    v = torch.randn(size, generator=torch.Generator().manual_seed(1)).to(device)
    loss = nn.CrossEntropyLoss()
    options = {"method": "rev-rev", "rewrite": rewrite}
    counters.clear()
    ops = {
        "compiled": HessianOperator(model, loss, (x, y), compile="always", cache=False, **options),
        "kept graph": HessianOperator(model, loss, (x, y), cache=True, **options),
        "afresh": HessianOperator(model, loss, (x, y), cache=False, **options),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = {name: op @ v for name, op in ops.items()}  # setup: verify, compile, cache
    report = ops["compiled"].report
    timing = report.compile_timing
    breaks = sum(counters["graph_break"].values())
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(repeats):  # interleaved
        for name, op in ops.items():
            sync(device)
            tick = time.perf_counter()
            op @ v
            sync(device)
            times[name].append(time.perf_counter() - tick)
    seconds = {name: float(np.median(t)) for name, t in times.items()}
    ref = first["afresh"]
    row = {
        "P": size,
        "N": int(x.shape[0]),
        "compile": report.compile,
        "warnings": [str(w.message) for w in caught if str(w.message).startswith("compile=")],
        "compile_s": timing.compile_seconds,
        "graphs": timing.graphs,
        "graph_breaks": breaks,
        "err_f64": timing.float64_relative_error,
        "err_f32": timing.max_relative_error,
        "diff_vs_afresh": float((first["compiled"] - ref).norm() / ref.norm()),
        "gp": gradient_pass_seconds(model, x, y, device),
        **{f"s_{name}": s for name, s in seconds.items()},
    }
    for name in ("kept graph", "afresh"):
        gain = seconds[name] - seconds["compiled"]
        row[f"break_even_{name}"] = timing.compile_seconds / gain if gain > 0 else None
    return row


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "never" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=256, help="small CNN batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rewrite", default="none", help="rewrite= of the operators")
    parser.add_argument("--models", choices=("both", "mlp", "cnn"), default="both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    print(
        f"compile= on one batch, float32, {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, rewrite={args.rewrite}; seconds per product H @ v "
        f"(median of {args.repeats}) and in gradient passes (gp)"
    )
    print(
        "| model | P | N | report.compile | float64 err | float32 err | graphs | graph breaks "
        "| compile s | compiled s (gp) | kept graph s (gp) | afresh s (gp) "
        "| break-even vs kept | vs afresh |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (model, x, y) in problems(args.num_samples, args.models).items():
        r = bench(model, x, y, args.repeats, args.rewrite, device)
        gp = r["gp"]
        cells = [
            name,
            r["P"],
            r["N"],
            r["compile"],
            _fmt(r["err_f64"], ".1e"),
            _fmt(r["err_f32"], ".1e"),
            r["graphs"],
            r["graph_breaks"],
            f"{r['compile_s']:.1f}",
            *(
                f"{r[f's_{k}']:.4g} ({r[f's_{k}'] / gp:.2f})"
                for k in ("compiled", "kept graph", "afresh")
            ),
            _fmt(r["break_even_kept graph"]),
            _fmt(r["break_even_afresh"]),
        ]
        print("| " + " | ".join(map(str, cells)) + " |", flush=True)
        for message in r["warnings"]:
            print(f"  warning: {message}")


if __name__ == "__main__":
    main()
