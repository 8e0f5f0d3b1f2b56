"""top_eigenpairs' thick-restart Lanczos: accuracy vs numpy.linalg.eigh, its bounds, its budget.

Planted spectra (clustered, degenerate, negative-dominant) rotated by a random orthogonal
matrix; the dense float64 Hessian of a small net (reverse-over-reverse, tests/oracles.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curvscope import DenseOperator
from curvscope.errors import InputError, NonFiniteError
from curvscope.spectral import top_eigenpairs
from curvscope.spectral.thick_restart import accuracy_floor

SIZE = 300


class _Counting(DenseOperator):
    """A dense operator that counts product columns (independently of EigenResult)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__(matrix)
        self.columns = 0

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        self.columns += block.shape[1]
        return super()._matmat(block)


def _planted(eigenvalues: np.ndarray, seed: int = 0, dtype=torch.float64) -> _Counting:
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))[0]
    matrix = (rotation * eigenvalues) @ rotation.T
    return _Counting(torch.as_tensor((matrix + matrix.T) / 2, dtype=dtype))


def _spectrum(kind: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    bulk = rng.uniform(-1.0, 1.0, SIZE - 6)
    if kind == "separated":
        top = [10.0, 7.0, 5.0, 4.0, 3.0, 2.5]
    elif kind == "clustered":  # relative gaps 1e-3 at the top
        top = [5.0, 4.995, 4.99, 4.985, 3.0, 2.9]
    elif kind == "negative_dominant":  # the largest magnitudes are negative
        top = [-20.0, -15.0, -12.0, 3.0, 2.5, 2.0]
    else:
        raise ValueError(kind)
    return np.concatenate([top, bulk])


def _truth(lam: np.ndarray, k: int, which: str) -> np.ndarray:
    if which == "largest":
        return np.sort(lam)[::-1][:k]
    if which == "smallest":
        return np.sort(lam)[:k]
    return lam[np.argsort(-np.abs(lam), kind="stable")][:k]


@pytest.mark.parametrize(
    ("kind", "which"),
    [
        ("separated", "largest"),
        ("clustered", "largest"),
        ("negative_dominant", "magnitude"),
        ("negative_dominant", "smallest"),
    ],
)
@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_values_meet_tol_against_eigh(kind: str, which: str, tol: float) -> None:
    lam = _spectrum(kind)
    op = _planted(lam)
    truth = _truth(np.linalg.eigvalsh(op.matrix.numpy()), 4, which)
    res = top_eigenpairs(op, 4, which=which, tol=tol, max_matvecs=SIZE * 2)
    assert res.method == "lanczos"
    assert res.converged.all()
    actual = np.abs(res.values - truth)
    assert np.all(actual <= tol * np.abs(truth))
    # The stated bounds hold and are not vacuous (within 1e4 of the actual error or at tol).
    assert np.all(actual <= res.errors * (1 + 1e-6) + 1e-13)
    assert np.all(res.errors <= tol * np.abs(res.values) * (1 + 1e-9))
    # Residuals from the Lanczos relation match a fresh product.
    z = torch.as_tensor(res.vectors)
    fresh = (op.matrix @ z - z * torch.as_tensor(res.values)).norm(dim=0).numpy()
    np.testing.assert_allclose(res.residuals, fresh, rtol=1e-3, atol=1e-11 * np.abs(lam).max())
    np.testing.assert_allclose(res.vectors.T @ res.vectors, np.eye(4), atol=1e-10)
    assert res.num_matvecs == op.columns


def test_degenerate_eigenvalue_needs_a_block() -> None:
    # 6.0 has multiplicity 3: a block of 3 resolves it; eigh is the truth.
    lam = np.concatenate([[6.0, 6.0, 6.0, 4.0], np.random.default_rng(2).uniform(-1, 1, SIZE - 4)])
    op = _planted(lam, seed=3)
    res = top_eigenpairs(op, 4, method="block_lanczos", block_size=3, tol=1e-10)
    np.testing.assert_allclose(res.values, [6.0, 6.0, 6.0, 4.0], rtol=1e-10)
    assert res.converged.all()
    # The eigenvectors span the eigenspace of 6 (projector distance from eigh's).
    values, vectors = np.linalg.eigh(op.matrix.numpy())
    ours, theirs = res.vectors[:, :3], vectors[:, np.isclose(values, 6.0)]
    assert np.linalg.norm(ours @ ours.T - theirs @ theirs.T, 2) < 1e-6
    # Top-1 of a degenerate eigenvalue needs no block.
    assert top_eigenpairs(op, 1, tol=1e-10).values[0] == pytest.approx(6.0, rel=1e-10)


def test_block_lanczos_through_an_invariant_subspace() -> None:
    # Rank 2: the first product of a block of 3 spans only 2 directions; the lost one is
    # replaced by a fresh random direction and the relation still holds (eigh is the truth).
    rng = np.random.default_rng(4)
    u = np.linalg.qr(rng.standard_normal((60, 2)))[0]
    op = _Counting(torch.as_tensor((u * [5.0, 3.0]) @ u.T, dtype=torch.float64))
    res = top_eigenpairs(op, 4, method="block_lanczos", block_size=3, tol=1e-10)
    np.testing.assert_allclose(res.values, [5.0, 3.0, 0.0, 0.0], atol=1e-12)
    assert res.converged.all()
    np.testing.assert_allclose(res.vectors.T @ res.vectors, np.eye(4), atol=1e-12)
    fresh = op.matrix.numpy() @ res.vectors - res.vectors * res.values
    assert np.linalg.norm(fresh, axis=0).max() < 1e-12
    assert res.num_matvecs == op.columns


def test_a_product_with_nan_stops_the_run() -> None:
    class _Broken(_Counting):
        def _matmat(self, block: torch.Tensor) -> torch.Tensor:
            out = super()._matmat(block)
            if self.columns >= 3:
                out[7] = float("nan")
            return out

    op = _Broken(torch.eye(30, dtype=torch.float64) * torch.arange(30.0, dtype=torch.float64))
    with pytest.raises(NonFiniteError, match="after 3 columns contains NaN or inf"):
        top_eigenpairs(op, 2)


def test_one_host_copy_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU each copy to the host waits for the device: the solver makes one per product
    # step (the finite flag, the scale, the coefficients and r together), not one per quantity.
    copies = []
    original = torch.Tensor.cpu

    def counted(self, *args, **kwargs):
        copies.append(self.numel())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counted)
    lam = _spectrum("clustered")
    res = top_eigenpairs(_planted(lam), 3, tol=1e-8)
    monkeypatch.undo()
    start, end = 1, 1  # the start block's r; the returned vectors
    assert len(copies) == res.num_matvecs + start + end


