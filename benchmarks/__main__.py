"""``python -m benchmarks``: curvscope against PyHessian, curvlinops and hessian-eigenthings.

Cases: the digits MLP (P = 8970), the small CNN on one batch (N = 256) and on N = 2048 in
batches of 256, PreResNet-20 on CIFAR-shaped random data. Tasks, each interleaved across the
libraries (the libraries alternate inside every setting, so a slow phase of the machine hits
all of them), every peer through its own public API (:mod:`benchmarks._peers`):

- ``topk``: products and seconds to reach top-1 / top-5 at relative 1e-3 and 1e-6 against a
  float64 truth (the exact spectrum where P <= 12,000, else ARPACK to 1e-12 on
  float64 products), from runs over a grid of each library's own stopping settings, and
  curvscope's ``top_eigenpairs`` with its defaults;
- ``trace``: Hutchinson and Hutch++ stopping at 1 % (each library's own rule; fixed budgets
  where a library has none): products, actual error vs the stated one;
- ``slq``: Wasserstein-1 distance of the SLQ density to the exact spectrum vs products (only
  where the exact spectrum is computed), and issue 16's comparison at 80 steps x 10 probes
  in interleaved repeats, with time ratios;
- ``products``: seconds per product column in gradient passes (gp): the raw double backward
  through a kept graph, PyHessian, curvlinops, curvscope with the cache on/off, blocks of 1 and
  10, the explicit kernel rewrites, and a product inside ``top_eigenpairs``;
- ``memory``: peak resident memory of a fresh process per (case, library) doing a top-1 run
  (on the batched CNN also an uncached 10-column block against the cached single column).

Writes ``bench_<device>[_quick].md`` (machine described, issue 16's goals with verdicts
computed from the numbers, :mod:`benchmarks._goals`) and ``bench_<device>_<case>.png`` (error
vs products per task) to ``--out``. Peers are imported from ``build/peers`` if there
(``pip install --no-deps --target build/peers pyhessian hessian-eigenthings
curvlinops-for-pytorch backpack-for-pytorch einconv einops``) and skipped with a note when
absent. ``--quick``: small sizes, for the CLI test.

    PYTHONPATH=src:. python -m benchmarks --out benchmarks/results/
    PYTHONPATH=src:. python -m benchmarks --cases digits_mlp --tasks slq   # one case, one task
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import _peers
from benchmarks import topk as topk_mod
from benchmarks._device import DEVICES, clock, device, set_device, tf32, to_device
from benchmarks._goals import goal_lines
from benchmarks._peers import (
    curvlinops_grid_density,
    curvlinops_operator,
    curvlinops_quadrature,
    peer,
    pyhessian_computer,
    pyhessian_counter,
    shim_torch_eig,
)
from benchmarks.spectral import small_cnn, split
from curvscope._memory import tune_allocator

CASES = ("digits_mlp", "cnn", "cnn_batched", "preresnet20", "preresnet110")
TASKS = ("topk", "trace", "slq", "products", "memory", "step")
#: cases run only where asked (--cases) or on CUDA, and the tasks they take
BIG_CASES = {"preresnet110": ("step",)}
TARGETS = (1e-3, 1e-6)
EXACT_LIMIT = 12_000
WARMUP_LIMIT = 12  # untimed products at most until the operator has chosen its method


def settle(op: Any, block: torch.Tensor) -> None:
    """Untimed products of ``block`` until curvscope's operator has made its choices for this
    width (rewrite choice and verification, graph cache, and the method tuning that fresh
    batches need over several products: ``op.tuning``), at most ``WARMUP_LIMIT``: what is timed
    after it is the steady state."""
    for _ in range(WARMUP_LIMIT):
        op @ block
        if not op.tuning and any(key[1] == block.shape[1] for key in op.report.chosen):
            break


# ------------------------------------------------------------------------------------- cases
def build_case(name: str, quick: bool, big_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Model (float32, eval mode), data and batch size of one case, on the benchmark's device
    (built on the CPU from fixed seeds, so that every device multiplies the same matrix).
    ``big_size``: (samples, batch size) of the big cases instead of 50,000 in batches of 500."""
    case = _build_case_cpu(name, quick, big_size)
    case["model"] = case["model"].to(device())
    case["x"], case["y"] = to_device(case["x"]), to_device(case["y"])
    return case


def _build_case_cpu(
    name: str, quick: bool, big_size: tuple[int, int] | None = None
) -> dict[str, Any]:
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
    if name in ("preresnet20", "preresnet110"):
        from curvscope.models.preresnet import PreResNet

        # (samples, batch size), full and quick: PreResNet-110 on 50,000 is for a GPU
        sizes = {"preresnet20": ((256, None), (16, None)), "preresnet110": ((50_000, 500), (8, 4))}
        n, batch = sizes[name][quick]
        if big_size is not None and name in BIG_CASES:
            n, batch = big_size
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = PreResNet(int(name.removeprefix("preresnet")), num_classes=10).eval()
        x = torch.randn(n, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (n,), generator=gen)
        return {"model": model, "x": x, "y": y, "batch_size": batch}
    raise SystemExit(f"unknown case {name!r}; choose from {CASES}")


def operator(case: dict[str, Any], **options: Any) -> Any:
    from curvscope.operators import HessianOperator

    return HessianOperator(
        case["model"],
        nn.CrossEntropyLoss(),
        (case["x"], case["y"]),
        batch_size=case["batch_size"],
        **{"allow_tf32": tf32(), **options},
    )


