"""``curvscope._memory.tune_allocator``: glibc's mmap/trim thresholds raised once per process
when asked (``CURVSCOPE_ALLOCATOR=reuse``).

The policy is checked through glibc's own accounting (``mallinfo2``: bytes in mmapped blocks vs
the heap) in fresh subprocesses, so the pytest process's allocator state does not matter; the
skip rules and the operator's report are checked in-process with the state reset.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from curvscope import _memory
from curvscope.errors import CurvscopeError
from curvscope.operators import HessianOperator

HAVE_GLIBC = _memory._mallopt() is not None and hasattr(ctypes.CDLL(None), "mallinfo2")

CHILD = r"""
import ctypes, json, sys
import torch
from curvscope._memory import tune_allocator

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2

def mmapped_while_alive():
    t = torch.empty(25_000_000)  # 100 MB: above glibc's largest dynamic mmap threshold
    t.fill_(1.0)
    info = libc.mallinfo2()
    del t
    return info.hblkhd

before = mmapped_while_alive()
state = tune_allocator(sys.argv[1])
after = [mmapped_while_alive() for _ in range(3)]
print(json.dumps({"state": state, "before": before, "after": after}))
"""


def _child(device: str = "cpu", **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("CURVSCOPE_ALLOCATOR", None)
    clean["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, device],
        capture_output=True,
        text=True,
        check=True,
        env={**clean, **env},
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not HAVE_GLIBC, reason="glibc's mallopt/mallinfo2 only")
def test_large_blocks_come_from_the_heap_once_tuned() -> None:
    out = _child(CURVSCOPE_ALLOCATOR="reuse")
    assert out["state"] == "reuse: glibc thresholds raised"
    assert out["before"] >= 100_000_000  # glibc's default: a fresh mmap per large tensor
    # the 100 MB block now comes from (and goes back to) the heap; earlier blocks stay mmapped
    assert all(mmapped < out["before"] - 90_000_000 for mmapped in out["after"])


@pytest.mark.skipif(not HAVE_GLIBC, reason="glibc's mallopt/mallinfo2 only")
@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({}, "system"),  # the default: glibc's own policy
        ({"CURVSCOPE_ALLOCATOR": "system"}, "system"),
        (
            {"CURVSCOPE_ALLOCATOR": "reuse", "MALLOC_TRIM_THRESHOLD_": "131072"},
            "system: the process sets glibc's malloc",
        ),
        (
            {"CURVSCOPE_ALLOCATOR": "reuse", "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"},
            "system: the process sets",
        ),
    ],
)
def test_the_users_own_allocator_choice_is_kept(env, why) -> None:
    out = _child(**env)
    assert out["state"].startswith(why)
    assert all(mmapped >= 100_000_000 for mmapped in out["after"])  # still mmapped: untouched


@pytest.mark.skipif(not HAVE_GLIBC, reason="glibc's mallopt/mallinfo2 only")
def test_not_tuned_for_a_gpu_operator() -> None:
    out = _child("cuda", CURVSCOPE_ALLOCATOR="reuse")
    assert out["state"] == "system: not a CPU device"
    assert all(mmapped >= 100_000_000 for mmapped in out["after"])


def test_skip_rules_and_the_operator_report(monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(_memory, "_mallopt", lambda: lambda p, v: calls.append((p, v)) or 1)
    for key in ("CURVSCOPE_ALLOCATOR", "LD_PRELOAD", "GLIBC_TUNABLES", *_memory._ALLOCATOR_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(_memory, "_allocator_state", None)
    monkeypatch.setenv("CURVSCOPE_ALLOCATOR", "reuse")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert _memory.tune_allocator("cpu") == "system: another allocator is preloaded"
    assert _memory.tune_allocator("cpu") == "system: another allocator is preloaded"  # once
    assert calls == []
    monkeypatch.setattr(_memory, "_allocator_state", None)
    monkeypatch.delenv("LD_PRELOAD")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    data = (torch.randn(6, 3), torch.randint(0, 2, (6,)))
    op = HessianOperator(model, nn.CrossEntropyLoss(), data)
    assert op.report.allocator == ""  # nothing before the first product
    op @ torch.ones(op.shape[0])
    assert op.report.allocator == "reuse: glibc thresholds raised"
    threshold = _memory.ALLOCATOR_THRESHOLD
    assert calls == [(_memory.M_MMAP_THRESHOLD, threshold), (_memory.M_TRIM_THRESHOLD, threshold)]
    monkeypatch.setattr(_memory, "_allocator_state", None)
    monkeypatch.setattr(_memory, "_mallopt", lambda: None)
    assert _memory.tune_allocator("cpu") == "system: not glibc"
    monkeypatch.setattr(_memory, "_allocator_state", None)
    monkeypatch.delenv("CURVSCOPE_ALLOCATOR")
    assert _memory.tune_allocator("cpu") == "system"  # the default asks nothing of glibc


def test_a_misspelt_choice_is_refused_at_the_first_product(monkeypatch) -> None:
    monkeypatch.setattr(_memory, "_allocator_state", None)
    monkeypatch.setenv("CURVSCOPE_ALLOCATOR", "resue")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    op = HessianOperator(
        model, nn.CrossEntropyLoss(), (torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    )
    with pytest.raises(CurvscopeError, match=r"CURVSCOPE_ALLOCATOR must be 'reuse'.*got 'resue'"):
        op @ torch.ones(op.shape[0])