def test_restarts_keep_the_relation() -> None:
    # A tiny basis forces many thick restarts; the answer and the budget still hold.
    lam = _spectrum("clustered")
    op = _planted(lam)
    truth = np.sort(lam)[::-1][:3]
    res = top_eigenpairs(op, 3, tol=1e-8, max_dim=12, max_matvecs=3000)
    assert res.converged.all()
    np.testing.assert_allclose(res.values, truth, rtol=1e-8)
    assert res.num_matvecs == op.columns > 12


def test_product_counts_on_a_planted_problem() -> None:
    # Geometric outliers: a Krylov method needs few products, ARPACK at least its ncv = 20.
    lam = np.concatenate([[100.0, 50.0, 25.0], np.linspace(-1.0, 1.0, SIZE - 3)])
    op = _planted(lam, seed=4)
    res1 = top_eigenpairs(op, 1, tol=1e-10)
    assert res1.num_matvecs <= 12 and res1.values[0] == pytest.approx(100.0, rel=1e-10)
    res3 = top_eigenpairs(op, 3, tol=1e-10)
    np.testing.assert_allclose(res3.values, [100.0, 50.0, 25.0], rtol=1e-10)
    assert res3.num_matvecs <= 20
    arpack = top_eigenpairs(op, 3, tol=1e-10, method="eigsh")
    assert res3.num_matvecs < arpack.num_matvecs
    # Looser tol, fewer products: the run stops when it is right.
    assert top_eigenpairs(op, 1, tol=1e-3).num_matvecs < res1.num_matvecs


def test_budget_bounds_every_method() -> None:
    op = _planted(_spectrum("clustered"))
    with pytest.warns(RuntimeWarning, match=r"stopped at max_matvecs = 10"):
        res = top_eigenpairs(op, 2, tol=1e-12, max_matvecs=10)
    assert res.num_matvecs <= 10 and not res.converged.all()
    for method in ("eigsh", "lobpcg"):
        res = top_eigenpairs(op, 2, tol=1e-12, method=method, max_matvecs=40)
        assert res.num_matvecs <= 40 + 2 * 20  # + ARPACK's last basis fill / the final check