def _digest(case: dict[str, Any]) -> str:
    """Digest of the case's weights and data: names the cached exact spectrum."""
    import hashlib

    h = hashlib.sha256()
    for tensor in (*case["model"].state_dict().values(), case["x"], case["y"]):
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def truth_of(case: dict[str, Any], k: int = 10) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(top-k descending, all eigenvalues or None, how it was obtained), in float64."""
    size = sum(p.numel() for p in case["model"].parameters())
    if size <= EXACT_LIMIT:
        from curvscope.spectral import exact_spectrum

        quick = case["name"].endswith("_quick")  # seconds to compute: never cached
        cache = Path("build") / f"bench_exact_{case['name']}_{size}_{_digest(case)}.npy"
        if cache.exists() and not quick:
            values = np.load(cache)
        else:
            values = exact_spectrum(
                operator(case, dtype=torch.float64, method="rev-rev"), block_size=256
            ).eigenvalues
            if not quick:
                cache.parent.mkdir(exist_ok=True)
                np.save(cache, values)
        where = "" if quick else f", cached in {cache}"
        return values[::-1][:k].copy(), values, f"exact float64 spectrum (numpy eigh){where}"
    cache = Path("build") / f"bench_truth_{case['name']}_{size}_{len(case['x'])}.npy"
    top = topk_mod.reference_top(case["model"], case["x"], case["y"], k, cache)
    return top, None, f"ARPACK (tol 1e-12) on float64 products, cached in {cache}"


# ------------------------------------------------------------------------------------- tasks
def task_topk(case: dict[str, Any], truth: np.ndarray, quick: bool) -> list[dict[str, Any]]:
    from curvscope.spectral import top_eigenpairs

    op = operator(case)
    op @ torch.zeros(op.shape[0], 1, device=device())  # one-time method choice, out of counts
    ph, het, cl = peer("pyhessian"), peer("hessian_eigenthings"), peer("curvlinops")
    cl_op = curvlinops_operator(cl, case) if cl is not None else None
    tols = (1e-3, 1e-6) if quick else (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    steps = (10, 20, 40) if quick else (10, 15, 20, 30, 40, 60)
    rows: list[dict[str, Any]] = []
    for k in (1, 5):
        want = truth[:k]
        tick = clock()
        res = top_eigenpairs(op, k)  # the defaults, for the issue's goals
        rows.append(
            _run("curvscope default", k, "default", res.num_matvecs, res.values, want, tick)
        )
        for i in range(max(len(tols), len(steps))):
            if i < len(tols):
                for method in ("lanczos", "eigsh"):
                    tick = clock()
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
                if cl_op is not None:
                    rows.append(_curvlinops_top(cl_op, k, tols[i], want))
            if het is not None and i < len(steps):
                rows.append(_eigenthings_top(het, case, k, steps[i], want))
    return rows


def _run(
    lib: str, k: int, setting: Any, products: int, values: Any, want: np.ndarray, tick: float
) -> dict[str, Any]:
    values = np.sort(np.asarray(values, dtype=np.float64))[::-1][: len(want)]
    error = float(np.max(np.abs(values - want) / np.abs(want)))
    return {
        "library": lib,
        "k": k,
        "setting": setting,
        "products": int(products),
        "error": error,
        "seconds": clock() - tick,
    }


def _pyhessian_top(ph: Any, case: dict[str, Any], k: int, tol: float, want: np.ndarray) -> dict:
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)  # PyHessian draws from the global RNG
            comp = pyhessian_computer(ph, case)
            with pyhessian_counter(ph, comp) as count:
                tick = clock()
                values, _ = comp.eigenvalues(maxIter=1000, tol=tol, top_n=k)
    finally:
        case["model"].zero_grad(set_to_none=True)
    return _run("PyHessian power", k, tol, int(count[0]), values, want, tick)


def _curvlinops_top(
    cl_op: tuple[Any, list[int]], k: int, tol: float, want: np.ndarray
) -> dict[str, Any]:
    """curvlinops' documented top-k: SciPy's ``eigsh`` on ``op.to_scipy()`` (ARPACK, its
    ``tol`` a relative residual, its own random start)."""
    from scipy.sparse.linalg import eigsh

    op, count = cl_op
    count[:] = [0, 0.0]
    tick = clock()
    values = eigsh(op.to_scipy(), k=k, which="LA", tol=tol, return_eigenvectors=False)
    return _run("curvlinops eigsh", k, tol, int(count[0]), values, want, tick)


def _eigenthings_top(het: Any, case: dict[str, Any], k: int, steps: int, want: np.ndarray) -> dict:
    batches = split(case["x"], case["y"], case["batch_size"])
    op = het.HessianOperator(case["model"], batches, het.supervised_loss(nn.CrossEntropyLoss()))
    tick = clock()
    res = het.lanczos(op, k=k, max_iter=steps, which="LA", seed=0, reorthogonalize=True)
    return _run(
        "hessian-eigenthings lanczos", k, steps, steps, res.eigenvalues.cpu().numpy(), want, tick
    )


def task_trace(case: dict[str, Any], trace_truth: float, quick: bool) -> list[dict[str, Any]]:
    """Each library's trace estimators: curvscope's Hutchinson with its 1 % stopping rule and
    Hutch++ at fixed budgets, PyHessian's ``trace`` with its ``tol`` rule, hessian-eigenthings
    and curvlinops (no stopping rule: fixed products, ``stated`` is their own standard error
    where they give one, else none) -- with the actual error against the exact trace."""
    from curvscope.spectral import hutchinson_trace, hutchpp_trace

    op = operator(case)
    budget = 100 if quick else 400
    budgets = (30, 60) if quick else (30, 60, 120, 240)
    rows = []

    def row(lib: str, products: int, value: float, stated: float | None, tick: float) -> dict:
        return {
            "library": lib,
            "products": int(products),
            "actual": abs(value - trace_truth) / abs(trace_truth),
            "stated": stated,
            "seconds": clock() - tick,
        }

    tick = clock()
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
    for n in budgets:
        tick = clock()
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
    ph = peer("pyhessian")
    if ph is not None:
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                comp = pyhessian_computer(ph, case)
                with pyhessian_counter(ph, comp) as count:
                    tick = clock()
                    values = comp.trace(maxIter=budget, tol=0.01)
        finally:
            case["model"].zero_grad(set_to_none=True)
        rows.append(row("PyHessian trace (tol 1 %)", count[0], float(np.mean(values)), 0.01, tick))
    het = peer("hessian_eigenthings")
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
            tick = clock()
            kwargs = {"num_samples": n} if label == "Hutchinson" else {"num_matvecs": n}
            res = fn(hop, seed=0, **kwargs)
            value = float(res.estimate)
            stated = float(res.stderr) / abs(value)
            rows.append(row(f"hessian-eigenthings {label} ({n})", n, value, stated, tick))
    cl = peer("curvlinops")
    if cl is not None:  # no stopping rule in curvlinops 3.0: fixed numbers of products
        cl_op, count = curvlinops_operator(cl, case)
        for fn, label in (
            (cl.hutchinson_trace, "hutchinson_trace"),
            (cl.hutchpp_trace, "hutchpp_trace"),
            (cl.xtrace, "xtrace"),
        ):
            for n in budgets:
                count[:] = [0, 0.0]
                with torch.random.fork_rng():
                    torch.manual_seed(0)  # curvlinops draws from the global RNG
                    tick = clock()
                    value = float(fn(cl_op, n))
                rows.append(row(f"curvlinops {label} ({n})", count[0], value, None, tick))
    return rows


def wasserstein(nodes: np.ndarray, weights: np.ndarray, exact: np.ndarray) -> float:
    """Wasserstein-1 distance between a weighted discrete measure and the exact spectrum."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(nodes, exact, u_weights=weights))


#: libraries of the SLQ comparison, in the order they alternate
SLQ_LIBRARIES = (
    "curvscope slq",
    "curvscope slq reorthogonalize=False",
    "curvscope slq rule='averaged'",
    "PyHessian density",
    "curvlinops fast_lanczos",
    "curvlinops lanczos_approximate_spectrum",
)


