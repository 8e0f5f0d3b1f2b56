"""Why does SLQ without reorthogonalisation have a smaller Wasserstein-1 error? (issue 16)

On the digits MLP Hessian (P = 8970) the benchmark found, at 80 steps x 10 probes, W1 to the
exact spectrum 1.20e-3 for ``slq`` (full reorthogonalisation) and 8.0e-4 with
``reorthogonalize=False``. This script separates "bug" from "property":

1. curvscope ``slq`` on the float64 Hessian, both variants, several seeds and step counts, W1
   of the pooled measure, per-probe W1 (mean +- standard error over probes) and the paired
   per-probe difference (the same probes run both ways); float32 at m - 1, m, m + 1 steps.
2. An independent reference: the exact Gauss rule of each probe, from the eigendecomposition of
   the dense Hessian (``numpy.linalg.eigh``): a few-line numpy Lanczos on ``diag(lambda)``
   started from ``U^T v`` (full reorthogonalisation and plain), compared node by node with
   curvscope. Needs the eigenvectors (``--eigvecs``, ~650 MB, computed once, a few minutes at
   one thread); without it, Gaussian probes on ``diag(lambda)`` (the same distribution of probe
   measures, since a Gaussian vector is rotation invariant).
   Also: W1 of the exact Gauss rule for every m (odd against even), and the plain recurrence
   against the Gauss rule with as many nodes as it has distinct Ritz values.
3. Planted spectra (diagonal matrices, Gaussian probes): a narrow cluster of 70% of the mass at
   0 of width c in {0, 1e-4, 1e-3} inside a bulk symmetric about it plus outliers, the same
   with a one-sided bulk, an isolated zero atom plus a Marchenko-Pastur bulk, and MP alone.
4. Where the W1 error sits: the integral of ``|F_hat - F|`` split by region of x, and a plot
   of ``F_hat - F``.
5. Other rules from the same run: Gauss-Radau with a node at 0 (Golub 1973), and the average
   of the m- and (m-1)-step Gauss rules, on the Hessian and the planted spectra.

Finding (benchmarks/results/slq_reorth_w1.md): not a bug; the W1 of a Gauss rule on this
spectrum (72% of the mass within 1e-3 of 0, nearly symmetric about it) depends on the parity of
the node count, and the plain recurrence's ghost copies change that count.

W1 is computed twice: ``scipy.stats.wasserstein_distance`` (as ``benchmarks/__main__.py``)
and the integral of ``|F_hat - F|`` over merged breakpoints; they must agree.

    OMP_NUM_THREADS=1 PYTHONPATH=src:. python benchmarks/slq_reorth_w1.py \
        --eigvecs build/digits_mlp_eigh.npz --out benchmarks/results/slq_reorth_w1.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla
import torch
from scipy.stats import wasserstein_distance
from torch import nn

from curvscope.operators import HessianOperator
from curvscope.spectral import lanczos, slq
from curvscope.spectral.lanczos import ritz_pairs
from curvscope.spectral.probes import draw_probes, make_generator

REGIONS = (-np.inf, -0.1, -0.01, -1e-3, -1e-5, 1e-5, 1e-3, 0.01, 0.1, np.inf)


# ---------------------------------------------------------------- references (independent)
def np_lanczos(d: np.ndarray, v: np.ndarray, m: int, reorth: bool) -> tuple[np.ndarray, ...]:
    """Gauss rule of ``diag(d)`` from ``v``: m Lanczos steps in numpy, (nodes, weights)."""
    q = np.zeros((m + 1, len(d)))
    q[0] = v / np.linalg.norm(v)
    a, b = np.zeros(m), np.zeros(m)
    for j in range(m):
        w = d * q[j] - (b[j - 1] * q[j - 1] if j else 0.0)
        a[j] = q[j] @ w
        w = w - a[j] * q[j]
        if reorth:
            for _ in range(2):
                w = w - q[: j + 1].T @ (q[: j + 1] @ w)
        b[j] = np.linalg.norm(w)
        q[j + 1] = w / b[j]
    nodes, vecs = scipy.linalg.eigh_tridiagonal(a, b[: m - 1])
    return nodes, vecs[0] ** 2


def cdf_gap(nodes: np.ndarray, weights: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(x_left, width, F_hat - F)`` on each interval between merged breakpoints."""
    x = np.concatenate([nodes, exact])
    mass = np.concatenate([weights / weights.sum(), -np.full(len(exact), 1 / len(exact))])
    order = np.argsort(x, kind="stable")
    x, gap = x[order], np.cumsum(mass[order])
    return x[:-1], np.diff(x), gap[:-1]


