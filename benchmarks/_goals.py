"""Issue 16's goals next to the numbers ``python -m benchmarks`` measured, verdicts computed.

Each goal reads the rows of the tasks that measure it; a goal whose rows are missing (task or
case not run, peer not installed) says "not measured". Nothing here is hard-coded but the
goals' own targets, copied from the issue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Results = dict[str, dict[str, Any]]


def _case(results: Results, name: str) -> dict[str, Any]:
    """The case's results whether run at full or quick sizes (quick names end in ``_quick``)."""
    return results.get(name) or results.get(f"{name}_quick") or {}


def _row(rows: list[dict[str, Any]] | None, **match: Any) -> dict[str, Any] | None:
    for r in rows or []:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _at_most(value: float, target: float) -> str:
    if value <= target:
        return "met"
    return f"missed by {value / target:.2f}x (measured {value:.3g}, goal <= {target:g})"


def _at_least(value: float, target: float) -> str:
    if value >= target:
        return "met"
    return f"missed: {value:.2f} is {target / value:.2f}x short of >= {target:g}"


def _topk(results: Results, k: int, limit: int) -> tuple[str, str]:
    row = _row(_case(results, "digits_mlp").get("topk"), library="curvscope default", k=k)
    if row is None:
        return "not measured", "not measured"
    measured = f"{row['products']} products, relative error {row['error']:.1e}"
    if row["error"] > 1e-6:
        return measured, f"missed: error {row['error']:.1e} > 1e-6"
    return measured, _at_most(row["products"], limit)


def _per_product(results: Results, case: str, key: str) -> float | None:
    row = _row(_case(results, case).get("products"), key=key)
    return None if row is None or row.get("seconds") is None else row["seconds"]


def _ratio(results: Results, case: str, num: str, den: str) -> float | None:
    a, b = _per_product(results, case, num), _per_product(results, case, den)
    return None if a is None or b is None else a / b


def _cnn_kernel(results: Results) -> tuple[str, str]:
    ratio = _ratio(results, "cnn", "topk", "raw")
    if ratio is None:
        return "not measured", "not measured"
    return f"{ratio:.2f}x the raw double backward", _at_most(ratio, 1.1)


def _cnn_engine(results: Results) -> tuple[str, str]:
    ratio = _ratio(results, "cnn", "topk", "topk-own")  # the same operator, right after
    if ratio is not None:
        return f"{ratio:.2f}x the same operator's op @ v", _at_most(ratio, 1.1)
    ratio = _ratio(results, "cnn", "topk", "default")  # results written before topk-own
    if ratio is None:
        return "not measured", "not measured"
    return f"{ratio:.2f}x the engine's own op @ v (cache on, default rewrite)", _at_most(ratio, 1.1)


def _cnn_rewrites(results: Results) -> tuple[str, str]:
    rows = _case(results, "cnn").get("products") or []
    ph = _per_product(results, "cnn", "pyhessian")
    default = _row(rows, key="default")
    if ph is None or default is None or default.get("seconds") is None:
        return "not measured", "not measured"
    ratio, gp = default["seconds"] / ph, default["gp_per_column"]
    measured = (
        f"default ({default.get('note') or '?'}): {ratio:.2f}x PyHessian's product, {gp:.2f} gp"
    )
    verdict_ratio, verdict_gp = _at_most(ratio, 0.8), _at_most(gp, 2.0)
    if verdict_ratio == verdict_gp == "met":
        return measured, "met"
    return measured, "; ".join(v for v in (verdict_ratio, verdict_gp) if v != "met")


def _batched_speedup(results: Results, key: str, target: float) -> tuple[str, str]:
    ratio = _ratio(results, "cnn_batched", "pyhessian", key)
    if ratio is None:
        return "not measured", "not measured"
    return f"{ratio:.2f}x PyHessian", _at_least(ratio, target)


def _batched_block(results: Results) -> tuple[str, str]:
    row = _row(_case(results, "cnn_batched").get("products"), key="nocache-10")
    memory = _case(results, "cnn_batched").get("memory") or []
    off = _row(memory, library="curvscope products cache=off block=10")
    on = _row(memory, library="curvscope products cache=on block=1")
    if row is None or row.get("gp_per_column") is None:
        return "not measured", "not measured"
    measured = f"{row['gp_per_column']:.2f} gp per column"
    verdicts = [_at_most(row["gp_per_column"], 2.0)]
    # on CUDA the device's peak allocation is the memory that counts; on the CPU the RSS
    key = "peak_cuda_mb" if on and "peak_cuda_mb" in on else "peak_rss_mb"
    if off and on and key in off and key in on:
        kind = "CUDA " if key == "peak_cuda_mb" else ""
        measured += f"; peak {kind}{off[key]:.0f} MB vs cached single column {on[key]:.0f} MB"
        verdicts.append(_at_most(off[key] / on[key], 1.0))
    else:
        measured += "; peak memory not measured (memory task)"
        verdicts.append("memory not measured")
    bad = [v for v in verdicts if v != "met"]
    return measured, "met" if not bad else "; ".join(bad)