def _slq_runners(case: dict[str, Any]) -> dict[str, Any]:
    """Library -> ``run(steps, probes, seed) -> (nodes, weights, products, seconds, seconds in
    products)``, for every library
    installed. Operators are built (and curvscope's warmed up: method choice, graph cache) here,
    untimed; PyHessian builds its kept graph inside each run, outside the timed call."""
    from curvscope.spectral import slq

    op = operator(case)
    runners: dict[str, Any] = {}

    def curvscope(**options: Any) -> Any:
        def run(steps: int, probes: int, seed: int) -> tuple:
            op @ torch.zeros(op.shape[0], probes, device=device())  # untimed: method choice, cache
            tick = clock()
            d = slq(op, num_steps=steps, num_probes=probes, seed=seed, **options)
            seconds = clock() - tick
            return d.nodes, d.pooled_weights, int(d.steps.sum()), seconds, d.timings["products"]

        return run

    runners["curvscope slq"] = curvscope()
    runners["curvscope slq reorthogonalize=False"] = curvscope(reorthogonalize=False)
    runners["curvscope slq rule='averaged'"] = curvscope(rule="averaged")
    ph = peer("pyhessian")
    if ph is not None:

        def pyhessian(steps: int, probes: int, seed: int) -> tuple:
            shim_torch_eig()
            try:
                with torch.random.fork_rng():
                    torch.manual_seed(seed)  # PyHessian draws its probes from the global RNG
                    comp = pyhessian_computer(ph, case)
                    with pyhessian_counter(ph, comp) as count:
                        tick = clock()
                        nodes, weights = comp.density(iter=steps, n_v=probes)
                        seconds = clock() - tick
            finally:
                case["model"].zero_grad(set_to_none=True)
            n_all = np.concatenate([np.asarray(v) for v in nodes])
            w_all = np.concatenate([np.asarray(v) for v in weights]) / probes
            return n_all, w_all, int(count[0]), seconds, count[1]

        runners["PyHessian density"] = pyhessian
    cl = peer("curvlinops")
    if cl is not None:
        cl_op, count = curvlinops_operator(cl, case)

        def quadrature(steps: int, probes: int, seed: int) -> tuple:
            count[:] = [0, 0.0]
            tick = clock()
            nodes, weights = curvlinops_quadrature(cl_op, steps, probes, seed)
            return nodes, weights, int(count[0]), clock() - tick, count[1]

        def public(steps: int, probes: int, seed: int) -> tuple:
            count[:] = [0, 0.0]
            tick = clock()
            nodes, weights = curvlinops_grid_density(cl, cl_op, steps, probes, seed)
            return nodes, weights, int(count[0]), clock() - tick, count[1]

        runners["curvlinops fast_lanczos"] = quadrature
        runners["curvlinops lanczos_approximate_spectrum"] = public
    return runners


def task_slq(
    case: dict[str, Any], exact: np.ndarray, quick: bool, repeats: int | None = None
) -> dict[str, Any]:
    """SLQ Wasserstein-1 to the exact spectrum vs products, every library, interleaved.

    ``grid``: one run per (steps, probes) and library, for the error-vs-products plot.
    ``goal``: issue 16's setting (80 steps x 10 probes; 20 x 2 with ``--quick``), ``repeats``
    rounds in which the libraries alternate, seed = round; ``summary``: per library the median
    seconds, median and worst W1, products.
    """
    runners = _slq_runners(case)

    def measure(lib: str, steps: int, probes: int, seed: int, kind: str) -> dict[str, Any]:
        nodes, weights, products, seconds, in_products = runners[lib](steps, probes, seed)
        return {
            "kind": kind,  # "grid" (W1 vs products), "goal" (timed repeats), "around"
            "library": lib,
            "steps": steps,
            "probes": probes,
            "products": products,
            "w1": wasserstein(nodes, weights, exact),
            "seconds": seconds,
            "product_seconds": in_products,
            "seed": seed,
        }

    grid_rows = [
        measure(lib, steps, probes, 0, "grid")
        for steps in (10, 20, 40)
        for probes in ((1, 2) if quick else (1, 10))
        for lib in runners
    ]
    steps, probes = (20, 2) if quick else (80, 10)
    repeats = repeats or (1 if quick else 3)
    goal_rows = [
        measure(lib, steps, probes, seed, "goal") for seed in range(repeats) for lib in runners
    ]
    # W1 of an m-node Gauss rule swings with the parity of m on a spectrum with a symmetric
    # cluster at 0 (benchmarks/results/slq_reorth_w1.md: 8.7e-4 / 1.19e-3 / 8.6e-4 at 79 / 80 /
    # 81 steps): accuracy is compared on the mean over m - 1, m, m + 1 (untimed runs)
    around: dict[str, list[float]] = {lib: [] for lib in runners}
    for seed in range(repeats):
        for m in (steps - 1, steps + 1):
            for lib in runners:
                around[lib].append(measure(lib, m, probes, seed, "around")["w1"])
    summary = {}
    for lib in runners:
        mine = [r for r in goal_rows if r["library"] == lib]
        around[lib] += [r["w1"] for r in mine]
        summary[lib] = {
            "seconds": float(np.median([r["seconds"] for r in mine])),
            "seconds_min": min(r["seconds"] for r in mine),
            "seconds_max": max(r["seconds"] for r in mine),
            "w1": float(np.median([r["w1"] for r in mine])),
            "w1_max": max(r["w1"] for r in mine),
            "w1_around": float(np.mean(around[lib])),
            "products": int(np.median([r["products"] for r in mine])),
            "product_seconds": float(np.median([r["product_seconds"] for r in mine])),
            "repeats": len(mine),
        }
    return {"grid": grid_rows, "goal": goal_rows, "summary": summary, "setting": (steps, probes)}


