"""Quickstart: the Hessian spectrum of a small MLP trained on the bundled digits data.

Trains the default 64-32-10 MLP for a few epochs, then computes, from products H @ V only:
the stochastic-Lanczos spectrum (extremes, negative mass, heaviest Ritz weights), the top
eigenvalues, a Hutch++ trace, and checks them against the exact spectrum (P = 2410 is small
enough for a dense float64 eigendecomposition). Runs in well under a minute on 2 CPU cores and
asserts its own results.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from curvscope import (
    GGNOperator,
    HessianOperator,
    TrainConfig,
    exact_spectrum,
    hutchpp_trace,
    load_dataset,
    slq,
    top_eigenpairs,
    train,
)


def main() -> None:
    config = TrainConfig.from_preset(
        "normal", model="mlp", data="digits", epochs=8, batch_size=32, weight_decay=1e-4
    )
    result = train(config, progress=False)
    model = result.model.eval()
    print(
        f"trained {config.model} on {config.data}: P = {result.num_parameters}, "
        f"test accuracy {result.history[-1]['test_accuracy']:.3f}"
    )

    data = load_dataset("digits", "train").loader(256)
    hessian = HessianOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    density = slq(hessian, num_steps=80, num_probes=4, seed=0)
    lo, hi = density.extremal
    print(
        f"SLQ (80 steps, 4 probes): extremes [{lo:.4f}, {hi:.4f}], "
        f"negative mass {density.negative_mass().mass:.4f}"
    )
    print(
        "heaviest Ritz weights:",
        ", ".join(f"{p.weight:.3f} at {p.node:.3g}" for p in density.top_weights(3)),
    )

    top = top_eigenpairs(hessian, 3, which="largest", seed=0)
    trace = hutchpp_trace(hessian, num_matvecs=60, seed=0)
    exact = exact_spectrum(hessian)
    eig = np.asarray(exact.eigenvalues)
    print(
        "top-3 eigenvalues:",
        np.round(np.asarray(top.values), 5),
        " exact:",
        np.round(eig[::-1][:3], 5),
    )
    print(f"trace: Hutch++ {trace.value:.4f} ± {trace.stderr:.4f}, exact {eig.sum():.4f}")

    gauss_newton = GGNOperator(model, nn.CrossEntropyLoss(), data, dtype=torch.float64)
    ggn_top = top_eigenpairs(gauss_newton, 1, which="largest", seed=0)
    print(
        f"largest GGN eigenvalue {float(ggn_top.values[0]):.4f} (Hessian {float(top.values[0]):.4f})"
    )

    # the example checks itself
    assert np.allclose(np.sort(np.asarray(top.values)), np.sort(eig[-3:]), rtol=1e-6)
    assert abs(hi - eig[-1]) < 1e-6 * abs(eig[-1])
    assert abs(trace.value - eig.sum()) < 4 * trace.stderr + 1e-9
    print("all checks passed")


if __name__ == "__main__":
    main()
