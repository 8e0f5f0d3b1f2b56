"""``python -m benchmarks``: curvscope against PyHessian and hessian-eigenthings, one process.

Cases: the digits MLP (P = 8970), the small CNN on one batch (N = 256) and on N = 2048 in
batches of 256, PreResNet-20 on CIFAR-shaped random data. Tasks, each interleaved across the
libraries (the libraries alternate inside every setting, so a slow phase of the machine hits
all of them):

- ``topk``: products and seconds to reach top-1 / top-5 at relative 1e-3 and 1e-6 against a
  float64 truth (the exact spectrum where P <= 12,000, else ARPACK to 1e-12 on
  float64 products), from runs over a grid of each library's own stopping settings;
- ``trace``: Hutchinson and Hutch++ stopping at 1 % (each library's own rule): products,
  actual error vs the stated one;
- ``slq``: Wasserstein-1 distance of the SLQ density to the exact spectrum vs products (only
  where the exact spectrum is computed);
- ``products``: seconds per product column in gradient passes (gp), cache on/off, blocks of 1
  and 10, next to PyHessian's product;
- ``memory``: peak resident memory of a fresh process per (case, library) doing a top-1 run.

Writes ``bench_<device>[_quick].md`` (machine described) and ``bench_<device>_<case>.png``
(error vs products per task) to ``--out``. Peers are imported from ``build/peers`` if there
(``pip install --no-deps --target build/peers pyhessian hessian-eigenthings``) and skipped
with a note when absent. ``--quick``: small sizes, for the CLI test.

    PYTHONPATH=src python -m benchmarks --out benchmarks/results/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import topk as topk_mod
from benchmarks.spectral import gradient_pass_seconds, small_cnn, split

PEERS = Path(__file__).resolve().parent.parent / "build" / "peers"
if PEERS.is_dir() and str(PEERS) not in sys.path:
    sys.path.append(str(PEERS))

CASES = ("digits_mlp", "cnn", "cnn_batched", "preresnet20")
TASKS = ("topk", "trace", "slq", "products", "memory")
TARGETS = (1e-3, 1e-6)
EXACT_LIMIT = 12_000


# ------------------------------------------------------------------------------------- cases
def build_case(name: str, quick: bool) -> dict[str, Any]:
    """Model (float32, eval mode), data and batch size of one case."""
    gen = torch.Generator().manual_seed(0)
    if name == "digits_mlp":
        hidden = (8, 8) if quick else (64, 64)
        model, x, y = topk_mod.digits_mlp(hidden, num_samples=200 if quick else None)
        return {"model": model, "x": x, "y": y, "batch_size": None}
    if name in ("cnn", "cnn_batched"):
        n = (16 if name == "cnn" else 32) if quick else (256 if name == "cnn" else 2048)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = small_cnn().eval()
        x = torch.randn(n, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        batch = None if name == "cnn" else (8 if quick else 256)
        return {"model": model, "x": x, "y": y, "batch_size": batch}
    if name == "preresnet20":
        from curvscope.models.preresnet import PreResNet

        n = 16 if quick else 256
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = PreResNet(20, num_classes=10).eval()
        x = torch.randn(n, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        return {"model": model, "x": x, "y": y, "batch_size": None}
    raise SystemExit(f"unknown case {name!r}; choose from {CASES}")


def operator(case: dict[str, Any], **options: Any) -> Any:
    from curvscope.operators import HessianOperator

    return HessianOperator(
        case["model"],
        nn.CrossEntropyLoss(),
        (case["x"], case["y"]),
        batch_size=case["batch_size"],
        **options,
    )


def truth_of(case: dict[str, Any], k: int = 10) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(top-k descending, all eigenvalues or None, how it was obtained), in float64."""
    size = sum(p.numel() for p in case["model"].parameters())
    if size <= EXACT_LIMIT:
        from curvscope.spectral import exact_spectrum

        values = exact_spectrum(
            operator(case, dtype=torch.float64, method="rev-rev"), block_size=256
        ).eigenvalues
        return values[::-1][:k].copy(), values, "exact float64 spectrum (numpy eigh)"
    cache = Path("build") / f"bench_truth_{case['name']}_{size}_{len(case['x'])}.npy"
    top = topk_mod.reference_top(case["model"], case["x"], case["y"], k, cache)
    return top, None, f"ARPACK (tol 1e-12) on float64 products, cached in {cache}"


_NO_PEERS = False


