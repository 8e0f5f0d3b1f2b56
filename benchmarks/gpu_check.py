"""GPU correctness: every curvature operator on CUDA equals the same operator on the CPU.

Runs in float64 (1e-10 relative) and float32 (1e-4) on a small CNN with BatchNorm and on an MLP
with LayerNorm, with cross-entropy and MSE, and checks that a seed gives the same SLQ probes and
nodes on both devices. float32 runs with TF32 off (the pass/fail check) and with torch's TF32
on and ``allow_tf32=True`` (reported, not judged). Then, on the benchmark's small CNN (P = 155k,
N = 256), the float32 product's error against the float64 product on the GPU and its time, with
torch's TF32 off, on (judged: the engine's default must keep IEEE float32, the error of the
first line) and on with ``allow_tf32=True``. Usage: ``python
benchmarks/gpu_check.py`` on a machine with a GPU. Not a unit test (CI has no GPU); the CPU
paths are tested in tests/.
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
            for dtype, tol, tf32 in (
                (torch.float64, 1e-10, False),
                (torch.float32, 1e-4, False),
                (torch.float32, None, True),
            ):
                for cls in OPERATORS.values():
                    results = {}
                    _set_tf32(tf32)
                    for device in ("cpu", "cuda"):
                        m = model.to(device=device, dtype=dtype).eval()
                        yy = y.to(device, dtype) if y.is_floating_point() else y.to(device)
                        op = cls(
                            m, loss_fn, (x.to(device, dtype), yy), batch_size=10, allow_tf32=tf32
                        )
                        block = torch.randn(
                            op.shape[0], 4, generator=torch.Generator().manual_seed(1), dtype=dtype
                        ).to(device)
                        results[device] = ((op @ block).cpu(), op.report.chosen)
                    ref = results["cpu"][0]
                    err = float((results["cuda"][0] - ref).abs().max() / ref.abs().max())
                    if tol is None:
                        status = "info"
                    else:
                        worst = max(worst, err / tol)
                        status = "ok" if err <= tol else "FAIL"
                    label = f"{dtype}{'+tf32' if tf32 else ''}"
                    print(
                        f"{status:4s} {name:14s} {loss_name:4s} {label:19s} {cls.__name__:28s} rel.err {err:.2e}  cuda methods {results['cuda'][1]}"
                    )
    _set_tf32(False)
    model = _models()["cnn-bn"].double()
    nodes = {}
    for device in ("cpu", "cuda"):
        op = HessianOperator(
            model.to(device), nn.CrossEntropyLoss(), (x.double().to(device), y_cls.to(device))
        )
        nodes[device] = slq(op, num_steps=20, num_probes=2, seed=3).nodes
    slq_err = float(abs(torch.as_tensor(nodes["cpu"]) - torch.as_tensor(nodes["cuda"])).max())
    print(f"slq nodes cpu vs cuda (same seed, float64): max difference {slq_err:.2e}")
    engine_keeps_float32 = tf32_on_small_cnn()
    ok = worst <= 1.0 and slq_err < 1e-8 and engine_keeps_float32
    print("ALL OK" if ok else "FAILURES")
    return 0 if ok else 1


#: torch's TF32 switches as this process found them (cuDNN convolutions, matmul)
TF32_DEFAULTS = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)


def _set_tf32(on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def tf32_on_small_cnn() -> bool:
    """The benchmark's small CNN (eval BatchNorm), N = 256 in one batch, on the GPU: relative
    error of the float32 Hessian product (4 columns) against the float64 one, and seconds per
    product (median of 5 after a warm-up), with torch's TF32 switches off, on (the engine
    turns them off for its products: the error must equal the first line's), and on with
    ``allow_tf32=True``; torch's defaults printed. True when the engine's default under
    torch's TF32 is as accurate as with TF32 off (within 2x)."""
    import time

    from benchmarks.spectral import small_cnn

    print(
        f"torch defaults: TF32 in cuDNN convolutions {TF32_DEFAULTS[0]}, in matmul "
        f"{TF32_DEFAULTS[1]}"
    )
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = small_cnn().eval()
    x = torch.randn(256, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (256,), generator=gen)
    size = sum(p.numel() for p in model.parameters())
    block = torch.randn(size, 4, generator=gen, dtype=torch.float64)
    m64 = model.to("cuda", torch.float64)
    truth = (
        HessianOperator(m64, nn.CrossEntropyLoss(), (x.cuda().double(), y.cuda())) @ block.cuda()
    )
    m32 = model.to("cuda", torch.float32)
    # torch's switches, the operator's allow_tf32: the engine keeps float32 unless allowed
    errors = {}
    for tf32, allow in ((False, False), (True, False), (True, True)):
        _set_tf32(tf32)
        op = HessianOperator(m32, nn.CrossEntropyLoss(), (x.cuda(), y.cuda()), allow_tf32=allow)
        got = op @ block.cuda().float()
        times = []
        for _ in range(5):
            torch.cuda.synchronize()
            tick = time.perf_counter()
            op @ block.cuda().float()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - tick)
        err = errors[tf32, allow] = float((got.double() - truth).norm() / truth.norm())
        print(
            f"small CNN P={size} N=256 float32, torch TF32 {'on ' if tf32 else 'off'}, "
            f"allow_tf32={allow!s:5s}: rel.err vs "
            f"float64 {err:.2e}, {sorted(times)[2] * 1e3:.2f} ms per 4-column product "
            f"(rewrite {op.report.rewrite}, method {sorted(set(op.report.chosen.values()))})"
        )
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = TF32_DEFAULTS
    keeps = errors[True, False] <= 2 * errors[False, False]
    print(f"engine default under torch's TF32 keeps IEEE float32: {'ok' if keeps else 'FAIL'}")
    return keeps


if __name__ == "__main__":
    sys.exit(main())