# ---------------------------------------------------------------------------- products
def _product_variants(case: dict[str, Any]) -> list[tuple[str, str, int, Any]]:
    """(key, label, block, build) for every product measured; ``build()`` constructs and warms
    up (untimed) and returns ``(run, note)``, ``run()`` doing the work once and returning the
    columns it multiplied."""
    model, x, y = case["model"], case["x"], case["y"]
    batches = split(x, y, case["batch_size"])
    params = [p for p in model.parameters() if p.requires_grad]
    size = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(0)
    vector = to_device(torch.randn(size, generator=gen))
    block10 = to_device(torch.randn(size, 10, generator=gen))
    shapes = [p.shape for p in params]
    v_list = [t.reshape(s) for t, s in zip(vector.split([p.numel() for p in params]), shapes)]
    loss_fn = nn.CrossEntropyLoss()
    variants: list[tuple[str, str, int, Any]] = []

    def gradient_pass() -> tuple[Any, str]:
        run = _gradient_pass(case)
        run()  # untimed warm-up (allocator, first-call costs), as for every variant
        return run, "one forward + backward over the N samples: the unit gp"

    variants.append(("gp", "gradient pass (gp)", 1, gradient_pass))

    def raw() -> tuple[Any, str]:
        grads = []
        for bx, by in batches:  # one kept graph per batch (as a graph cache keeps them)
            weight = len(bx) / len(x)
            loss = loss_fn(model(bx), by) * weight
            grads.append(torch.autograd.grad(loss, params, create_graph=True))

        def run() -> int:
            for g in grads:
                torch.autograd.grad(g, params, v_list, retain_graph=True)
            return 1

        run()
        return run, "torch.autograd.grad of the create_graph gradient, retain_graph"

    variants.append(("raw", "raw double backward (kept graph)", 1, raw))

    ph = peer("pyhessian")
    if ph is not None:

        def pyhessian() -> tuple[Any, str]:
            comp = pyhessian_computer(ph, case)
            model.zero_grad(set_to_none=True)
            v = [t.clone() for t in v_list]
            if not comp.full_dataset:

                def run() -> int:
                    ph.hessian_vector_product(comp.gradsH, comp.params, v)
                    return 1

                run()
                return run, "hessian_vector_product on its kept graph"

            def run_loader() -> int:
                comp.dataloader_hv_product(v)
                model.zero_grad(set_to_none=True)
                return 1

            run_loader()
            return run_loader, "dataloader_hv_product: forward + create-graph backward per batch"

        variants.append(("pyhessian", "PyHessian", 1, pyhessian))

    def curvscope(options: dict[str, Any], block: torch.Tensor) -> Any:
        def build() -> tuple[Any, str]:
            op = operator(case, **options)
            report = op.report
            with warnings.catch_warnings():  # an explicit rewrite that does not verify warns
                warnings.simplefilter("ignore")
                settle(op, block)

            def run() -> int:
                op @ block
                return block.shape[1]

            methods = ", ".join(sorted(set(report.chosen.values()))) or "?"
            status = "; ".join(f"{k}: {v}" for k, v in report.rewrites.items())
            return run, f"rewrite {report.rewrite} (method {methods}; {status or 'no candidates'})"

        return build

    for key, label, options in (
        ("default", "curvscope default (cache on)", {}),
        ("nocache", "curvscope cache=False", {"cache": False}),
    ):
        variants.append((key, label, 1, curvscope(options, vector[:, None])))
        variants.append((f"{key}-10", label, 10, curvscope(options, block10)))
    for rewrite in ("none", "fold-bn", "fold-bn+channels-last"):
        variants.append(
            (
                rewrite,
                f"curvscope rewrite={rewrite}",
                1,
                curvscope({"rewrite": rewrite}, vector[:, None]),
            )
        )

    shared: dict[str, Any] = {}  # the top-k operator, for its own op @ v right after

    def inside_topk() -> tuple[Any, str]:
        from curvscope.spectral import top_eigenpairs

        op = operator(case)
        op @ vector[:, None]
        shared["op"] = op

        def run() -> int:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return top_eigenpairs(op, 1).num_matvecs

        return run, f"top_eigenpairs(op, 1) seconds / its products; rewrite {op.report.rewrite}"

    variants.append(("topk", "curvscope inside top_eigenpairs", 1, inside_topk))

    def topk_own() -> tuple[Any, str]:
        # Item 2 compares a product inside an algorithm with the engine's own op @ v. In one
        # process glibc's allocator state moves the same kernel's time by up to 40 % from one
        # variant to the next (bench_cpu_allocator.md), so the baseline is the same operator,
        # timed right after its top_eigenpairs run (a fresh one under --fresh-products).
        op = shared.pop("op", None)
        if op is None:
            op = operator(case)
            op @ vector[:, None]

        def run() -> int:
            op @ vector[:, None]
            clock()  # on a GPU, wait for it: a solver reads every product before the next
            return 1

        return run, f"op @ v of the operator top_eigenpairs used; rewrite {op.report.rewrite}"

    variants.append(("topk-own", "curvscope op @ v beside top_eigenpairs", 1, topk_own))

    cl = peer("curvlinops")
    if cl is not None:

        def curvlinops(block: torch.Tensor) -> Any:
            def build() -> tuple[Any, str]:
                op, _ = curvlinops_operator(cl, case)
                op @ block

                def run() -> int:
                    op @ block
                    return block.shape[1] if block.ndim == 2 else 1

                return run, "HessianLinearOperator @ X (torch.func jvp of jacrev, vmap)"

            return build

        variants.append(("curvlinops", "curvlinops", 1, curvlinops(vector)))
        variants.append(("curvlinops-10", "curvlinops", 10, curvlinops(block10)))
    return variants


# ------------------------------------------------------------------------- Lanczos step
#: the libraries of the step task (``--step-libraries``)
STEP_LIBRARIES = ("curvscope", "pyhessian", "curvlinops", "eigenthings")
#: more rows the step task can time when asked (--step-libraries); not in the default run
STEP_VARIANTS = ("curvscope-nocache",)