def _peer(name: str) -> Any:
    if _NO_PEERS:
        return None
    try:
        if name == "pyhessian":
            import pyhessian  # noqa: F401

            return sys.modules["pyhessian.hessian"]
        import hessian_eigenthings

        return hessian_eigenthings
    except ImportError:
        return None


# ------------------------------------------------------------------------------------- tasks
def task_topk(case: dict[str, Any], truth: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    from curvscope.spectral import top_eigenpairs

    op = operator(case)
    op @ torch.zeros(op.shape[0], 1)  # one-time method choice, out of every count
    ph, het = _peer("pyhessian"), _peer("hessian_eigenthings")
    tols = (1e-3, 1e-6) if quick else (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    steps = (10, 20, 40) if quick else (10, 15, 20, 30, 40, 60)
    rows: list[dict[str, Any]] = []
    for k in (1, 5):
        want = truth[:k]
        for i in range(max(len(tols), len(steps))):
            if i < len(tols):
                for method in ("lanczos", "eigsh"):
                    tick = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = top_eigenpairs(op, k, method=method, tol=tols[i])
                    rows.append(
                        _run(
                            f"curvscope {method}",
                            k,
                            tols[i],
                            res.num_matvecs,
                            res.values,
                            want,
                            tick,
                        )
                    )
                if ph is not None:
                    rows.append(_pyhessian_top(ph, case, k, tols[i], want))
            if het is not None and i < len(steps):
                rows.append(_eigenthings_top(het, case, k, steps[i], want))
    return rows


def _run(
    lib: str, k: int, setting: float, products: int, values: Any, want: np.ndarray, tick: float
) -> dict[str, Any]:
    values = np.sort(np.asarray(values, dtype=np.float64))[::-1][: len(want)]
    error = float(np.max(np.abs(values - want) / np.abs(want)))
    return {
        "library": lib,
        "k": k,
        "setting": setting,
        "products": int(products),
        "error": error,
        "seconds": time.perf_counter() - tick,
    }


def _pyhessian_top(ph: Any, case: dict[str, Any], k: int, tol: float, want: np.ndarray) -> dict:
    count = [0]
    original = ph.hessian_vector_product

    def counted(*args: Any) -> Any:
        count[0] += 1
        return original(*args)

    ph.hessian_vector_product = counted
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)  # PyHessian draws from the global RNG
            comp = ph.hessian(
                case["model"], nn.CrossEntropyLoss(), data=(case["x"], case["y"]), cuda=False
            )
            count[0] = 0
            tick = time.perf_counter()
            values, _ = comp.eigenvalues(maxIter=1000, tol=tol, top_n=k)
    finally:
        ph.hessian_vector_product = original
        case["model"].zero_grad(set_to_none=True)
    return _run("PyHessian power", k, tol, count[0], values, want, tick)


def _eigenthings_top(het: Any, case: dict[str, Any], k: int, steps: int, want: np.ndarray) -> dict:
    batches = split(case["x"], case["y"], case["batch_size"])
    op = het.HessianOperator(case["model"], batches, het.supervised_loss(nn.CrossEntropyLoss()))
    tick = time.perf_counter()
    res = het.lanczos(op, k=k, max_iter=steps, which="LA", seed=0, reorthogonalize=True)
    return _run(
        "hessian-eigenthings lanczos", k, steps, steps, res.eigenvalues.cpu().numpy(), want, tick
    )


def task_trace(case: dict[str, Any], trace_truth: float, quick: bool) -> list[dict[str, Any]]:
    from curvscope.spectral import hutchinson_trace, hutchpp_trace

    op = operator(case)
    budget = 100 if quick else 400
    rows = []

    def row(lib: str, products: int, value: float, stated: float, tick: float) -> dict:
        return {
            "library": lib,
            "products": int(products),
            "actual": abs(value - trace_truth) / abs(trace_truth),
            "stated": stated,
            "seconds": time.perf_counter() - tick,
        }

    tick = time.perf_counter()
    est = hutchinson_trace(op, num_matvecs=budget, seed=0, rtol=0.01)
    rows.append(
        row(
            "curvscope Hutchinson (rtol 1 %)",
            est.num_matvecs,
            est.value,
            est.stderr / abs(est.value),
            tick,
        )
    )
    for n in (30, 60) if quick else (30, 60, 120, 240):
        tick = time.perf_counter()
        est = hutchpp_trace(op, num_matvecs=n, seed=0)
        rows.append(
            row(
                f"curvscope Hutch++ ({n})",
                est.num_matvecs,
                est.value,
                est.stderr / abs(est.value),
                tick,
            )
        )
    ph = _peer("pyhessian")
    if ph is not None:
        count = [0]
        original = ph.hessian_vector_product

        def counted(*args: Any) -> Any:
            count[0] += 1
            return original(*args)

        ph.hessian_vector_product = counted
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                comp = ph.hessian(
                    case["model"], nn.CrossEntropyLoss(), data=(case["x"], case["y"]), cuda=False
                )
                count[0] = 0
                tick = time.perf_counter()
                values = comp.trace(maxIter=budget, tol=0.01)
        finally:
            ph.hessian_vector_product = original
            case["model"].zero_grad(set_to_none=True)
        rows.append(row("PyHessian trace (tol 1 %)", count[0], float(np.mean(values)), 0.01, tick))
    het = _peer("hessian_eigenthings")
    if het is not None:
        hop = het.HessianOperator(
            case["model"],
            split(case["x"], case["y"], case["batch_size"]),
            het.supervised_loss(nn.CrossEntropyLoss()),
        )
        for fn, n, label in (
            (het.hutchinson, 100, "Hutchinson"),
            (het.hutch_plus_plus, 99, "Hutch++"),
        ):
            tick = time.perf_counter()
            kwargs = {"num_samples": n} if label == "Hutchinson" else {"num_matvecs": n}
            res = fn(hop, seed=0, **kwargs)
            value = float(res.estimate)
            stated = float(res.stderr) / abs(value)
            rows.append(row(f"hessian-eigenthings {label} ({n})", n, value, stated, tick))
    return rows


def wasserstein(nodes: np.ndarray, weights: np.ndarray, exact: np.ndarray) -> float:
    """Wasserstein-1 distance between a weighted discrete measure and the exact spectrum."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(nodes, exact, u_weights=weights))


def task_slq(case: dict[str, Any], exact: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    from curvscope.spectral import slq

    op = operator(case)
    rows = []
    ph = _peer("pyhessian")
    for steps in (10, 20, 40) if quick else (20, 40, 80):
        for probes in (1, 2) if quick else (1, 10):
            tick = time.perf_counter()
            d = slq(op, num_steps=steps, num_probes=probes, seed=0)
            rows.append(
                {
                    "library": "curvscope slq",
                    "steps": steps,
                    "probes": probes,
                    "products": steps * probes,
                    "w1": wasserstein(d.nodes, d.pooled_weights, exact),
                    "seconds": time.perf_counter() - tick,
                }
            )
            if ph is not None:
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    _shim_torch_eig()
                    comp = ph.hessian(
                        case["model"],
                        nn.CrossEntropyLoss(),
                        data=(case["x"], case["y"]),
                        cuda=False,
                    )
                    tick = time.perf_counter()
                    nodes, weights = comp.density(iter=steps, n_v=probes)
                case["model"].zero_grad(set_to_none=True)
                n_all = np.concatenate([np.asarray(v) for v in nodes])
                w_all = np.concatenate([np.asarray(v) for v in weights]) / probes
                rows.append(
                    {
                        "library": "PyHessian density",
                        "steps": steps,
                        "probes": probes,
                        "products": steps * probes,
                        "w1": wasserstein(n_all, w_all, exact),
                        "seconds": time.perf_counter() - tick,
                    }
                )
    return rows


def _shim_torch_eig() -> None:
    """PyHessian's release calls the removed ``torch.eig``: shimmed here only."""

    def eig(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eig(matrix)
        return torch.stack([values.real, values.imag], dim=1), vectors.real

    torch.eig = eig  # type: ignore[attr-defined]


def task_products(case: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    model, x, y = case["model"], case["x"], case["y"]
    gp = gradient_pass_seconds(model, x, y, torch.device("cpu"), repeats=1 if quick else 5)
    rows = []
    size = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    reps = 1 if quick else 3
    for cache in ("auto", False):
        op = operator(case, cache=cache)
        for width in (1, 10):
            block = torch.randn(size, width, generator=gen)
            op @ block  # method choice / graph cache, untimed
            tick = time.perf_counter()
            for _ in range(reps):
                op @ block
            per_column = (time.perf_counter() - tick) / reps / width
            rows.append(
                {
                    "library": f"curvscope cache={cache}",
                    "block": width,
                    "gp_per_column": per_column / gp,
                }
            )
    ph = _peer("pyhessian")
    if ph is not None:
        batches = split(x, y, case["batch_size"])
        comp = (
            ph.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
            if len(batches) == 1
            else ph.hessian(model, nn.CrossEntropyLoss(), dataloader=batches, cuda=False)
        )
        v = [torch.randn(p.shape, generator=gen) for p in comp.params]
        tick = time.perf_counter()
        for _ in range(reps):
            if len(batches) == 1:
                ph.hessian_vector_product(comp.gradsH, comp.params, v)
            else:
                comp.dataloader_hv_product(v)
        rows.append(
            {
                "library": "PyHessian",
                "block": 1,
                "gp_per_column": (time.perf_counter() - tick) / reps / gp,
            }
        )
        model.zero_grad(set_to_none=True)
    return rows


def memory_child(case_name: str, library: str, quick: bool) -> dict[str, Any]:
    """Run in a fresh process: build the case, run top-1 with one library, report peak RSS."""
    case = build_case(case_name, quick)
    if library == "curvscope":
        from curvscope.spectral import top_eigenpairs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top_eigenpairs(operator(case), 1, tol=1e-3, max_matvecs=20)
    else:
        ph = _peer("pyhessian")
        if ph is None:
            return {"library": library, "error": "not installed"}
        batches = split(case["x"], case["y"], case["batch_size"])
        kw = {"data": (case["x"], case["y"])} if len(batches) == 1 else {"dataloader": batches}
        ph.hessian(case["model"], nn.CrossEntropyLoss(), cuda=False, **kw).eigenvalues(
            maxIter=20, tol=1e-3, top_n=1
        )
    return {"library": library, "peak_rss_mb": round(peak_rss_mb(), 1)}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def task_memory(case_name: str, quick: bool) -> list[dict[str, Any]]:
    rows = []
    for library in ("curvscope", "pyhessian") if _peer("pyhessian") else ("curvscope",):
        cmd = [sys.executable, "-m", "benchmarks", "--memory-child", case_name, library]
        if quick:
            cmd.append("--quick")
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ)
        try:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            rows.append({"library": library, "error": (out.stderr or "no output")[-200:]})
    return rows


# ------------------------------------------------------------------------------------ report
def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}, load average {load[0]:.1f} at start"
    )


