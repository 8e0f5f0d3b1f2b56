"""Discrete spectral measures: eigenvalue lists, (nodes, weights) pairs, SLQ densities.

``as_law`` turns any of the inputs that :func:`~curvscope.rmt.free.free_convolution` accepts into a
:class:`~curvscope.rmt._base.SpectralLaw`: a law passes through; a 1-D list/array of eigenvalues
becomes equal weights ``1/P`` (theory.md §0); a pair ``(nodes, weights)`` is used as given; an
object with ``nodes`` and ``weights`` attributes (the spectral engine's ``SpectralDensity``: per
probe ``(num_probes, m)`` or pooled ``(m,)``) is pooled, each probe weighted ``1/num_probes``
(theory.md §1.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curvscope._validate import check_int
from curvscope.errors import InputError
from curvscope.persistence import savable
from curvscope.rmt._base import SpectralLaw, as_generator

__all__ = ["DiscreteMeasure", "as_law"]


@savable
@dataclass(frozen=True, eq=False)
class DiscreteMeasure(SpectralLaw):
    """A probability measure ``sum_k w_k delta(t - t_k)``.

    .. math:: G(z) = \\sum_k \\frac{w_k}{z - t_k}.

    It has no density: :meth:`pdf` is zero and every node is an atom. As an input of free
    convolution it stands for a measured spectrum (eigenvalues or SLQ Ritz pairs).

    Attributes:
        nodes: the support points (sorted, unique).
        weights: their masses (positive, summing to 1).
    """

    nodes: np.ndarray
    weights: np.ndarray

    @staticmethod
    def from_eigenvalues(eigenvalues: Any) -> DiscreteMeasure:
        """Equal weights ``1/P`` on the given eigenvalues."""
        ev = _real_vector("eigenvalues", eigenvalues)
        return DiscreteMeasure.from_nodes_weights(ev, np.full(ev.size, 1.0 / ev.size))

    @staticmethod
    def from_nodes_weights(nodes: Any, weights: Any) -> DiscreteMeasure:
        """Merge repeated nodes; the weights must be non-negative and sum to 1 (to 1e-6)."""
        nodes = _real_vector("nodes", nodes)
        weights = _real_vector("weights", weights)
        if nodes.shape != weights.shape:
            raise InputError(
                f"nodes and weights must have the same shape; got {nodes.shape} and {weights.shape}"
            )
        if np.any(weights < 0):
            raise InputError(f"weights must be non-negative; the smallest is {weights.min():.3g}")
        total = float(weights.sum())
        if abs(total - 1.0) > 1e-6:
            raise InputError(
                f"weights must sum to 1 (a probability measure); they sum to {total:.8g}. "
                "Normalise them, or pass eigenvalues alone for equal weights"
            )
        uniq, inverse = np.unique(nodes, return_inverse=True)
        merged = np.bincount(inverse, weights=weights / total)
        keep = merged > 0
        return DiscreteMeasure(uniq[keep], merged[keep])

    @property
    def atoms(self) -> tuple[tuple[float, float], ...]:
        return tuple((float(t), float(w)) for t, w in zip(self.nodes, self.weights))

    @property
    def intervals(self) -> tuple[tuple[float, float], ...]:
        return ()

    def pdf(self, x: Any) -> np.ndarray:
        return np.zeros_like(np.asarray(x, dtype=float))

    def stieltjes(self, z: Any) -> np.ndarray:
        z = np.asarray(z, dtype=complex)
        flat = z.reshape(-1)
        out = np.empty_like(flat)
        for start in range(0, flat.size, 2048):  # bounded memory for large grids x many nodes
            block = flat[start : start + 2048, None]
            out[start : start + 2048] = np.sum(self.weights / (block - self.nodes), axis=1)
        return out.reshape(z.shape)

    def stieltjes_derivative(self, z: Any) -> np.ndarray:
        z = np.asarray(z, dtype=complex)
        flat = z.reshape(-1)
        out = np.empty_like(flat)
        for start in range(0, flat.size, 2048):
            block = flat[start : start + 2048, None]
            out[start : start + 2048] = -np.sum(self.weights / (block - self.nodes) ** 2, axis=1)
        return out.reshape(z.shape)

    def moments(self, k: int) -> np.ndarray:
        k = check_int("the moment order k", k, minimum=0)
        return np.array([float(np.sum(self.weights * self.nodes**j)) for j in range(k + 1)])

    def sample_matrix(self, n: int, *, generator: Any) -> np.ndarray:
        """``Q diag(t) Q^T``: ``t`` drawn from the measure, ``Q`` Haar orthogonal."""
        from curvscope.rmt.freeness import haar_orthogonal

        rng = as_generator(generator)
        t = rng.choice(self.nodes, size=n, p=self.weights)
        q = haar_orthogonal(n, generator=rng)
        return (q * t) @ q.T


def _real_vector(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a 1-D array of real numbers; got {type(value).__name__}"
        ) from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D array; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def _pool(nodes: Any, weights: Any) -> DiscreteMeasure:
    """Pool per-probe Ritz pairs, each probe's weights scaled by ``1/num_probes``."""
    if isinstance(nodes, (list, tuple)) and nodes and np.ndim(nodes[0]) == 1:
        if len(nodes) != len(weights):
            raise InputError(f"got {len(nodes)} probes of nodes but {len(weights)} of weights")
        parts = [np.asarray(n, float) for n in nodes]
        wparts = [np.asarray(w, float) / len(weights) for w in weights]
        return DiscreteMeasure.from_nodes_weights(np.concatenate(parts), np.concatenate(wparts))
    n_arr, w_arr = np.asarray(nodes, dtype=float), np.asarray(weights, dtype=float)
    if n_arr.ndim == 2:
        if n_arr.shape != w_arr.shape:
            raise InputError(f"nodes {n_arr.shape} and weights {w_arr.shape} differ in shape")
        return DiscreteMeasure.from_nodes_weights(n_arr.ravel(), w_arr.ravel() / n_arr.shape[0])
    return DiscreteMeasure.from_nodes_weights(n_arr, w_arr)


def as_law(obj: Any) -> SpectralLaw:
    """Coerce a law, eigenvalues, ``(nodes, weights)`` or an object with ``nodes``/``weights``.

    Raises:
        InputError: for anything else, saying which forms are accepted.
    """
    if isinstance(obj, SpectralLaw):
        return obj
    if hasattr(obj, "nodes") and hasattr(obj, "weights"):
        return _pool(obj.nodes, obj.weights)
    if isinstance(obj, tuple) and len(obj) == 2 and all(np.ndim(o) >= 1 for o in obj):
        return _pool(obj[0], obj[1])
    if isinstance(obj, (list, tuple, np.ndarray)):
        arr = np.asarray(obj, dtype=object if isinstance(obj, (list, tuple)) else None)
        if arr.ndim == 1:
            return DiscreteMeasure.from_eigenvalues(np.asarray(obj, dtype=float))
        raise InputError(
            f"an array of eigenvalues must be 1-D; got shape {np.shape(obj)}. For Ritz pairs pass "
            "a tuple (nodes, weights)"
        )
    raise InputError(
        f"expected a spectral law, a 1-D list/array of eigenvalues, a tuple (nodes, weights) or "
        f"an object with .nodes and .weights (e.g. a SpectralDensity); got {type(obj).__name__}"
    )
