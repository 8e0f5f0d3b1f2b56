"""The Lanczos kernel: ghosts without reorthogonalisation, breakdown, checkpoint/resume, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg as spla
import torch

from curvscope import DenseOperator, InputError, NonFiniteError
from curvscope.operators.base import SymmetricOperator
from curvscope.spectral import (
    EigenResult,
    ExactSpectrum,
    LanczosResult,
    SpectralDensity,
    TraceEstimate,
    exact_spectrum,
    hutchinson_trace,
    hutchpp_trace,
    lanczos,
    slq,
    top_eigenpairs,
)


def _diag_op(values: np.ndarray) -> DenseOperator:
    return DenseOperator(torch.diag(torch.as_tensor(values, dtype=torch.float64)))


@pytest.fixture(scope="module")
def outliers() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate([rng.uniform(0.0, 1.0, 998), [50.0, 100.0]])


def test_ghost_eigenvalues_without_reorthogonalization(outliers: np.ndarray) -> None:
    op = _diag_op(outliers)
    plain = lanczos(op, num_steps=150, reorthogonalize=False).ritz(0)[0]
    clean = lanczos(op, num_steps=150).ritz(0)[0]
    # Loss of orthogonality: the converged outlier reappears as spurious copies (ghosts).
    assert np.sum(np.abs(plain - 100.0) < 1e-6) >= 2
    assert np.sum(np.abs(plain - 50.0) < 1e-6) >= 2
    # Full reorthogonalisation: each simple eigenvalue appears once.
    assert np.sum(np.abs(clean - 100.0) < 1e-6) == 1
    assert np.sum(np.abs(clean - 50.0) < 1e-6) == 1
    assert np.all(np.diff(clean) > 1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_gram_schmidt_pass_keeps_the_basis_orthonormal(
    outliers: np.ndarray, dtype: torch.dtype, tmp_path
) -> None:
    # Outliers converge within a few steps, so the plain recurrence loses orthogonality at once
    # (the ghosts above); one pass after the three-term recurrence must still hold the basis
    # orthonormal to round-off, and the Ritz values must equal a float64 Lanczos with two
    # unconditional passes (an independent numpy implementation).
    values = outliers.copy()
    values[-2:] = [5e3, 1e4]  # a condition far beyond the float32 epsilon
    op = DenseOperator(torch.diag(torch.as_tensor(values, dtype=dtype)))
    path = tmp_path / "basis.ckpt"
    res = lanczos(op, num_steps=60, num_probes=3, seed=4, probe="gaussian", checkpoint=path)
    basis = torch.load(path, weights_only=False)["basis"].double()  # (probes, 61, P)
    eps = torch.finfo(dtype).eps
    for i in range(3):
        gram = basis[i] @ basis[i].T
        assert (gram - torch.eye(61, dtype=torch.float64)).abs().max() < 20 * eps
        q = basis[i, 0].numpy()
        alphas, betas, vectors = [], [], [q]
        for _step in range(60):  # reference: numpy, float64, Gram-Schmidt twice at every step
            w = values * vectors[-1]
            for _ in range(2):
                w = w - np.stack(vectors).T @ (np.stack(vectors) @ w)
            alphas.append(vectors[-1] @ (values * vectors[-1]))
            betas.append(np.linalg.norm(w))
            vectors.append(w / betas[-1])
        ref = np.linalg.eigvalsh(np.diag(alphas) + np.diag(betas[:-1], 1) + np.diag(betas[:-1], -1))
        np.testing.assert_allclose(res.ritz(i)[0], ref, rtol=0, atol=200 * eps * values.max())
    assert res.second_passes == 0


def test_second_gram_schmidt_pass_runs_when_one_leaves_too_much() -> None:
    # w almost inside the span: one classical pass leaves eps * ||w|| along it, large against
    # what remains; the DGKS criterion must ask for the second pass, which removes it.
    from curvscope.spectral.lanczos import _reorthogonalize

    gen = torch.Generator().manual_seed(1)
    span = torch.linalg.qr(torch.randn(2, 2000, 8, generator=gen))[0].transpose(1, 2)  # (2, 8, P)
    inside = (torch.randn(2, 1, 8, generator=gen) @ span).squeeze(1)
    w = inside + 1e-4 * torch.randn(2, 2000, generator=gen)

    def leftover(v: torch.Tensor) -> float:  # largest |<q, v>| / ||v|| over the span
        return float(((span @ v.unsqueeze(2)).squeeze(2).abs().amax(1) / v.norm(dim=1)).max())

    once = w - (w.unsqueeze(1) @ span.transpose(1, 2) @ span).squeeze(1)
    assert leftover(once) > 1e-4  # one pass is not enough here: the test can fail
    out, norm, passes = _reorthogonalize(w, span, torch.device("cpu"))
    assert passes == 1 and norm is None
    assert leftover(out) < 10 * torch.finfo(torch.float32).eps
    # Far from the span one pass is enough, and the returned norm is the float64 norm.
    far = torch.randn(2, 2000, generator=gen)
    out, norm, passes = _reorthogonalize(far, span, torch.device("cpu"))
    assert passes == 0 and leftover(out) < 10 * torch.finfo(torch.float32).eps
    torch.testing.assert_close(norm, out.double().norm(dim=1), rtol=1e-12, atol=0)


def test_breakdown_stops_probe_cleanly_and_is_exact() -> None:
    # 5 distinct eigenvalues: the Krylov space is invariant after 5 steps.
    values = np.repeat([-2.0, 0.5, 1.0, 3.0, 7.0], 40)
    result = lanczos(_diag_op(values), num_steps=30, num_probes=3)
    assert result.breakdown.all()
    assert (result.steps == 5).all()
    for i in range(3):
        nodes, weights, residuals = result.ritz(i)
        np.testing.assert_allclose(nodes, [-2.0, 0.5, 1.0, 3.0, 7.0], atol=1e-12)
        np.testing.assert_allclose(weights, 0.2, atol=0.1)
        assert residuals.max() < 1e-10
    density = SpectralDensity.from_lanczos(result)
    np.testing.assert_allclose(density.moments(2).values[2], np.mean(values**2), rtol=0.3)


def test_probes_advance_independently_as_single_runs(outliers: np.ndarray) -> None:
    """k probes in lockstep give the same per-probe coefficients as... their own recurrences."""
    op = _diag_op(outliers)
    block = lanczos(op, num_steps=20, num_probes=3, seed=4)
    # Independent reference: plain numpy Lanczos (reorthogonalised) from the same probes.
    gen = torch.Generator().manual_seed(4)
    probes = (
        torch.randint(0, 2, (1000, 3), generator=gen, dtype=torch.int8).double() * 2 - 1
    ).numpy()
    matrix = np.diag(outliers)
    for i in range(3):
        basis = [probes[:, i] / np.linalg.norm(probes[:, i])]
        alphas = []
        for _ in range(20):
            w = matrix @ basis[-1]
            alphas.append(basis[-1] @ w)
            q = np.array(basis).T
            w = w - q @ (q.T @ w)
            w = w - q @ (q.T @ w)
            basis.append(w / np.linalg.norm(w))
        np.testing.assert_allclose(block.alphas[i], alphas, rtol=1e-10)
    assert block.num_products == 20


class _Interrupting(SymmetricOperator):
    """Wraps an operator and raises after ``fail_after`` products (a simulated crash)."""

    def __init__(self, inner: DenseOperator, fail_after: int) -> None:
        self.inner, self.fail_after, self.calls = inner, fail_after, 0

    shape = property(lambda self: self.inner.shape)
    dtype = property(lambda self: self.inner.dtype)
    device = property(lambda self: self.inner.device)

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner @ block


def test_interrupted_then_resumed_equals_uninterrupted(outliers: np.ndarray, tmp_path) -> None:
    op = _diag_op(outliers)
    full = lanczos(op, num_steps=25, num_probes=2, seed=9)
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        lanczos(
            _Interrupting(op, 13),
            num_steps=25,
            num_probes=2,
            seed=9,
            checkpoint=path,
            checkpoint_every=4,
        )
    assert path.exists() and not (tmp_path / "run.ckpt.tmp").exists()
    resumed = lanczos(op, num_steps=25, num_probes=2, seed=9, checkpoint=path, checkpoint_every=4)
    assert resumed.num_products == 25 - 12  # resumed from the step-12 checkpoint
    np.testing.assert_array_equal(resumed.alphas, full.alphas)
    np.testing.assert_array_equal(resumed.betas, full.betas)
    # Extending: a larger num_steps continues the same run.
    longer = lanczos(op, num_steps=40, num_probes=2, seed=9, checkpoint=path)
    reference = lanczos(op, num_steps=40, num_probes=2, seed=9)
    assert longer.num_products == 15
    np.testing.assert_allclose(longer.alphas, reference.alphas, rtol=1e-12, atol=1e-14)
    # A smaller num_steps truncates without products.
    short = lanczos(op, num_steps=10, num_probes=2, seed=9, checkpoint=path)
    assert short.num_products == 0
    np.testing.assert_array_equal(short.alphas, reference.alphas[:, :10])
    with pytest.raises(InputError, match=r"checkpoint .* was written for .*same operator"):
        lanczos(op, num_steps=10, num_probes=2, seed=10, checkpoint=path)


def test_host_basis_and_gaussian_probes_match(outliers: np.ndarray) -> None:
    op = _diag_op(outliers)
    on_device = lanczos(op, num_steps=15, probe="gaussian", seed=2)
    on_host = lanczos(op, num_steps=15, probe="gaussian", seed=2, basis_device="cpu", progress=True)
    np.testing.assert_allclose(on_device.alphas, on_host.alphas, rtol=1e-13)
    assert on_device.probe == "gaussian"
    assert not np.allclose(on_device.alphas, lanczos(op, num_steps=15, seed=2).alphas)


def test_accepts_scipy_linear_operator_sparse_and_numpy(outliers: np.ndarray) -> None:
    reference = lanczos(_diag_op(outliers), num_steps=10).alphas
    diag = scipy.sparse.diags(outliers)
    for op in (
        spla.aslinearoperator(diag),
        diag,
        np.diag(outliers),
        torch.diag(torch.as_tensor(outliers)),
    ):
        np.testing.assert_allclose(lanczos(op, num_steps=10).alphas, reference, rtol=1e-12)


def test_results_save_and_load_roundtrip(outliers: np.ndarray, tmp_path) -> None:
    op = _diag_op(outliers)
    objects = [
        lanczos(op, num_steps=8, num_probes=2),
        slq(op, num_steps=8, num_probes=2),
        hutchinson_trace(op, num_matvecs=4),
        hutchpp_trace(op, num_matvecs=6),
        top_eigenpairs(op, 2),
        exact_spectrum(np.diag(outliers[:20])),
        exact_spectrum(np.diag(outliers[:20]), eigenvectors=True),
    ]
    for n, obj in enumerate(objects):
        stem = obj.save(tmp_path / f"r{n}")
        back = type(obj).load(stem)
        for name, value in vars(obj).items():
            other = getattr(back, name)
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(other, value)
            else:
                assert other == value, name
        assert back.version
    density = objects[1]
    assert density.num_steps == 8 and density.size == 1000 and density.seed == 0
    assert set(density.timings) >= {"products", "reorthogonalization", "total"}
    with pytest.raises(InputError, match=r"holds a 'SpectralDensity', not a TraceEstimate"):
        TraceEstimate.load(tmp_path / "r1")
    with pytest.raises(InputError, match=r"expects missing\.json and missing\.npz"):
        LanczosResult.load(tmp_path / "missing")
    assert isinstance(objects[4], EigenResult) and isinstance(objects[5], ExactSpectrum)


class _NaNOperator(DenseOperator):
    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        return torch.full_like(block, float("nan"))


def test_bad_inputs_raise_clear_errors() -> None:
    op = _diag_op(np.arange(10.0))
    with pytest.raises(InputError, match=r"num_steps must be an integer >= 1, got 0"):
        lanczos(op, num_steps=0)
    with pytest.raises(InputError, match=r"num_probes must be an integer >= 1"):
        lanczos(op, num_steps=3, num_probes=2.5)
    with pytest.raises(InputError, match=r"probe must be 'rademacher' or 'gaussian', got 'sobol'"):
        slq(op, num_steps=3, probe="sobol")
    with pytest.raises(InputError, match=r"seed must be an int"):
        lanczos(op, num_steps=3, seed="1")
    with pytest.raises(InputError, match=r"must be a symmetric operator.*got list"):
        lanczos([[1.0]], num_steps=1)
    with pytest.raises(InputError, match=r"square, non-empty"):
        lanczos(spla.aslinearoperator(np.ones((3, 4))), num_steps=1)
    with pytest.raises(InputError, match=r"symmetric matrix"):
        slq(np.array([[0.0, 1.0], [0.0, 0.0]]), num_steps=1)
    with pytest.raises(NonFiniteError, match=r"NaN or inf"):
        lanczos(_NaNOperator(torch.eye(4)), num_steps=2)
    with pytest.raises(InputError, match=r"num_matvecs must be an integer >= 2"):
        hutchinson_trace(op, num_matvecs=1)
    with pytest.raises(InputError, match=r"num_matvecs must be an integer >= 6"):
        hutchpp_trace(op, num_matvecs=5)
    with pytest.raises(InputError, match=r"1 <= k < P = 10"):
        top_eigenpairs(op, 10)
    with pytest.raises(InputError, match=r"which must be one of"):
        top_eigenpairs(op, 2, which="middle")
    with pytest.raises(InputError, match=r"lobpcg finds algebraically"):
        top_eigenpairs(op, 2, which="magnitude", method="lobpcg")
    density = slq(op, num_steps=5)
    with pytest.raises(InputError, match=r"sigma must be a positive finite width"):
        density.smoothed([0.0], sigma=0)
    with pytest.raises(InputError, match=r"c_sep and tau_abs must be finite and >= 0"):
        density.negative_mass(c_sep=-1)
    with pytest.raises(InputError, match=r"probe index must be in \[0, 1\)"):
        density.probe_nodes(3)
    with pytest.raises(InputError, match=r"k must be a positive integer"):
        density.top_weights(0)


def test_num_steps_capped_at_size() -> None:
    result = lanczos(_diag_op(np.arange(6.0)), num_steps=50)
    assert result.num_steps == 6
    np.testing.assert_allclose(result.ritz(0)[0], np.arange(6.0), atol=1e-12)
