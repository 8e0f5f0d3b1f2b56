"""``python -m benchmarks --quick``: the one benchmark command runs and writes its report.

Only structure and counts are checked, never times (CI machines are shared).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.__main__ as bench

    return bench


def test_quick_run_writes_table_and_plot(bench, tmp_path) -> None:
    bench.main(
        [
            "--quick",
            "--no-peers",
            "--cases",
            "digits_mlp",
            "--tasks",
            "topk",
            "trace",
            "slq",
            "--out",
            str(tmp_path),
        ]
    )
    text = (tmp_path / "bench_cpu_quick.md").read_text()
    assert "Machine: " in text and "logical CPUs" in text
    assert "exact float64 spectrum" in text
    assert (tmp_path / "bench_cpu_digits_mlp.png").stat().st_size > 1000
    # Our default Lanczos reaches top-1 to 1e-6 in a bounded number of products.
    row = re.search(r"\| curvscope lanczos \| (\d+) \(.*?\) \| (\d+) \(", text)
    assert row is not None and 0 < int(row.group(1)) <= int(row.group(2)) <= 40
    assert "| curvscope slq | 40 | 1 | 40 |" in text
    assert "curvscope Hutchinson (rtol 1 %)" in text
    assert "skipped: pyhessian, hessian_eigenthings, curvlinops" in text
    # Issue 16's goals head the report, their verdicts computed from the rows below.
    assert "## Issue 16 goals" in text
    top1 = re.search(r"\| Top-1 to relative 1e-6 .*? \| (\d+) products, .*? \| (.*?) \|", text)
    assert top1 is not None
    assert (top1.group(2) == "met") == (int(top1.group(1)) <= 15) or "error" in top1.group(2)
    # The SLQ comparison: curvscope alone without peers, its goal rows not measured.
    assert "SLQ at 20 steps x 2 probes, 1 interleaved repeat(s)" in text
    assert (
        "| SLQ 80 steps x 10 probes >= 2x PyHessian on the MLP at equal accuracy | "
        "not measured | not measured |" in text
    )


def test_wasserstein_and_peak_memory(bench) -> None:
    exact = np.array([0.0, 1.0, 2.0, 3.0])
    assert bench.wasserstein(exact, np.full(4, 0.25), exact) == pytest.approx(0.0)
    assert bench.wasserstein(np.array([1.5]), np.array([1.0]), exact) == pytest.approx(1.0)
    assert bench.peak_rss_mb() > 10


def test_unknown_case_is_refused(bench) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--cases", "resnet9000"])
    assert "benchmarks" in sys.modules


def test_fresh_products_run_each_variant_in_its_own_process(bench, monkeypatch) -> None:
    # The harness: every variant of every round goes to a child, in order, and the rows are the
    # medians of what the children reported (a child that failed leaves its note).
    case = bench.build_case("digits_mlp", True)
    case["name"] = "digits_mlp_quick"
    keys = [key for key, *_ in bench._product_variants(case)]
    calls: list[list[str]] = []
    fake = {key: 0.01 * (i + 1) for i, key in enumerate(keys)}

    def child(args: list[str], quick: bool) -> dict:
        assert quick and args[:2] == ["--products-child", "digits_mlp"]
        calls.append(args)
        if args[2] == "topk":
            return {"error": "boom"}
        return {"key": args[2], "seconds": fake[args[2]] * len(calls), "note": "child"}

    real_child = bench._child
    monkeypatch.setattr(bench, "_child", child)
    rows = bench.task_products(case, True, repeats=2, fresh=True)
    assert [c[2] for c in calls] == keys * 2
    by_key = {r["key"]: r for r in rows}
    n = len(keys)
    i = keys.index("default")
    assert by_key["default"]["seconds"] == pytest.approx(fake["default"] * (i + 1 + i + 1 + n) / 2)
    assert by_key["topk"]["seconds"] is None and by_key["topk"]["note"] == "boom"
    assert all(r["fresh"] for r in rows)
    assert "in its own fresh process" in "\n".join(bench.products_lines(rows))
    # One real child: a fresh process times the gradient pass of the quick case.
    out = real_child(["--products-child", "digits_mlp", "gp"], True)
    assert out["key"] == "gp" and out["seconds"] > 0 and "unit gp" in out["note"]


def test_cuda_is_refused_with_a_message_where_there_is_none(bench) -> None:
    if bench.torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit, match=r"--device cuda: no CUDA device is available"):
        bench.main(["--device", "cuda", "--cases", "digits_mlp", "--quick"])
    assert bench.device().type == "cpu"


def test_the_device_reaches_cases_children_and_the_clock(bench, monkeypatch) -> None:
    """The CUDA path's wiring, checked on the CPU: the case lives on ``device()`` (``meta``
    stands in for a GPU), children get ``--device``, and the clock waits for CUDA kernels."""
    import benchmarks._device as dev

    monkeypatch.setattr(dev, "_device", bench.torch.device("meta"))
    case = bench.build_case("cnn", True)
    assert {p.device.type for p in case["model"].parameters()} == {"meta"}
    assert case["x"].device.type == case["y"].device.type == "meta"
    seen: list[list[str]] = []

    class Done:
        stdout, stderr = '{"key": "gp"}\n', ""

    def run(cmd, **kwargs):
        seen.append(cmd)
        return Done()

    monkeypatch.setattr(bench.subprocess, "run", run)
    assert bench._child(["--products-child", "cnn", "gp"], True) == {"key": "gp"}
    assert seen[0][seen[0].index("--device") + 1] == "meta"
    synced: list[object] = []
    monkeypatch.setattr(dev, "_device", bench.torch.device("cuda", 0))
    monkeypatch.setattr(bench.torch.cuda, "synchronize", lambda d=None: synced.append(d))
    first = dev.clock()
    assert dev.clock() >= first and synced == [bench.torch.device("cuda", 0)] * 2


def test_lanczos_step_task_on_preresnet110(bench, tmp_path) -> None:
    """Issue 16's PreResNet-110 case (quick: 8 samples in batches of 4): seconds per Lanczos step
    in gradient passes; the tasks that do not apply to it are named as not run."""
    bench.main(
        [
            "--quick",
            "--no-peers",
            "--cases",
            "preresnet110",
            "--tasks",
            "step",
            "topk",
            "--repeats",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    text = (tmp_path / "bench_cpu_quick.md").read_text()
    assert "## preresnet110 (P = 1,146,842, N = 8, batches 2)" in text  # paper 000's net
    number = r"([0-9.e+-]+)"
    row = re.search(
        rf"\| curvscope lanczos \| (\d+) x (\d+) \| {number} \| {number} \| {number} "
        rf"\({number}\) \| (.*?) \|",
        text,
    )
    assert row is not None, text
    assert (int(row.group(1)), int(row.group(2))) == (2, 2)  # steps x rounds
    assert all(float(row.group(i)) > 0 for i in (3, 4, 5, 6))  # s, gp per step, setup s, gp
    assert "batches' graphs cached" in row.group(7) and "; rounds " in row.group(7)
    assert "| gradient pass (gp) | 1 |" in text
    assert "Tasks not run on this case: topk." in text


def test_solver_overhead_finds_the_planted_top_and_times_it(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    from benchmarks import solver_overhead

    solver_overhead.set_device("cpu")
    out = solver_overhead.measure(2000, 1, 1)
    assert abs(out["top"] - 10.0) < 1e-4  # the planted outlier, to the solver's tolerance
    assert out["products"] >= 2
    assert out["ms_per_product_in_solver"] > out["ms_bare_product"] > 0


def test_step_task_times_only_the_libraries_asked(bench, tmp_path) -> None:
    """A short GPU lease measures the missing libraries only; the gp row is always there."""
    args = ["--quick", "--no-peers", "--cases", "cnn", "--tasks", "step", "--out", str(tmp_path)]
    bench.main([*args, "--step-libraries", "pyhessian"])
    text = (tmp_path / "bench_cpu_quick.md").read_text()
    assert "| gradient pass (gp) | 1 |" in text
    assert "| curvscope lanczos |" not in text  # not asked (and no peers installed here)


def test_big_size_sets_preresnet110_samples_and_batches(bench) -> None:
    """--big-size: PreResNet-110 at a CPU-sized N (the GPU default is 50,000 in batches of 500)."""
    case = bench.build_case("preresnet110", False, (12, 5))
    assert len(case["x"]) == 12 and case["batch_size"] == 5
    assert len(bench.split(case["x"], case["y"], case["batch_size"])) == 3
    assert len(bench.build_case("cnn", True, (12, 5))["x"]) == 16  # only the big cases change