def w1(nodes: np.ndarray, weights: np.ndarray, exact: np.ndarray) -> float:
    """W1 to the exact spectrum; scipy's value, checked against the CDF integral."""
    value = float(wasserstein_distance(nodes, exact, u_weights=weights))
    _, width, gap = cdf_gap(nodes, weights, exact)
    mine = float((np.abs(gap) * width).sum())
    assert abs(value - mine) <= 1e-9 * max(value, 1e-12), (value, mine)
    return value


def by_region(nodes: np.ndarray, weights: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The W1 integral split over ``REGIONS`` of x."""
    left, width, gap = cdf_gap(nodes, weights, exact)
    index = np.digitize(left, REGIONS) - 1
    return np.bincount(index, weights=np.abs(gap) * width, minlength=len(REGIONS) - 1)


def distinct(nodes: np.ndarray, exact: np.ndarray, rtol: float = 1e-7) -> int:
    """Ritz values after merging copies closer than ``rtol * max|lambda|`` (ghost count)."""
    s = np.sort(nodes)
    return int(1 + (np.diff(s) > rtol * np.abs(exact).max()).sum())


def fmt(x: float) -> str:
    return f"{x:.3e}"


def mean_se(x: np.ndarray) -> str:
    x = np.asarray(x)
    return f"{x.mean():.3e} ± {x.std(ddof=1) / np.sqrt(len(x)):.1e}"


# ---------------------------------------------------------------- part 1: curvscope on the MLP
def curvscope_runs(op, exact, steps_list, seeds, probes):
    """Per (steps, seed, reorth): pooled W1, per-probe W1, nodes/weights per probe."""
    out = {}
    for m in steps_list:
        for seed in seeds:
            for reorth in (True, False):
                d = slq(op, num_steps=m, num_probes=probes, seed=seed, reorthogonalize=reorth)
                per = [d.probe_nodes(i) for i in range(probes)]
                out[m, seed, reorth] = {
                    "pooled": w1(d.nodes, d.pooled_weights, exact),
                    "per_probe": np.array([w1(n, w, exact) for n, w in per]),
                    "per": per,
                    "distinct": np.mean([distinct(n, exact) for n, _ in per]),
                    "regions": by_region(d.nodes, d.pooled_weights, exact),
                }
    return out


def part1_table(runs, steps_list, seeds, probes) -> list[str]:
    lines = [
        "| steps | W1 pooled, reorth (per seed) | W1 pooled, plain (per seed) | "
        "per-probe W1 reorth | per-probe W1 plain | paired diff reorth - plain | "
        "distinct Ritz values plain / reorth |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in steps_list:
        r = [runs[m, s, True] for s in seeds]
        p = [runs[m, s, False] for s in seeds]
        pr = np.concatenate([x["per_probe"] for x in r])
        pp = np.concatenate([x["per_probe"] for x in p])
        lines.append(
            f"| {m} | {', '.join(fmt(x['pooled']) for x in r)} | "
            f"{', '.join(fmt(x['pooled']) for x in p)} | {mean_se(pr)} | {mean_se(pp)} | "
            f"{mean_se(pr - pp)} | {np.mean([x['distinct'] for x in p]):.1f} / "
            f"{np.mean([x['distinct'] for x in r]):.1f} |"
        )
    lines.append(
        f"\n{len(seeds)} seeds x {probes} Rademacher probes; ± is the standard error over the "
        f"{len(seeds) * probes} probes. 'Distinct' merges Ritz values within 1e-7 max|λ| "
        "(copies of converged eigenvalues, the ghosts of the plain recurrence)."
    )
    return lines


def float32_table(model, x, y, exact, seeds, probes, steps_list) -> list[str]:
    """The benchmark's setting: float32 products, reorthogonalised and plain, m +- 1 steps."""
    op32 = HessianOperator(model, nn.CrossEntropyLoss(), (x, y))
    lines = [
        f"float32 products (the benchmark's setting), {probes} probes, pooled W1 per seed:",
        "",
        "| steps | W1 reorth (per seed) | W1 plain (per seed) | distinct Ritz values plain |",
        "|---|---|---|---|",
    ]
    for m in steps_list:
        row = {}
        ds = []
        for reorth in (True, False):
            vals = []
            for s in seeds:
                d = slq(op32, num_steps=m, num_probes=probes, seed=s, reorthogonalize=reorth)
                vals.append(w1(d.nodes, d.pooled_weights, exact))
                if not reorth:
                    ds += [distinct(d.probe_nodes(i)[0], exact, 1e-5) for i in range(probes)]
            row[reorth] = ", ".join(map(fmt, vals))
        lines.append(f"| {m} | {row[True]} | {row[False]} | {min(ds)}-{max(ds)} |")
    lines.append(
        "\nDistinct: Ritz values merged within 1e-5 max|λ| (float32 resolution). The plain "
        "recurrence in float32 depends on the rounding of each product (thread count, kernel)."
    )
    return lines


# ---------------------------------------------------------------- part 2: exact Gauss rules
def part2(runs, exact, eig, seeds, probes, steps_list, size) -> list[str]:
    lines = []
    if eig is not None:
        lam, vecs = eig
        lines += [
            "Exact Gauss rule of each curvscope probe: numpy Lanczos on diag(λ) (λ, U from "
            "`numpy.linalg.eigh` of the dense float64 Hessian) started from Uᵀv, full "
            "reorthogonalisation; and the same without it. Max node difference is over the "
            "nodes of all probes, against curvscope's `slq` (reorthogonalised) on the operator.",
            "",
            "| steps | max abs node diff vs curvscope | max abs weight diff | W1 pooled exact "
            "Gauss (per seed) | W1 pooled numpy plain (per seed) | W1 of the probes' own "
            "measures (m = P) |",
            "|---|---|---|---|---|---|",
        ]
        for m in steps_list:
            dn, dw, wr, wp, floor = 0.0, 0.0, [], [], []
            for seed in seeds:
                v = draw_probes(size, probes, generator=make_generator(seed), probe="rademacher")
                coeff = vecs.T @ v.double().numpy()
                own = (coeff**2 / (coeff**2).sum(0)).mean(1)
                floor.append(w1(lam, own, exact))
                nr, wtr, npl, wpl = [], [], [], []
                for i in range(probes):
                    n, w = np_lanczos(lam, coeff[:, i], m, True)
                    cn, cw = runs[m, seed, True]["per"][i]
                    dn, dw = max(dn, np.abs(n - cn).max()), max(dw, np.abs(w - cw).max())
                    nr.append(n)
                    wtr.append(w / probes)
                    n, w = np_lanczos(lam, coeff[:, i], m, False)
                    npl.append(n)
                    wpl.append(w / probes)
                wr.append(w1(np.concatenate(nr), np.concatenate(wtr), exact))
                wp.append(w1(np.concatenate(npl), np.concatenate(wpl), exact))
            lines.append(
                f"| {m} | {dn:.1e} | {dw:.1e} | {', '.join(map(fmt, wr))} | "
                f"{', '.join(map(fmt, wp))} | {', '.join(map(fmt, floor))} |"
            )
        lines.append("")
    lines += [
        "Gaussian probes on diag(λ) (same distribution of probe measures as Gaussian probes on "
        "H), numpy Lanczos; mean ± standard error of the pooled W1 over seeds:",
        "",
        "| steps | W1 exact Gauss rule | W1 plain recurrence | of which \\|x\\| < 0.01, "
        "Gauss | of which \\|x\\| < 0.01, plain |",
        "|---|---|---|---|---|",
    ]
    for m in range(40, 170, 10) if len(steps_list) > 2 else steps_list:
        row = {True: [], False: []}
        near = {True: [], False: []}
        for seed in seeds:
            rng = np.random.default_rng(seed)
            probes_g = rng.standard_normal((probes, len(exact)))
            for reorth in (True, False):
                parts = [np_lanczos(exact, v, m, reorth) for v in probes_g]
                n = np.concatenate([p[0] for p in parts])
                w = np.concatenate([p[1] for p in parts]) / probes
                row[reorth].append(w1(n, w, exact))
                reg = by_region(n, w, exact)
                near[reorth].append(reg[2:7].sum())
        lines.append(
            f"| {m} | {mean_se(row[True])} | {mean_se(row[False])} | "
            f"{np.mean(near[True]):.2e} | {np.mean(near[False]):.2e} |"
        )
    return lines


# ---------------------------------------------------------------- part 2b: W1 against m
def gauss_sweep(op, exact, seeds, probes, max_steps, steps_list, plain_runs):
    """Gauss rules of the leading T_m of one reorthogonalised run, every m up to max_steps.

    Returns the table lines, and ``{m: mean pooled W1}`` / near-0 share for the plot.
    """
    runs = [
        lanczos(op, num_steps=max_steps, num_probes=probes, seed=s, reorthogonalize=True)
        for s in seeds
    ]

    def pooled(result, counts):
        parts = [ritz_pairs(result.alphas[i], result.betas[i], int(k)) for i, k in
                 enumerate(counts)]  # fmt: skip
        n = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1] for p in parts]) / len(parts)
        reg = by_region(n, w, exact)
        return w1(n, w, exact), reg[2:7].sum()

    curve = {}
    for m in range(10, max_steps + 1):
        vals = np.array([pooled(r, [m] * probes) for r in runs])
        curve[m] = vals.mean(axis=0)
    lines = [
        "Gauss rule of the leading m x m block of one reorthogonalised curvscope run "
        f"({max_steps} steps, {probes} probes, seeds {seeds}); pooled W1 (mean over seeds) and "
        r"its part at \|x\| < 0.01:",
        "",
        r"| m (even) | W1 | at \|x\| < 0.01 | m + 1 (odd) | W1 | at \|x\| < 0.01 |",
        "|---|---|---|---|---|---|",
    ]
    for m in range(20, max_steps, 4):
        a, b = curve[m], curve[m + 1]
        lines.append(f"| {m} | {fmt(a[0])} | {a[1]:.2e} | {m + 1} | {fmt(b[0])} | {b[1]:.2e} |")
    lines += [
        "",
        "The plain recurrence against the Gauss rule with as many nodes as it has distinct Ritz "
        "values (d_i per probe; its extra nodes are copies of converged eigenvalues):",
        "",
        "| steps m | distinct d_i (range) | W1 plain | W1 Gauss(d_i) | W1 Gauss(m) |",
        "|---|---|---|---|---|",
    ]
    for m in steps_list:
        if m > max_steps:
            continue
        ds = [[distinct(n, exact) for n, _ in plain_runs[m, s, False]["per"]] for s in seeds]
        flat = np.concatenate(ds)
        plain = np.mean([plain_runs[m, s, False]["pooled"] for s in seeds])
        gd = np.mean([pooled(r, d)[0] for r, d in zip(runs, ds)])
        lines.append(
            f"| {m} | {flat.min()}-{flat.max()} | {fmt(plain)} | {fmt(gd)} | {fmt(curve[m][0])} |"
        )
    return lines, curve


