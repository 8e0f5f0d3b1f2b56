"""Spectra of matrices drawn from a law's random-matrix ensemble (theory against a sample)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curvscope._validate import check_int, check_seed
from curvscope.persistence import savable
from curvscope.rmt._base import SpectralLaw

__all__ = ["SampledSpectrum", "sample_spectrum"]


@savable
@dataclass(frozen=True, eq=False)
class SampledSpectrum:
    """The eigenvalues of one matrix drawn from a law's ensemble.

    Attributes:
        size: n, the matrix size (the asked size rounded up to one the ensemble accepts).
        seed: the seed of the draw.
        eigenvalues: the n eigenvalues, ascending.
    """

    size: int
    seed: int
    eigenvalues: np.ndarray

    @property
    def index(self) -> float:
        """The empirical index: the fraction of negative eigenvalues."""
        return float(np.mean(self.eigenvalues < 0))


def sample_spectrum(law: SpectralLaw, n: int, *, seed: int = 0) -> SampledSpectrum:
    """Draw one ``n x n`` matrix of ``law``'s ensemble and return its spectrum.

    ``n`` is rounded up to the nearest size the ensemble accepts (:meth:`SpectralLaw.ensemble_size`,
    e.g. even for the product-Wishart term of the improved Pennington-Bahri model).

    Example:
        >>> from curvscope.rmt import pennington_bahri
        >>> s = sample_spectrum(pennington_bahri(0.1, 0.5, model="improved"), 9, seed=0)
        >>> s.size, len(s.eigenvalues)
        (10, 10)
    """
    n = law.ensemble_size(check_int("the matrix size n", n, minimum=2, expected="an int >= 2"))
    seed = check_seed(seed)
    matrix = law.sample_matrix(n, generator=np.random.default_rng(seed))
    return SampledSpectrum(size=n, seed=seed, eigenvalues=np.linalg.eigvalsh(matrix))