def task_step(
    case: dict[str, Any],
    quick: bool,
    steps: int | None = None,
    libraries: tuple[str, ...] = STEP_LIBRARIES,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """Seconds per Lanczos step (one product over the whole data and the step's bookkeeping,
    one probe) of every library, in gradient passes: issue 16's PreResNet-110 measure.

    Each library first builds its operator and runs one untimed product (curvscope: rewrite,
    method choice and graph cache, and more products until its method choices have settled; the
    others: allocator warm-up; these seconds are the row's setup). Then ``rounds`` rounds, each
    running ``steps`` Lanczos steps of every library in turn (interleaved: this machine's speed
    drifts by up to 2x over minutes), and each library's median round is reported: curvscope
    ``lanczos`` (full reorthogonalisation), PyHessian ``density(iter, n_v=1)``, curvlinops
    ``fast_lanczos`` (no reorthogonalisation), hessian-eigenthings ``lanczos(k=1)``. Every
    library's operator stays alive until the rounds end (curvscope's graph cache included). The
    default is 10 steps, 3 on the big cases (``BIG_CASES``). ``libraries``: a subset of
    :data:`STEP_LIBRARIES` plus :data:`STEP_VARIANTS` (a short GPU lease measures the missing
    ones only; the gradient pass is always measured, so rows of two runs compare in gp)."""
    from curvscope.spectral import lanczos

    name = case["name"].removesuffix("_quick")
    steps = steps or (2 if quick else 3 if name in BIG_CASES else 10)
    gp = _gradient_pass_seconds(case)
    rows = [{"library": "gradient pass (gp)", "steps": 1, "seconds": gp, "note": "the unit"}]

    progress(f"{case['name']} step: gradient pass {gp:.4g} s")

    entries: list[dict[str, Any]] = []  # one per library, in the order of the rows

    def failed(entry: dict[str, Any], err: Exception) -> None:
        entry["row"] = {
            "library": entry["library"],
            "steps": 0,
            "seconds": None,
            "note": f"not run: {type(err).__name__}: {str(err).splitlines()[0][:160]}",
        }
        entry.pop("state", None)

    def attempt(library: str, setup: Any, run: Any, note: Any) -> None:
        """``setup()`` builds and warms (returns the state ``run`` takes), timed now;
        ``run(state)`` runs the steps and returns how many were done (timed in the rounds
        below); ``note(state)`` the row's note."""
        entry = {"library": library, "run": run, "note": note, "per_step": []}
        entries.append(entry)
        tick = clock()
        try:
            entry["state"] = setup()
            entry["setup"] = clock() - tick
            progress(f"{case['name']} step: {library} set up in {entry['setup']:.4g} s")
        except Exception as err:  # an out-of-memory peer, an API it lacks on this device
            failed(entry, err)
        finally:
            case["model"].zero_grad(set_to_none=True)

    def curvscope_setup(**options: Any) -> Any:
        """Build, then :func:`settle`: the timed rounds see the steady state, and the settling
        is part of the setup."""
        op = operator(case, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            settle(op, torch.randn(op.shape[0], 1, device=device()))
        return op

    if "curvscope" in libraries:

        def curvscope_run(op: Any) -> int:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return int(lanczos(op, num_steps=steps, seed=0).steps.max())

        def curvscope_note(op: Any) -> str:
            info, chosen = op.cache_info, sorted(set(op.report.chosen.values()))
            return (
                f"rewrite {op.report.rewrite}, method {', '.join(chosen)}, "
                f"{info.cached_batches}/{info.total_batches} batches' graphs cached"
            )

        attempt("curvscope lanczos", curvscope_setup, curvscope_run, curvscope_note)
    if "curvscope-nocache" in libraries:
        attempt(
            "curvscope lanczos cache=False",
            lambda: curvscope_setup(cache=False),
            curvscope_run,
            curvscope_note,
        )
    ph = peer("pyhessian") if "pyhessian" in libraries else None
    if ph is not None:

        def pyhessian_setup() -> Any:
            shim_torch_eig()
            with torch.random.fork_rng():
                torch.manual_seed(0)
                comp = pyhessian_computer(ph, case)
                warm = [torch.randn_like(p) for p in comp.params]
                if comp.full_dataset:  # one untimed product: allocator and first-call costs
                    comp.dataloader_hv_product(warm)
                else:
                    ph.hessian_vector_product(comp.gradsH, comp.params, warm)
            return comp

        def pyhessian_run(comp: Any) -> int:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                with pyhessian_counter(ph, comp) as count:
                    comp.density(iter=steps, n_v=1)
            return int(count[0])

        def pyhessian_note(comp: Any) -> str:
            if comp.full_dataset:
                return "dataloader: forward + backward per batch"
            return "kept graph"

        attempt("PyHessian density", pyhessian_setup, pyhessian_run, pyhessian_note)
    cl = peer("curvlinops") if "curvlinops" in libraries else None
    if cl is not None:

        def curvlinops_setup() -> Any:
            op, count = curvlinops_operator(cl, case)
            op @ torch.zeros(op.shape[1], device=device())
            return op, count

        def curvlinops_run(state: Any) -> int:
            from curvlinops.papyan2020traces.spectrum import fast_lanczos

            op, count = state
            count[:] = [0, 0.0]
            with torch.random.fork_rng():
                torch.manual_seed(0)
                fast_lanczos(op, steps)
            return int(count[0])

        attempt(
            "curvlinops fast_lanczos",
            curvlinops_setup,
            curvlinops_run,
            lambda _: "no reorthogonalisation",
        )
    het = peer("hessian_eigenthings") if "eigenthings" in libraries else None
    if het is not None:

        def eigenthings_setup() -> Any:
            batches = split(case["x"], case["y"], case["batch_size"])
            loss = het.supervised_loss(nn.CrossEntropyLoss())
            op = het.HessianOperator(case["model"], batches, loss)
            op @ torch.zeros(op.size, device=device())  # untimed, as for the other libraries
            return op

        def eigenthings_run(op: Any) -> int:
            het.lanczos(op, k=1, max_iter=steps, which="LA", seed=0, reorthogonalize=True)
            return steps

        attempt(
            "hessian-eigenthings lanczos",
            eigenthings_setup,
            eigenthings_run,
            lambda _: "k=1, max_iter=steps",
        )
    for _ in range(rounds):  # interleaved: every library once per round
        for entry in entries:
            if "state" not in entry:
                continue
            tick = clock()
            try:
                entry["done"] = entry["run"](entry["state"])
                entry["per_step"].append((clock() - tick) / entry["done"])
                # a run stopped at a time limit keeps these lines
                progress(
                    f"{case['name']} step: round {len(entry['per_step'])} {entry['library']} "
                    f"{entry['per_step'][-1]:.4g} s per step"
                )
            except Exception as err:
                failed(entry, err)
            finally:
                case["model"].zero_grad(set_to_none=True)
    for entry in entries:
        if "row" not in entry:
            per_step = entry["per_step"]
            spread = f"; rounds {min(per_step):.3g}-{max(per_step):.3g} s" if rounds > 1 else ""
            entry["row"] = {
                "library": entry["library"],
                "steps": entry["done"],
                "rounds": rounds,
                "seconds": statistics.median(per_step),
                "setup": entry["setup"],
                "note": entry["note"](entry["state"]) + spread,
            }
        row = entry.pop("row")
        entry.pop("state", None)  # free each library's operator
        rows.append(row)
        seconds = "not run" if row["seconds"] is None else f"{row['seconds']:.4g} s per step"
        progress(f"{case['name']} step: {row['library']} {seconds} ({row['note']})")
    for r in rows:
        r["gp"] = None if r["seconds"] is None else r["seconds"] / gp
    return rows


def _gradient_pass(case: dict[str, Any]) -> Any:
    """``run()``: one forward + backward over the case's data (the unit gp); returns 1."""
    model, loss_fn = case["model"], nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    batches = split(case["x"], case["y"], case["batch_size"])

    def run() -> int:
        for bx, by in batches:
            torch.autograd.grad(loss_fn(model(bx), by), params)
        return 1

    return run


def _gradient_pass_seconds(case: dict[str, Any]) -> float:
    """Seconds of one gradient pass over the case's data, after an untimed one."""
    run = _gradient_pass(case)
    run()
    tick = clock()
    run()
    return clock() - tick


def step_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Lanczos step | steps x rounds | seconds per step | gp per step | setup s (gp) | note |"
    ]
    lines.append("|---|---|---|---|---|---|")
    gp = rows[0]["seconds"]
    for r in rows:
        if r["seconds"] is None:
            lines.append(f"| {r['library']} | - | - | - | - | {r['note']} |")
            continue
        setup = "-" if r.get("setup") is None else f"{r['setup']:.3g} ({r['setup'] / gp:.1f})"
        rounds = f" x {r['rounds']}" if "rounds" in r else ""
        lines.append(
            f"| {r['library']} | {r['steps']}{rounds} | {r['seconds']:.3g} | "
            f"{r['gp']:.2f} | {setup} | {r['note']} |"
        )
    return [
        *lines,
        "",
        "One probe, one product over the whole data per step; the median round of each library "
        "(rounds interleaved: every library once per round). Setup: building the operator "
        "and its first, untimed products (curvscope's rewrite, method and graph-cache choice, "
        "each verified; the peers' warm-up). Seconds per step include each library's "
        "bookkeeping (curvscope and hessian-eigenthings reorthogonalise, PyHessian's density "
        "too, curvlinops' fast_lanczos does not).",
        "",
    ]


def _time_variant(key: str, block: int, build: Any, inner: int) -> tuple[float | None, str]:
    """Build (untimed warm-up), time, free one product variant: (seconds per column, note)."""
    try:
        run, note = build()
    except Exception as err:  # a rewrite that does not apply (no BatchNorm), OOM ...
        return None, f"not run: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
    tick = clock()
    calls = 1 if block > 1 or key == "topk" else inner
    columns = sum(run() for _ in range(calls))
    seconds = (clock() - tick) / columns
    del run
    return seconds, note


def product_child(case_name: str, key: str, quick: bool) -> dict[str, Any]:
    """Run in a fresh process: build the case and time the product variant ``key`` alone."""
    case = build_case(case_name, quick)
    for k, _label, block, build in _product_variants(case):
        if k == key:
            seconds, note = _time_variant(k, block, build, 1 if quick else 3)
            return {"key": key, "seconds": seconds, "note": note}
    return {"key": key, "seconds": None, "note": f"not run: no variant {key!r} in this install"}


def task_products(
    case: dict[str, Any], quick: bool, repeats: int | None = None, fresh: bool = False
) -> list[dict[str, Any]]:
    """Seconds per product column of every variant, in gradient passes (gp) and as a ratio to
    PyHessian's product. ``rounds`` interleaved rounds: in each, every variant is built and
    warmed up (untimed), timed over ``inner`` calls (one for a 10-column block and for a
    ``top_eigenpairs`` run, which multiply many columns each), then freed (so only one
    variant's graphs are alive at a time); the median over rounds is reported.

    ``fresh``: each variant of each round runs in its own fresh process (``product_child``).
    glibc's allocator adapts its mmap threshold to the blocks freed before, so in one process a
    multi-GB product's time depends on the variants that ran before it (the N = 2048 CNN: the
    cached product measured 1.10x PyHessian's in one process, 1.97x in fresh ones,
    ``benchmarks/results/bench_cpu_cnn_batched.md``)."""
    rounds, inner = repeats or (1 if quick else 3), 1 if quick else 3
    variants = _product_variants(case)
    times: dict[str, list[float]] = {key: [] for key, *_ in variants}
    notes: dict[str, str] = {}
    for _ in range(rounds):
        for key, _label, block, build in variants:
            if fresh:
                out = _child(["--products-child", case["name"].removesuffix("_quick"), key], quick)
                seconds, notes[key] = out.get("seconds"), out.get("note", out.get("error", ""))
            else:
                seconds, notes[key] = _time_variant(key, block, build, inner)
                case["model"].zero_grad(set_to_none=True)
            if seconds is not None:
                times[key].append(seconds)
            took = "not run" if seconds is None else f"{seconds:.4g} s per column"
            progress(f"{case['name']} products {key}: {took} ({notes[key][:80]})")
    gp = float(np.median(times["gp"]))
    ph = float(np.median(times["pyhessian"])) if times.get("pyhessian") else None
    rows = []
    for key, label, block, _ in variants:
        seconds = float(np.median(times[key])) if times[key] else None
        rows.append(
            {
                "key": key,
                "library": label,
                "block": block,
                "seconds": seconds,
                "gp_per_column": None if seconds is None else seconds / gp,
                "ratio_pyhessian": None if seconds is None or ph is None else seconds / ph,
                "note": notes.get(key, ""),
                "fresh": fresh,
            }
        )
    return rows


def _child(args: list[str], quick: bool) -> dict[str, Any]:
    """Run ``python -m benchmarks ARGS`` in a fresh process; its last stdout line, as JSON."""
    cmd = [sys.executable, "-m", "benchmarks", *args, "--device", device().type]
    if tf32():
        cmd.append("--tf32")
    if quick:
        cmd.append("--quick")
    if peer("pyhessian") is None and peer("curvlinops") is None:
        cmd.append("--no-peers")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": (out.stderr or "no output")[-200:]}


#: memory children: id -> label; ``products-<cache>-<k>`` runs two products of a k-column block
MEMORY_RUNS = {
    "curvscope": "curvscope",
    "pyhessian": "PyHessian",
    "curvlinops": "curvlinops",
    "products-on-1": "curvscope products cache=on block=1",
    "products-off-10": "curvscope products cache=off block=10",
}


def memory_child(case_name: str, library: str, quick: bool) -> dict[str, Any]:
    """Run in a fresh process: build the case, run top-1 (tol 1e-3, at most 20 products) with
    one library, or two block products (``products-<on|off>-<k>``); report peak RSS."""
    case = build_case(case_name, quick)
    label = MEMORY_RUNS.get(library, library)
    if library == "curvscope":
        from curvscope.spectral import top_eigenpairs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top_eigenpairs(operator(case), 1, tol=1e-3, max_matvecs=20)
    elif library.startswith("products-"):
        _, cache, width = library.split("-")
        op = operator(case, cache="auto" if cache == "on" else False)
        block = to_device(
            torch.randn(op.shape[0], int(width), generator=torch.Generator().manual_seed(0))
        )
        for _ in range(2):
            op @ block
    elif library == "pyhessian":
        ph = peer("pyhessian")
        if ph is None:
            return {"library": label, "error": "not installed"}
        pyhessian_computer(ph, case).eigenvalues(maxIter=20, tol=1e-3, top_n=1)
    elif library == "curvlinops":
        cl = peer("curvlinops")
        if cl is None:
            return {"library": label, "error": "not installed"}
        from scipy.sparse.linalg import eigsh

        op, _ = curvlinops_operator(cl, case)
        eigsh(op.to_scipy(), k=1, which="LA", tol=1e-3, maxiter=20, return_eigenvectors=False)
    else:
        return {"library": label, "error": f"unknown memory run {library!r}"}
    out = {"library": label, "peak_rss_mb": round(peak_rss_mb(), 1)}
    if device().type == "cuda":  # the memory that counts there: the device's
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device()) / 2**20, 1)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def task_memory(case_name: str, quick: bool) -> list[dict[str, Any]]:
    runs = ["curvscope"] + [p for p in ("pyhessian", "curvlinops") if peer(p) is not None]
    if case_name == "cnn_batched":  # issue 16: an uncached 10-block vs the cached single column
        runs += ["products-on-1", "products-off-10"]
    rows = []
    for library in runs:
        out = _child(["--memory-child", case_name, library], quick)
        progress(f"{case_name} memory {library}: {out}")
        if "error" in out and "library" not in out:
            out = {"library": MEMORY_RUNS.get(library, library), "error": out["error"]}
        rows.append(out)
    return rows