# ---------------------------------------------------------------- part 3: planted spectra
def planted(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Planted spectra.

    ``cluster-c``: 70% Laplace(0, c) + 27% uniform[-0.3, 0.3] (symmetric about the cluster, as
    the digits Hessian nearly is) + 10 outliers in [0.35, 0.85]; ``onesided-c``: the same with
    the bulk uniform on [0, 0.6]; ``atom+MP``: 70% exact zeros + a Marchenko-Pastur bulk
    (ratio 1/2, scale 0.1, separated from 0 by a gap) + the outliers.
    """
    outliers = np.linspace(0.35, 0.85, 10)
    if kind.startswith(("cluster", "onesided")):
        c = float(kind.split("-", 1)[1])
        n0 = int(0.7 * size)
        core = rng.laplace(0.0, c, n0) if c > 0 else np.zeros(n0)
        lo, hi = (-0.3, 0.3) if kind.startswith("cluster") else (0.0, 0.6)
        bulk = rng.uniform(lo, hi, size - n0 - len(outliers))
        return np.sort(np.concatenate([core, bulk, outliers]))
    if kind == "MP":
        x = rng.standard_normal((size - len(outliers), 2 * size))
        mp = np.linalg.eigvalsh(x @ x.T / x.shape[1]) * 0.1
        return np.sort(np.concatenate([mp, outliers]))
    if kind == "atom+MP":
        n0 = int(0.7 * size)
        x = rng.standard_normal((size - n0 - len(outliers), 2 * (size - n0)))
        mp = np.linalg.eigvalsh(x @ x.T / x.shape[1]) * 0.1
        return np.sort(np.concatenate([np.zeros(n0), mp, outliers]))
    raise ValueError(kind)


def part3(seeds, probes, steps_list, size) -> list[str]:
    kinds = ("cluster-0", "cluster-1e-4", "cluster-1e-3", "onesided-1e-4", "atom+MP")
    lines = [
        f"P = {size}, curvscope `slq(probe='gaussian')` on a diagonal `LinearOperator`, "
        f"{probes} probes, W1 of the pooled measure, mean ± s.e. over {len(seeds)} seeds, and "
        "the paired difference (same probes) reorth - plain.",
        "",
        "| spectrum | steps | W1 reorth | W1 plain | reorth - plain |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        lam = planted(kind, size, np.random.default_rng(123))
        op = spla.LinearOperator(
            (size, size), matvec=lambda x, lam=lam: lam * x.ravel(), dtype=np.float64
        )
        for m in steps_list:
            res = {True: [], False: []}
            for seed in seeds:
                for reorth in (True, False):
                    d = slq(
                        op, num_steps=m, num_probes=probes, seed=seed, probe="gaussian",
                        reorthogonalize=reorth,
                    )  # fmt: skip
                    res[reorth].append(w1(d.nodes, d.pooled_weights, lam))
            diff = np.array(res[True]) - np.array(res[False])
            lines.append(
                f"| {kind} | {m} | {mean_se(res[True])} | {mean_se(res[False])} | {mean_se(diff)} |"
            )
    return lines


# ---------------------------------------------------------------- part 5: Gauss-Radau at 0
def radau_rule(alphas, betas, m: int, node: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(m+1)-node Gauss-Radau rule with one node fixed at ``node``, from m Lanczos steps.

    Golub (1973): extend :math:`T_m` by :math:`\\beta_m` (the residual norm, already computed)
    and :math:`\\tilde\\alpha_{m+1} = a + \\delta_m` with :math:`(T_m - aI)\\delta =
    \\beta_m^2 e_m`; the nodes and squared first components of the extended matrix are a rule
    exact for polynomials of degree <= 2m that has a node at a. No extra products.
    """
    t = np.diag(alphas[:m]) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    rhs = np.zeros(m)
    rhs[-1] = betas[m - 1] ** 2
    delta = np.linalg.solve(t - node * np.eye(m), rhs)
    diag = np.append(alphas[:m], node + delta[-1])
    nodes, vecs = scipy.linalg.eigh_tridiagonal(diag, betas[:m])
    return nodes, vecs[0] ** 2


def check_radau(size: int = 600, steps: int = 20) -> str:
    """The Radau rule has a node at 0 and matches the probe measure's Chebyshev moments of
    degree <= 2m (not 2m + 1); reference: the planted eigenvalues and the probe itself."""
    lam = planted("cluster-1e-4", size, np.random.default_rng(1))
    res = lanczos(np.diag(lam), num_steps=steps, num_probes=1, seed=0, probe="gaussian")
    v = draw_probes(size, 1, generator=make_generator(0), probe="gaussian").numpy()[:, 0]
    own = v**2 / (v**2).sum()
    nodes, weights = radau_rule(res.alphas[0], res.betas[0], steps)
    span = lam[-1] - lam[0]
    cheb = lambda x: np.polynomial.chebyshev.chebvander(  # noqa: E731
        (2 * x - lam[0] - lam[-1]) / span, 2 * steps + 1
    )
    err = np.abs(weights @ cheb(nodes) - own @ cheb(lam))
    assert np.abs(nodes).min() < 1e-14 and (weights >= 0).all()
    assert err[: 2 * steps + 1].max() < 1e-12 and err[2 * steps + 1] > 1e-6, err
    return (
        f"Check: on a planted matrix (P = {size}, m = {steps}) the Radau rule has a node at "
        f"{np.abs(nodes).min():.0e}, Chebyshev moments of degree <= 2m within "
        f"{err[: 2 * steps + 1].max():.0e} of the probe's exact measure, degree 2m + 1 off by "
        f"{err[2 * steps + 1]:.0e}."
    )


def _rule(key: str, res, i: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    if key == "r":
        return radau_rule(res.alphas[i], res.betas[i], m)
    if key == "mix":  # (G(m) + G(m-1)) / 2: exact to degree 2m - 3, positive weights
        a, b = (ritz_pairs(res.alphas[i], res.betas[i], k)[:2] for k in (m, m - 1))
        return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]) / 2
    return ritz_pairs(res.alphas[i], res.betas[i], m + (key == "g1"))[:2]