#: 'equal accuracy' for SLQ: our W1 at most this factor times the peer's, each the mean over
#: m - 1, m and m + 1 steps (a Gauss rule's W1 swings by ~40 % with the parity of m on the
#: digits MLP's spectrum: benchmarks/results/slq_reorth_w1.md). W1 at 80 steps x 10 probes
#: varies by about 12 % between probe sets (curvscope: 1.07e-3 to 1.20e-3 over four sets), so
#: a smaller gap is not a difference in accuracy.
W1_TOLERANCE = 1.15


def _slq(results: Results, peer: str, target: float) -> tuple[str, str]:
    case = _case(results, "digits_mlp")
    summary = case.get("slq_goal") or {}
    ours, theirs = summary.get("curvscope slq"), summary.get(peer)
    if not ours or not theirs:
        return "not measured", "not measured"
    steps, probes = case.get("slq_setting", ("?", "?"))
    steps_around = f"{steps - 1}-{steps + 1} steps" if isinstance(steps, int) else "m - 1..m + 1"

    def compare(mine: dict[str, float]) -> tuple[str, str]:
        ratio = theirs["seconds"] / mine["seconds"]
        text = (
            f"{ratio:.2f}x ({theirs['seconds']:.2f} s vs {mine['seconds']:.2f} s), W1 "
            f"{mine['w1']:.2e} vs {theirs['w1']:.2e}"
        )
        key = "w1_around" if "w1_around" in mine and "w1_around" in theirs else "w1"
        if key == "w1_around":
            text += f" (mean over {steps_around}: {mine[key]:.2e} vs {theirs[key]:.2e})"
        verdict = _at_least(ratio, target)
        if mine[key] > W1_TOLERANCE * theirs[key]:
            accuracy = (
                f"accuracy not equal: our W1 {mine[key] / theirs[key]:.2f}x the peer's "
                f"(> {W1_TOLERANCE:g})"
            )
            verdict = accuracy if verdict == "met" else f"{verdict}; {accuracy}"
        return text, verdict

    measured, verdict = compare(ours)
    measured = f"at {steps} x {probes}: {measured}"
    for option in ("reorthogonalize=False", "rule='averaged'"):
        other = summary.get(f"curvscope slq {option}")
        if other:
            text, other_verdict = compare(other)
            measured += f"; with {option}: {text} ({other_verdict})"
    return measured, verdict


#: (goal as the issue states it, how it is measured here, verdict function)
GOALS: tuple[tuple[str, Callable[[Results], tuple[str, str]]], ...] = (
    (
        "Top-1 to relative 1e-6 in <= 15 products, digits MLP, default settings",
        lambda r: _topk(r, 1, 15),
    ),
    (
        "Top-5 to relative 1e-6 in <= 32 products, digits MLP, default settings",
        lambda r: _topk(r, 5, 32),
    ),
    (
        "One-batch CNN: a product inside top_eigenpairs <= 1.1x the raw double backward "
        "through a kept graph",
        _cnn_kernel,
    ),
    (
        "One-batch CNN: a product inside top_eigenpairs <= 1.1x the engine's own op @ v "
        "(What to build, item 2)",
        _cnn_engine,
    ),
    (
        "One-batch CNN: with the verified kernel rewrites <= 0.8x PyHessian's product and "
        "<= 2.0 gp",
        _cnn_rewrites,
    ),
    (
        "CNN N = 2048 in batches: >= 1.5x PyHessian with the cache on",
        lambda r: _batched_speedup(r, "default", 1.5),
    ),
    (
        "CNN N = 2048 in batches: >= 1.2x PyHessian with the cache off",
        lambda r: _batched_speedup(r, "nocache", 1.2),
    ),
    (
        "CNN N = 2048 in batches: a 10-column block without the cache <= 2 gp per column, "
        "peak memory <= the cached single-column case",
        _batched_block,
    ),
    (
        "SLQ 80 steps x 10 probes >= 2x PyHessian on the MLP at equal accuracy",
        lambda r: _slq(r, "PyHessian density", 2.0),
    ),
    (
        "SLQ 80 steps x 10 probes >= 3x curvlinops on the MLP at equal accuracy",
        lambda r: _slq(r, "curvlinops fast_lanczos", 3.0),
    ),
)


def goal_lines(results: Results) -> list[str]:
    """The markdown table of issue 16's goals, what was measured and the verdict."""
    lines = [
        "## Issue 16 goals",
        "",
        "Verdicts are computed from the numbers below (time ratios: medians over interleaved "
        f"repeats; 'equal accuracy' for SLQ: our W1 at most {W1_TOLERANCE:g}x the "
        "peer's, the spread between probe sets, each the mean over m - 1, m and m + 1 "
        "steps). The verdict is on curvscope's default SLQ (full reorthogonalisation); its "
        "reorthogonalize=False and rule='averaged' runs are shown beside it.",
        "",
        "| goal | measured | verdict |",
        "|---|---|---|",
    ]
    for text, check in GOALS:
        measured, verdict = check(results)
        lines.append(f"| {text} | {measured} | {verdict} |")
    return [*lines, ""]