# ------------------------------------------------------------------------------------ report
def machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    text = (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}, load average {load[0]:.1f} at start"
    )
    text += f"; CPU allocator: {tune_allocator('cpu')}"  # main set it; this reads it back
    if device().type == "cuda":
        props = torch.cuda.get_device_properties(device())
        text += (
            f"; GPU {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA "
            f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, TF32 in "
            f"convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, in matmul "
            f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
        )
    return text


def progress(message: str) -> None:
    """One line on stdout, flushed, with the time: a long run (a GPU lease) shows how far it
    got even when it is stopped before the report is written."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4), squeeze=False)
    for ax, task in zip(axes[0], panels, strict=True):
        rows = results[task]
        libraries = list(dict.fromkeys(r["library"].split(" (")[0] for r in rows))
        palette = plt.get_cmap("tab10" if len(libraries) <= 10 else "tab20")
        colour = {lib: palette(i % palette.N) for i, lib in enumerate(libraries)}
        key = {"topk": "error", "trace": "actual", "slq": "w1"}[task]
        # colour: the library; line style: the setting (k = 1 / 5, 1 / 10 probes)
        groups: dict[tuple[str, str, bool], list[tuple[int, float]]] = {}
        for r in rows:
            lib = r["library"].split(" (")[0]
            label, dashed = lib, False
            if task == "topk":
                label, dashed = f"{lib} k={r['k']}", r["k"] > 1
            if task == "slq":
                label, dashed = f"{lib}, {r['probes']} probe(s)", r["probes"] > 1
            groups.setdefault((label, lib, dashed), []).append((r["products"], max(r[key], 1e-17)))
        for (label, lib, dashed), pts in groups.items():
            pts.sort()
            ax.plot(
                *zip(*pts, strict=True),
                marker="o",
                markersize=3,
                color=colour[lib],
                linestyle="--" if dashed else "-",
                label=label,
            )
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
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = out / f"bench_{device}_{case_name}.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
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
    header = len(lines)
    for name, res in all_results.items():
        lines += [f"## {name} (P = {res['P']:,}, N = {res['N']}, batches {res['batches']})", ""]
        if res["truth_kind"] != "not needed":
            top = np.round(res["truth"][:5], 6).tolist()
            lines += [f"Truth: {res['truth_kind']}; top eigenvalues {top}.", ""]
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
                stated = "none (no rule)" if r["stated"] is None else f"{r['stated']:.2e}"
                lines.append(
                    f"| {r['library']} | {r['products']} | {r['actual']:.2e} | "
                    f"{stated} | {r['seconds']:.2f} |"
                )
            lines.append("")
        if res.get("slq"):
            lines += slq_lines(res)
        if res.get("products"):
            lines += products_lines(res["products"])
        if res.get("step"):
            lines += step_lines(res["step"])
        if res.get("skipped_tasks"):
            lines += [f"Tasks not run on this case: {', '.join(res['skipped_tasks'])}.", ""]
        if res.get("memory"):
            cuda = any("peak_cuda_mb" in r for r in res["memory"])
            lines += (
                ["| peak memory (fresh process) | CUDA MB (allocated) | RSS MB |", "|---|---|---|"]
                if cuda
                else ["| peak memory (fresh process) | MB |", "|---|---|"]
            )
            for r in res["memory"]:
                cells = [r.get("peak_rss_mb", r.get("error"))]
                if cuda:
                    cells.insert(0, r.get("peak_cuda_mb", r.get("error")))
                lines.append(f"| {r['library']} | " + " | ".join(map(str, cells)) + " |")
            lines += [
                "",
                "Peak resident memory of a fresh process that builds the case and runs top-1 "
                "(tol 1e-3, at most 20 products) with one library, or two products of a block.",
                "",
            ]
        if res.get("figure"):
            lines += [f"![{name}]({Path(res['figure']).name})", ""]
    missing = [p for p in _peers.NAMES if peer(p) is None]
    if missing:
        lines.append(f"Not installed or --no-peers, skipped: {', '.join(missing)}.")
    lines.append(
        "Top-k truth is the algebraically largest eigenvalues; PyHessian's deflated power "
        "iteration converges to the largest |eigenvalue|, so a negative one can enter its top 5. "
        "'curvscope default' is `top_eigenpairs(op, k)` with no options; curvlinops' top-k is "
        "SciPy's `eigsh` on `HessianLinearOperator.to_scipy()`, as its documentation shows."
    )
    return [*lines[:header], *goal_lines(all_results), *lines[header:]]


def slq_lines(res: dict[str, Any]) -> list[str]:
    """The SLQ grid (W1 vs products) and the issue's 80 x 10 comparison with ratios."""
    grid = [r for r in res["slq"] if r["kind"] == "grid"]
    lines = [
        "| SLQ | steps | probes | products | W1 to exact | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in grid:
        lines.append(
            f"| {r['library']} | {r['steps']} | {r['probes']} | {r['products']} | "
            f"{r['w1']:.3e} | {r['seconds']:.2f} |"
        )
    summary = res.get("slq_goal") or {}
    ours = summary.get("curvscope slq")
    if ours:
        steps, probes = res["slq_setting"]
        lines += [
            "",
            f"SLQ at {steps} steps x {probes} probes, {ours['repeats']} interleaved repeat(s) "
            "(seed = repeat; the libraries alternate within each repeat). Ratio = the "
            "library's median seconds / curvscope's (higher: curvscope faster). Products are "
            "columns; curvlinops' public `lanczos_approximate_spectrum` adds ARPACK boundary "
            "products and smooths the quadrature with Gaussian bumps on a 1024-point grid (its "
            "W1 is that of the smoothed grid density); `fast_lanczos` is the same quadrature "
            "as ours, without reorthogonalisation. 'Mean W1 at m - 1..m + 1': W1 of untimed runs "
            f"at {steps - 1} and {steps + 1} steps with the same seeds, averaged with the timed "
            "ones: a Gauss rule's W1 swings with the parity of its node count on this spectrum "
            "(`benchmarks/results/slq_reorth_w1.md`), so accuracy is compared on this mean.",
            "",
            "| library | products | median s (min-max) | s in products (share) | ratio to "
            f"curvscope | median W1 | worst W1 | mean W1 at {steps - 1}-{steps + 1} steps |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for lib, s in summary.items():
            share = s["product_seconds"] / s["seconds"]
            lines.append(
                f"| {lib} | {s['products']} | {s['seconds']:.2f} ({s['seconds_min']:.2f}-"
                f"{s['seconds_max']:.2f}) | {s['product_seconds']:.2f} ({share:.0%}) | "
                f"{s['seconds'] / ours['seconds']:.2f} | {s['w1']:.3e} | {s['w1_max']:.3e} | "
                f"{s.get('w1_around', float('nan')):.3e} |"
            )
        lines += [
            "",
            "If curvscope spent no time outside its products, its ratio to a library would be "
            "that library's median seconds / curvscope's seconds in products: "
            + ", ".join(
                f"{lib} {s['seconds'] / ours['product_seconds']:.2f}"
                for lib, s in summary.items()
                if not lib.startswith("curvscope")
            )
            + ".",
        ]
    return [*lines, ""]


def products_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Seconds per product column, in gp, and against PyHessian's product."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| product | block | s per column | gp per column | / PyHessian | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['library']} | {r['block']} | {num(r['seconds'], '.4f')} | "
            f"{num(r['gp_per_column'], '.2f')} | {num(r['ratio_pyhessian'], '.2f')} | "
            f"{r['note']} |"
        )
    how = (
        "each variant of each round in its own fresh process, which builds the case, warms up "
        "and times it"
        if rows and rows[0].get("fresh")
        else "each round builds, warms up and times every variant in turn, then frees it"
    )
    return [
        *lines,
        "",
        f"Medians over interleaved rounds ({how}). gp = one forward + backward over the data. 'raw double "
        "backward' is `torch.autograd.grad(g, params, v, retain_graph=True)` with `g` the "
        "create_graph gradient (PyHessian's kernel); 'inside top_eigenpairs' is the seconds of "
        "`top_eigenpairs(op, 1)` divided by its products (cache on, default rewrite), and 'op @ v "
        "beside top_eigenpairs' one product of that same operator right after its run (the "
        "baseline of item 2: in one process the allocator's state moves a kernel's time from "
        "one variant to the next).",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (the CLI test)")
    parser.add_argument("--cases", nargs="+", default=None, choices=CASES)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out", default="benchmarks/results/")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=DEVICES,
        help="where cases and products run; cuda adds preresnet110 to the default cases",
    )
    parser.add_argument(
        "--reuse-allocator",
        action="store_true",
        help="CPU: raise glibc's malloc thresholds for every library from the start "
        "(CURVSCOPE_ALLOCATOR=reuse; faster, more resident memory); default: glibc's defaults",
    )
    parser.add_argument(
        "--tf32",
        action="store_true",
        help="CUDA: leave torch's TF32 switches as they are for every library and pass "
        "allow_tf32=True to curvscope (default: IEEE float32 for all)",
    )
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("CASE", "LIBRARY"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--products-child", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--fresh-products",
        action="store_true",
        help="time each product variant of each round in a fresh process (multi-GB cases: the "
        "allocator's state otherwise carries from one variant to the next)",
    )
    parser.add_argument("--no-peers", action="store_true", help="curvscope only (skip peers)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Lanczos steps timed by the step task (default 10; 3 on preresnet110)",
    )
    parser.add_argument(
        "--step-libraries",
        nargs="+",
        default=list(STEP_LIBRARIES),
        choices=STEP_LIBRARIES + STEP_VARIANTS,
        help="the libraries the step task times (default the four libraries; "
        "curvscope-nocache: curvscope with cache=False beside them)",
    )
    parser.add_argument(
        "--big-size",
        nargs=2,
        type=int,
        default=None,
        metavar=("SAMPLES", "BATCH"),
        help="samples and batch size of PreResNet-110 (default 50000 500; e.g. 256 128 for a "
        "CPU-sized step)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved repeats of the SLQ comparison and rounds of the products task "
        "(default 3; 1 with --quick); rounds of each library in the step task (default 1)",
    )
    args = parser.parse_args(argv)
    set_device(args.device, tf32=args.tf32)
    if args.reuse_allocator:  # children inherit it
        os.environ["CURVSCOPE_ALLOCATOR"] = "reuse"
    # every library in the allocator state curvscope's first CPU product would set
    tune_allocator("cpu")
    _peers.disable(args.no_peers)
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, args.quick)))
        return
    if args.products_child:
        print(json.dumps(product_child(*args.products_child, args.quick)))
        return
    if args.cases:
        cases = args.cases
    elif args.quick:
        cases = ["digits_mlp", "cnn"]
    else:  # the big cases by default only on CUDA (PreResNet-110 on 50,000 samples)
        cases = [c for c in CASES if c not in BIG_CASES or device().type == "cuda"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for name in cases:
        tasks = [t for t in args.tasks if t in BIG_CASES.get(name, TASKS)]
        case = build_case(name, args.quick, args.big_size)
        case["name"] = name + ("_quick" if args.quick else "")
        size = sum(p.numel() for p in case["model"].parameters())
        res: dict[str, Any] = {
            "P": size,
            "N": len(case["x"]),
            "batches": len(split(case["x"], case["y"], case["batch_size"])),
            "skipped_tasks": [t for t in args.tasks if t not in tasks],
        }
        exact = None
        if {"topk", "trace", "slq"} & set(tasks):
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
        if "topk" in tasks and have_truth:
            res["topk"] = task_topk(case, res["truth"], args.quick)
        if "trace" in tasks and exact is not None:
            res["trace_truth"] = float(exact.sum())
            res["trace"] = task_trace(case, res["trace_truth"], args.quick)
        if "slq" in tasks and exact is not None:
            slq_res = task_slq(case, exact, args.quick, args.repeats)
            res["slq"] = slq_res["grid"] + slq_res["goal"]
            res["slq_goal"] = slq_res["summary"]
            res["slq_setting"] = slq_res["setting"]
        if "products" in tasks:
            res["products"] = task_products(
                case, args.quick, args.repeats, fresh=args.fresh_products
            )
        if "memory" in tasks:
            res["memory"] = task_memory(name, args.quick)
        if "step" in tasks:
            res["step"] = task_step(
                case, args.quick, args.steps, tuple(args.step_libraries), args.repeats or 1
            )
        figure = plot(name, res, out, args.device)
        res["figure"] = str(figure) if figure else None
        results[name] = res
        print(f"{name}: done", flush=True)
        # after every case, so a run stopped part-way (a GPU lease's time limit) keeps its cases
        path = out / f"bench_{args.device}{'_quick' if args.quick else ''}.md"
        path.write_text("\n".join(report(results, args.quick)) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