def part5(op, exact, seeds, probes, steps_list, size) -> list[str]:
    """W1 of Gauss(m), Gauss(m+1), Radau-at-0(m) and (G(m) + G(m-1))/2, digits and planted."""
    cases = [("digits MLP Hessian", op, exact, "rademacher")]
    for kind in ("cluster-1e-4", "cluster-1e-3", "onesided-1e-4", "atom+MP", "MP"):
        lam = planted(kind, size, np.random.default_rng(123))
        lin = spla.LinearOperator(
            (size, size), matvec=lambda x, lam=lam: lam * x.ravel(), dtype=np.float64
        )
        cases.append((f"planted {kind}", lin, lam, "gaussian"))
    lines = [
        "Pooled W1 (mean ± s.e. over seeds) of the Gauss rule from m steps, from m + 1 steps, "
        "and the Gauss-Radau rule with a node fixed at 0 from the same m steps (m + 1 nodes, "
        "exact to degree 2m, no extra product), with the paired difference Radau(m) - Gauss(m); "
        "and the average of the Gauss rules of m and m - 1 steps of each probe (2m - 1 nodes, "
        "exact to degree 2m - 3, no extra product) with its paired difference to Gauss(m).",
        "",
        check_radau(),
        "",
        "| spectrum | m | Gauss(m) | Gauss(m+1) | Radau-0(m) | Radau-0(m) - Gauss(m) | "
        "(G(m) + G(m-1))/2 | its - Gauss(m) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, lin, truth, probe in cases:
        results = {
            s: lanczos(lin, num_steps=max(steps_list) + 1, num_probes=probes, seed=s, probe=probe)
            for s in seeds
        }
        for m in steps_list:
            vals = {"g": [], "g1": [], "r": [], "mix": []}
            for s in seeds:
                res = results[s]
                for key in vals:
                    parts = [_rule(key, res, i, m) for i in range(probes)]
                    n = np.concatenate([p[0] for p in parts])
                    w = np.concatenate([p[1] for p in parts]) / probes
                    vals[key].append(w1(n, w, truth))
            diff = np.array(vals["r"]) - np.array(vals["g"])
            dmix = np.array(vals["mix"]) - np.array(vals["g"])
            lines.append(
                f"| {name} | {m} | {mean_se(vals['g'])} | {mean_se(vals['g1'])} | "
                f"{mean_se(vals['r'])} | {mean_se(diff)} | {mean_se(vals['mix'])} | "
                f"{mean_se(dmix)} |"
            )
    return lines


# ---------------------------------------------------------------- part 4: where the error sits
def part4(runs, exact, seeds, m, out_png: Path | None) -> list[str]:
    labels = ["< -0.1", "-0.1..-0.01", "-0.01..-1e-3", "-1e-3..-1e-5", "±1e-5",
              "1e-5..1e-3", "1e-3..0.01", "0.01..0.1", "> 0.1"]  # fmt: skip
    lines = [
        f"W1 integral of \\|F_hat - F\\| by region of x, {m} steps, mean over seeds (1e-4 units):",
        "",
        "| variant | " + " | ".join(labels) + " | total |",
        "|---|" + "---|" * (len(labels) + 1),
    ]
    for reorth in (True, False):
        reg = np.mean([runs[m, s, reorth]["regions"] for s in seeds], axis=0)
        name = "reorth" if reorth else "plain"
        lines.append(
            f"| {name} | "
            + " | ".join(f"{x * 1e4:.2f}" for x in reg)
            + f" | {reg.sum() * 1e4:.2f} |"
        )
    lines += ["", f"Nodes within 0.03 of 0 (weight) of probe 0, seed {seeds[0]}, {m} steps:", ""]
    for reorth in (True, False):
        n, w = runs[m, seeds[0], reorth]["per"][0]
        keep = np.abs(n) < 0.03
        pairs = ", ".join(f"{a:.1e} ({b:.3f})" for a, b in zip(n[keep], w[keep]))
        lines.append(f"- {'reorth' if reorth else 'plain'}: {pairs}")
    if out_png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        for reorth, color in ((True, "C0"), (False, "C3")):
            d = runs[m, seeds[0], reorth]
            n = np.concatenate([p[0] for p in d["per"]])
            w = np.concatenate([p[1] for p in d["per"]])
            left, _, gap = cdf_gap(n, w, exact)
            label = f"{'reorth' if reorth else 'plain'} (W1 {d['pooled']:.2e})"
            for ax in axes:
                ax.step(left, gap, where="post", color=color, lw=0.8, label=label)
        axes[0].set_title(f"F_hat - F, digits MLP, {m} steps x 10 probes")
        axes[1].set_xlim(-5e-3, 5e-3)
        axes[1].set_title("near 0 (72% of the mass within 1e-3)")
        for ax in axes:
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel("λ")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_png, dpi=110)
        lines += ["", f"![F_hat - F]({out_png.name})"]
    return lines