def reach(rows: list[dict[str, Any]], lib: str, k: int, target: float) -> str:
    ok = [r for r in rows if r["library"] == lib and r["k"] == k and r["error"] <= target]
    if not ok:
        return "never"
    best = min(ok, key=lambda r: r["products"])
    return f"{best['products']} ({best['seconds']:.2f} s)"


def plot(case_name: str, results: dict[str, Any], out: Path, device: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes files; never called at import
    import matplotlib.pyplot as plt

    panels = [t for t in ("topk", "trace", "slq") if results.get(t)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, task in zip(axes[0], panels, strict=True):
        rows = results[task]
        key = {"topk": "error", "trace": "actual", "slq": "w1"}[task]
        groups: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            label = r["library"] + (f" k={r['k']}" if task == "topk" else "")
            if task == "trace":
                label = r["library"].split(" (")[0]
            if task == "slq":
                label = f"{r['library']}, {r['probes']} probe(s)"
            groups.setdefault(label, []).append((r["products"], max(r[key], 1e-17)))
        for label, pts in groups.items():
            pts.sort()
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="products",
            title=f"{case_name}: {task}",
            ylabel={
                "error": "relative eigenvalue error",
                "actual": "relative trace error",
                "w1": "Wasserstein-1 to exact",
            }[key],
        )
        ax.legend(fontsize=6)
    fig.tight_layout()
    path = out / f"bench_{device}_{case_name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def report(all_results: dict[str, dict[str, Any]], quick: bool) -> list[str]:
    lines = [
        f"# curvscope benchmark{' (quick sizes)' if quick else ''}",
        "",
        f"Machine: {machine()}.",
        "Counts (products) do not depend on the machine; seconds do. Libraries run interleaved "
        "in one process; memory in a fresh process per (case, library).",
        "",
    ]
    for name, res in all_results.items():
        lines += [f"## {name} (P = {res['P']:,}, N = {res['N']}, batches {res['batches']})", ""]
        lines += [
            f"Truth: {res['truth_kind']}; top eigenvalues {np.round(res['truth'][:5], 6).tolist()}.",
            "",
        ]
        if res.get("topk"):
            libs = sorted({r["library"] for r in res["topk"]})
            lines += [
                "| library | top-1 to 1e-3 | top-1 to 1e-6 | top-5 to 1e-3 | top-5 to 1e-6 |",
                "|---|---|---|---|---|",
            ]
            for lib in libs:
                cells = [reach(res["topk"], lib, k, t) for k in (1, 5) for t in TARGETS]
                lines.append(f"| {lib} | " + " | ".join(cells) + " |")
            lines.append("")
        if res.get("trace"):
            lines += [
                f"Trace (truth {res['trace_truth']:.6g}):",
                "",
                "| method | products | actual rel. error | stated | seconds |",
                "|---|---|---|---|---|",
            ]
            for r in res["trace"]:
                lines.append(
                    f"| {r['library']} | {r['products']} | {r['actual']:.2e} | "
                    f"{r['stated']:.2e} | {r['seconds']:.2f} |"
                )
            lines.append("")
        if res.get("slq"):
            lines += [
                "| SLQ | steps | probes | products | W1 to exact | seconds |",
                "|---|---|---|---|---|---|",
            ]
            for r in res["slq"]:
                lines.append(
                    f"| {r['library']} | {r['steps']} | {r['probes']} | {r['products']} | "
                    f"{r['w1']:.3e} | {r['seconds']:.2f} |"
                )
            lines.append("")
        if res.get("products"):
            lines += ["| product | block | gp per column |", "|---|---|---|"]
            for r in res["products"]:
                lines.append(f"| {r['library']} | {r['block']} | {r['gp_per_column']:.2f} |")
            lines.append("")
        if res.get("memory"):
            lines += ["| peak memory (fresh process, top-1) | MB |", "|---|---|"]
            for r in res["memory"]:
                lines.append(f"| {r['library']} | {r.get('peak_rss_mb', r.get('error'))} |")
            lines.append("")
        if res.get("figure"):
            lines += [f"![{name}]({Path(res['figure']).name})", ""]
    missing = [p for p in ("pyhessian", "hessian_eigenthings") if _peer(p) is None]
    if missing:
        lines.append(f"Not installed or --no-peers, skipped: {', '.join(missing)}.")
    lines.append(
        "Top-k truth is the algebraically largest eigenvalues; PyHessian's deflated power "
        "iteration converges to the largest |eigenvalue|, so a negative one can enter its top 5."
    )
    lines.append(
        "curvlinops: not run here (its top-k is SciPy's eigsh, as our `method='eigsh'`; "
        "its SLQ is compared by `benchmarks/spectral.py`)."
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (the CLI test)")
    parser.add_argument("--cases", nargs="+", default=None, choices=CASES)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out", default="benchmarks/results/")
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="CUDA: not yet wired")
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("CASE", "LIBRARY"), help=argparse.SUPPRESS
    )
    parser.add_argument("--no-peers", action="store_true", help="curvscope only (skip peers)")
    args = parser.parse_args(argv)
    global _NO_PEERS
    _NO_PEERS = args.no_peers
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, args.quick)))
        return
    cases = args.cases or (["digits_mlp", "cnn"] if args.quick else list(CASES))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for name in cases:
        case = build_case(name, args.quick)
        case["name"] = name + ("_quick" if args.quick else "")
        size = sum(p.numel() for p in case["model"].parameters())
        res: dict[str, Any] = {
            "P": size,
            "N": len(case["x"]),
            "batches": len(split(case["x"], case["y"], case["batch_size"])),
        }
        exact = None
        if {"topk", "trace", "slq"} & set(args.tasks):
            if args.quick and size > EXACT_LIMIT:
                res["truth"], res["truth_kind"] = (
                    np.full(10, np.nan),
                    "skipped (quick, P too large)",
                )
            else:
                res["truth"], exact, res["truth_kind"] = truth_of(case)
        else:
            res["truth"], res["truth_kind"] = np.full(10, np.nan), "not needed"
        have_truth = bool(np.isfinite(res["truth"]).all())
        if "topk" in args.tasks and have_truth:
            res["topk"] = task_topk(case, res["truth"], args.quick)
        if "trace" in args.tasks and exact is not None:
            res["trace_truth"] = float(exact.sum())
            res["trace"] = task_trace(case, res["trace_truth"], args.quick)
        if "slq" in args.tasks and exact is not None:
            res["slq"] = task_slq(case, exact, args.quick)
        if "products" in args.tasks:
            res["products"] = task_products(case, args.quick)
        if "memory" in args.tasks:
            res["memory"] = task_memory(name, args.quick)
        figure = plot(name, res, out, args.device)
        res["figure"] = str(figure) if figure else None
        results[name] = res
        print(f"{name}: done", flush=True)
    path = out / f"bench_{args.device}{'_quick' if args.quick else ''}.md"
    path.write_text("\n".join(report(results, args.quick)) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
