"""Issue 16's goal verdicts in ``python -m benchmarks``: computed from the measured rows."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def goals(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks._goals as goals

    return goals


def _verdicts(goals, results) -> dict[str, tuple[str, str]]:
    return {text: check(results) for text, check in goals.GOALS}


def _find(verdicts: dict[str, tuple[str, str]], words: str) -> tuple[str, str]:
    (hit,) = [v for k, v in verdicts.items() if words in k]
    return hit


def test_verdicts_follow_the_numbers(goals) -> None:
    def product(key: str, seconds: float, gp: float = 1.0, note: str = "") -> dict:
        return {"key": key, "seconds": seconds, "gp_per_column": seconds / gp, "note": note}

    results = {
        "digits_mlp": {
            "topk": [
                {"library": "curvscope default", "k": 1, "products": 11, "error": 1e-7},
                {"library": "curvscope default", "k": 5, "products": 40, "error": 1e-7},
            ],
            "slq_goal": {
                "curvscope slq": {"seconds": 1.0, "w1": 1e-3, "w1_max": 1e-3},
                "curvscope slq reorthogonalize=False": {"seconds": 0.9, "w1": 5e-4},
                "curvscope slq rule='averaged'": {"seconds": 1.0, "w1": 4e-4},
                "PyHessian density": {"seconds": 2.5, "w1": 0.9e-3, "w1_max": 1.2e-3},
                "curvlinops fast_lanczos": {"seconds": 2.0, "w1": 0.5e-3, "w1_max": 0.6e-3},
            },
            "slq_setting": (80, 10),
        },
        "cnn": {
            "products": [
                product("raw", 0.10),
                product("topk", 0.12),
                product("pyhessian", 0.10),
                product("default", 0.07, gp=0.03, note="rewrite fold-bn"),
            ]
        },
        "cnn_batched": {
            "products": [
                product("pyhessian", 3.0),
                product("default", 1.5),
                product("nocache", 3.0),
                product("nocache-10", 1.0, gp=0.6),
            ],
            "memory": [
                {"library": "curvscope products cache=off block=10", "peak_rss_mb": 3000.0},
                {"library": "curvscope products cache=on block=1", "peak_rss_mb": 2000.0},
            ],
        },
    }
    v = _verdicts(goals, results)
    assert _find(v, "Top-1")[1] == "met"
    assert _find(v, "Top-5")[1].startswith("missed by 1.25x")  # 40 products, goal 32
    assert _find(v, "1.1x the raw")[1].startswith("missed by 1.09x")  # 0.12 / 0.10 = 1.2
    engine = _find(v, "engine's own")
    assert engine[0].startswith("1.71x") and engine[1].startswith("missed by 1.56x")  # 0.12/0.07
    rewrites = _find(v, "kernel rewrites")
    assert "0.70x PyHessian" in rewrites[0] and "2.33 gp" in rewrites[0]
    assert rewrites[1].startswith("missed by 1.17x")  # the ratio is met, 2.33 gp is not
    assert _find(v, "cache on")[1] == "met"  # 3.0 / 1.5 = 2x >= 1.5
    assert _find(v, "cache off")[1] == "missed: 1.00 is 1.20x short of >= 1.2"
    block = _find(v, "10-column block")
    assert "1.67 gp" in block[0] and "3000 MB" in block[0]
    assert block[1] == "missed by 1.50x (measured 1.5, goal <= 1)"  # 1.67 gp alone is met
    pyhessian = _find(v, ">= 2x PyHessian")
    assert pyhessian[1] == "met" and "80 x 10" in pyhessian[0]  # W1 1.11x: within 1.15x
    curvlinops = _find(v, "3x curvlinops")
    assert curvlinops[1].startswith("missed: 2.00 is 1.50x short of >= 3")
    assert "accuracy not equal: our W1 2.00x" in curvlinops[1]
    assert "with reorthogonalize=False: 2.22x" in curvlinops[0]  # 2.0 s / 0.9 s
    assert "with rule='averaged': 2.00x" in curvlinops[0] and "(missed: 2.00" in curvlinops[0]


def test_missing_rows_are_not_measured(goals) -> None:
    v = _verdicts(goals, {})
    assert all(verdict == "not measured" for _, verdict in v.values())
    lines = goals.goal_lines({"digits_mlp_quick": {}})
    assert lines[0] == "## Issue 16 goals" and len(lines) == 7 + len(goals.GOALS)


def test_slq_accuracy_is_compared_over_neighbouring_step_counts(goals) -> None:
    """W1 at one m swings with its parity (slq_reorth_w1.md): with the mean over m - 1..m + 1
    measured, 'equal accuracy' is judged on it, and both are shown."""
    slq = {
        "curvscope slq": {"seconds": 1.0, "w1": 1.2e-3, "w1_max": 1.2e-3, "w1_around": 9.5e-4},
        "curvlinops fast_lanczos": {"seconds": 3.5, "w1": 7.7e-4, "w1_around": 9.0e-4},
    }
    results = {"digits_mlp": {"slq_goal": slq, "slq_setting": (80, 10)}}
    measured, verdict = _find(_verdicts(goals, results), "3x curvlinops")
    assert verdict == "met" and "mean over 79-81 steps: 9.50e-04 vs 9.00e-04" in measured
    slq["curvscope slq"]["w1_around"] = 1.1e-3  # 1.22x the peer's mean: not equal
    measured, verdict = _find(_verdicts(goals, results), "3x curvlinops")
    assert verdict.startswith("accuracy not equal: our W1 1.22x")


def test_on_cuda_the_block_goal_compares_device_memory(goals) -> None:
    """A CUDA run reports the device's peak allocation beside the RSS: the goal uses it."""
    results = {
        "cnn_batched": {
            "products": [{"key": "nocache-10", "seconds": 1.0, "gp_per_column": 1.5}],
            "memory": [
                {
                    "library": "curvscope products cache=off block=10",
                    "peak_rss_mb": 900.0,
                    "peak_cuda_mb": 1200.0,
                },
                {
                    "library": "curvscope products cache=on block=1",
                    "peak_rss_mb": 1000.0,
                    "peak_cuda_mb": 1000.0,
                },
            ],
        }
    }
    measured, verdict = _find(_verdicts(goals, results), "10-column block")
    assert "peak CUDA 1200 MB vs cached single column 1000 MB" in measured
    assert verdict == "missed by 1.20x (measured 1.2, goal <= 1)"


def test_item_2_compares_top_k_with_the_same_operators_op_at_v(goals) -> None:
    """With the ``topk-own`` row (the top-k operator's op @ v right after its run) the goal
    uses it, not the default variant timed in another allocator state."""
    rows = [
        {"key": "default", "seconds": 0.33, "gp_per_column": 1.2},
        {"key": "topk", "seconds": 0.46, "gp_per_column": 1.7},
        {"key": "topk-own", "seconds": 0.45, "gp_per_column": 1.6},
    ]
    measured, verdict = _find(_verdicts(goals, {"cnn": {"products": rows}}), "engine's own")
    assert measured == "1.02x the same operator's op @ v" and verdict == "met"
    rows[2]["seconds"] = 0.40  # 1.15x: missed
    measured, verdict = _find(_verdicts(goals, {"cnn": {"products": rows}}), "engine's own")
    assert measured.startswith("1.15x") and verdict.startswith("missed")