def plot_curve(curve, runs, seeds, steps_list, path: Path) -> list[str]:
    """W1 of the exact Gauss rule against m (odd and even), with the plain recurrence's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = np.array(sorted(curve))
    vals = np.array([curve[m] for m in ms])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for parity, marker in ((0, "o"), (1, "s")):
        sel = ms % 2 == parity
        name = "even" if parity == 0 else "odd"
        ax.plot(ms[sel], vals[sel, 0], marker, ms=3, label=f"Gauss rule, {name} m")
        ax.plot(ms[sel], vals[sel, 1], marker, ms=2, alpha=0.4, label="  its part at |x|<0.01")
    plain = [(m, np.mean([runs[m, s, False]["pooled"] for s in seeds])) for m in steps_list]
    ax.plot(*zip(*plain), "kx", ms=7, label="plain recurrence (m steps)")
    ax.set_yscale("log")
    ax.set_xlabel("m (Lanczos steps = nodes per probe)")
    ax.set_ylabel("W1 to the exact spectrum")
    ax.set_title("digits MLP Hessian, 10 probes pooled")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return ["", f"![W1 against m]({path.name})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 40, 80, 160])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--exact", type=Path, default=None, help="cached exact eigenvalues")
    parser.add_argument("--eigvecs", type=Path, default=None,
                        help="npz with lam, U (computed and written there if missing)")  # fmt: skip
    parser.add_argument("--planted-size", type=int, default=4000)
    parser.add_argument("--float32-steps", type=int, nargs="+", default=[79, 80, 81])
    parser.add_argument("--radau-steps", type=int, nargs="+", default=[39, 40, 79, 80, 120])
    parser.add_argument(
        "--planted-steps", type=int, nargs="+", default=[20, 40, 60, 80, 100, 120, 160]
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    tick = time.time()
    torch.set_default_dtype(torch.float32)
    from benchmarks.topk import digits_mlp, exact_eigenvalues

    model, x, y = digits_mlp()
    op = HessianOperator(model, nn.CrossEntropyLoss(), (x, y), dtype=torch.float64)
    size = op.shape[0]
    exact_path = args.exact
    if exact_path is None:
        found = sorted(Path("build").glob(f"bench_exact_digits_mlp_{size}_*.npy"))
        exact_path = found[0] if found else Path("build/slq_reorth_w1_exact.npy")
    exact = np.sort(exact_eigenvalues(model, x, y, cache=exact_path))
    eig = None
    if args.eigvecs is not None:
        if args.eigvecs.exists():
            data = np.load(args.eigvecs)
            eig = (data["lam"], data["U"])
        else:
            cols = [op @ torch.eye(size, dtype=torch.float64)[:, s : s + 256] for s in
                    range(0, size, 256)]  # fmt: skip
            dense = torch.cat(cols, dim=1).numpy()
            eig = np.linalg.eigh(0.5 * (dense + dense.T))
            np.savez(args.eigvecs, lam=eig[0], U=eig[1])
        print(f"eigh vs cached spectrum: max diff {np.abs(eig[0] - exact).max():.1e}", flush=True)
    seeds = list(range(args.seeds))
    runs = curvscope_runs(op, exact, args.steps, seeds, args.probes)
    print("part 1 done", time.time() - tick, flush=True)
    max_steps = max(args.steps) + 1
    sweep_lines, curve = gauss_sweep(op, exact, seeds, args.probes, max_steps, args.steps, runs)
    print("sweep done", time.time() - tick, flush=True)
    out = [
        "<!-- OMP_NUM_THREADS=1 PYTHONPATH=src:. python benchmarks/slq_reorth_w1.py "
        f"--steps {' '.join(map(str, args.steps))} --seeds {args.seeds} --probes {args.probes}"
        f"{' --eigvecs ' + str(args.eigvecs) if args.eigvecs else ''} -->",
        "# SLQ with and without reorthogonalisation: W1 to the exact spectrum (issue 16)",
        "",
        f"Digits MLP Hessian, P = {size}, float64 products; exact spectrum {exact_path}.",
        "",
        "## 1. curvscope `slq` on the Hessian",
        "",
        *part1_table(runs, args.steps, seeds, args.probes),
        "",
        *float32_table(model, x, y, exact, seeds, args.probes, args.float32_steps),
        "",
        "## 2. Reference: exact Gauss rules",
        "",
        *part2(runs, exact, eig, seeds, args.probes, args.steps, size),
        "",
        "### W1 of the exact Gauss rule against m: odd and even m",
        "",
        *sweep_lines,
        "",
        "## 3. Planted spectra",
        "",
        *part3(seeds, args.probes, args.planted_steps, args.planted_size),
    ]
    out += ["", "## 4. Where the W1 error sits", ""]
    m = 80 if 80 in args.steps else args.steps[-1]
    png = args.out.with_suffix(".png") if args.out is not None else None
    out += part4(runs, exact, seeds, m, png)
    if png is not None:
        out += plot_curve(curve, runs, seeds, args.steps, png.with_name(png.stem + "_m.png"))
    out += [
        "",
        "## 5. Other rules from the same Lanczos run: Gauss-Radau at 0, averaged Gauss rules",
        "",
        *part5(op, exact, seeds, args.probes, args.radau_steps, args.planted_size),
    ]
    out.append(f"\n(ran in {time.time() - tick:.0f} s on a loaded 2-core machine)")
    text = "\n".join(out) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
