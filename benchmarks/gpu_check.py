"""GPU correctness: every curvature operator on CUDA equals the same operator on the CPU.

Runs in float64 (1e-10 relative) and float32 (1e-4) on a small CNN with BatchNorm and on an MLP
with LayerNorm, with cross-entropy and MSE, and checks that a seed gives the same SLQ probes and
nodes on both devices. Usage: ``python benchmarks/gpu_check.py`` on a machine with a GPU.
Not a unit test (CI has no GPU); the CPU paths are tested in tests/.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from curvscope.operators import OPERATORS, HessianOperator
from curvscope.spectral import slq


def _models():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 5),
    )
    with torch.no_grad():
        cnn[1].running_mean.uniform_(-0.1, 0.1)
        cnn[1].running_var.uniform_(0.5, 1.5)
    ln = nn.Sequential(
        nn.Flatten(), nn.Linear(48, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 5)
    )
    return {"cnn-bn": cnn, "mlp-layernorm": ln}


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 1
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(37, 3, 4, 4, generator=gen)
    y_cls = torch.randint(0, 5, (37,), generator=gen)
    y_reg = torch.randn(37, 5, generator=gen)
    worst = 0.0
    for name, model in _models().items():
        for loss_name, loss_fn, y in (
            ("ce", nn.CrossEntropyLoss(), y_cls),
            ("mse", nn.MSELoss(), y_reg),
        ):
            for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
                for cls in OPERATORS.values():
                    results = {}
                    for device in ("cpu", "cuda"):
                        m = model.to(device=device, dtype=dtype).eval()
                        yy = y.to(device, dtype) if y.is_floating_point() else y.to(device)
                        op = cls(m, loss_fn, (x.to(device, dtype), yy), batch_size=10)
                        block = torch.randn(
                            op.shape[0], 4, generator=torch.Generator().manual_seed(1), dtype=dtype
                        ).to(device)
                        results[device] = ((op @ block).cpu(), op.report.chosen)
                    ref = results["cpu"][0]
                    err = float((results["cuda"][0] - ref).abs().max() / ref.abs().max())
                    worst = max(worst, err / tol)
                    status = "ok" if err <= tol else "FAIL"
                    print(
                        f"{status:4s} {name:14s} {loss_name:4s} {dtype!s:14s} {cls.__name__:28s} rel.err {err:.2e}  cuda methods {results['cuda'][1]}"
                    )
    model = _models()["cnn-bn"].double()
    nodes = {}
    for device in ("cpu", "cuda"):
        op = HessianOperator(
            model.to(device), nn.CrossEntropyLoss(), (x.double().to(device), y_cls.to(device))
        )
        nodes[device] = slq(op, num_steps=20, num_probes=2, seed=3).nodes
    slq_err = float(abs(torch.as_tensor(nodes["cpu"]) - torch.as_tensor(nodes["cuda"])).max())
    print(f"slq nodes cpu vs cuda (same seed, float64): max difference {slq_err:.2e}")
    ok = worst <= 1.0 and slq_err < 1e-8
    print("ALL OK" if ok else "FAILURES")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