def test_float32_tol_below_the_floor_stops_at_once() -> None:
    op = _planted(_spectrum("separated"), dtype=torch.float32)
    floor = accuracy_floor(torch.float32)
    assert 1e-7 < floor < 1e-6
    with pytest.raises(InputError, match=r"tol=1\.0e-07 is below what products in torch\.float32"):
        top_eigenpairs(op, 1, tol=1e-7)
    assert op.columns == 0  # refused before any product
    for method in ("lanczos", "block_lanczos"):
        res = top_eigenpairs(op, 2, method=method)  # the float32 default: 1e-6
        assert res.tol == 1e-6 and res.converged.all()
        truth = np.sort(np.linalg.eigvalsh(op.matrix.double().numpy()))[::-1][:2]
        assert np.all(np.abs(res.values - truth) <= 1e-6 * np.abs(truth))


@pytest.mark.parametrize("model_name", ["mlp-tanh", "cnn-batchnorm"])
def test_dense_hessian_of_a_small_net(model_name: str) -> None:
    from oracles import dense_hessian, make_case  # reverse-over-reverse, float64

    from curvscope.operators import HessianOperator

    case = make_case(model_name, "ce", num_data=30)
    op = HessianOperator(case.model, case.loss_fn, (case.inputs, case.targets), method="rev-rev")
    lam = np.linalg.eigvalsh(dense_hessian(case).numpy())
    for which in ("largest", "smallest", "magnitude"):
        res = top_eigenpairs(op, 3, which=which, tol=1e-9)
        truth = _truth(lam, 3, which)
        assert res.converged.all()
        assert np.all(np.abs(res.values - truth) <= 1e-9 * np.abs(truth) + 1e-12)


@pytest.mark.parametrize("size", [3, 5, 10])
def test_tiny_operators_every_k(size: int) -> None:
    # The basis can fill the whole space: no restart room is needed, Ritz values are exact.
    rng = np.random.default_rng(size)
    a = rng.standard_normal((size, size))
    a = a + a.T
    lam = np.linalg.eigvalsh(a)
    for k in range(1, size):
        for which in ("largest", "smallest", "magnitude"):
            res = top_eigenpairs(torch.as_tensor(a), k, which=which)
            np.testing.assert_allclose(res.values, _truth(lam, k, which), rtol=1e-9, atol=1e-12)
            assert res.converged.all() and res.num_matvecs <= size + 1


def test_bad_lanczos_options_raise() -> None:
    op = _planted(_spectrum("separated"))
    with pytest.raises(InputError, match=r"max_dim >= k \+ 2 \* block_size"):
        top_eigenpairs(op, 5, max_dim=6)
    with pytest.raises(InputError, match=r"max_matvecs must be an integer > k = 3"):
        top_eigenpairs(op, 3, max_matvecs=2)
    with pytest.raises(InputError, match=r"method must be one of"):
        top_eigenpairs(op, 3, method="arnoldi")


def test_vector_tol_gives_eigenvectors_to_that_residual() -> None:
    """tol bounds the eigenvalues (the vectors are only ~sqrt(tol) accurate); vector_tol also
    bounds each residual by vector_tol·‖M‖, so the top-k subspace matches eigh's."""
    lam = _spectrum("clustered")
    op = _planted(lam)
    matrix = op.to_dense().numpy()
    values, vectors = np.linalg.eigh(matrix)
    want = vectors[:, ::-1][:, :4]
    loose = top_eigenpairs(op, 4, tol=1e-6)
    tight = top_eigenpairs(op, 4, tol=1e-6, vector_tol=1e-11)
    norm = np.abs(values).max()
    got = tight.vectors.numpy() if hasattr(tight.vectors, "numpy") else np.asarray(tight.vectors)
    residuals = np.linalg.norm(matrix @ got - got * np.asarray(tight.values), axis=0)
    assert residuals.max() <= 1e-11 * norm * 1.01
    # subspace distance to eigh's top-4 eigenvectors (gap to the 5th: 1.985)
    assert np.linalg.norm(want @ want.T - got @ got.T, 2) < 1e-10
    assert np.max(loose.residuals) > 1e-11 * norm  # without it the vectors are looser
    with pytest.raises(InputError, match="vector_tol"):
        top_eigenpairs(op, 2, vector_tol=1e-20)
