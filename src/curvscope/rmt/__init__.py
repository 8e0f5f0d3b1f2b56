"""curvscope.rmt: random-matrix theory of curvature spectra, pure NumPy/SciPy (no torch).

The predictions of papers 000 and 001 as tested functions, in the conventions of
``../shared/spec/theory.md`` (errata implemented in their corrected forms):

* laws: :func:`semicircle`, :func:`marchenko_pastur`, :func:`product_wishart`,
  :func:`pennington_bahri`; discrete measures (:class:`DiscreteMeasure`, :func:`as_law`);
* free additive convolution by subordination: :func:`free_convolution`;
* paper 001: :func:`index`, :func:`critical_energy`, :func:`fit_index_scaling`, curves;
* paper 000 Theorem 1: :func:`spiked_extremes`, :func:`deflated_extremes`;
* the free-independence test: :func:`freeness_test`;
* results save to JSON + NPZ: :func:`save`, :func:`load` (also ``obj.save(path)``), by
  :mod:`curvscope.persistence`, the one persistence of the package.
"""

from curvscope.persistence import load, save
from curvscope.rmt._base import (
    SpectralLaw,
    free_cumulants_from_moments,
    moments_from_free_cumulants,
)
from curvscope.rmt.discrete import DiscreteMeasure, as_law
from curvscope.rmt.free import FreeConvolution, free_convolution, subordination
from curvscope.rmt.freeness import FreenessTest, freeness_test, haar_orthogonal
from curvscope.rmt.laws import MarchenkoPastur, Semicircle, marchenko_pastur, semicircle
from curvscope.rmt.pennington_bahri import (
    MODELS,
    CriticalEnergyCurve,
    IndexCurve,
    PenningtonBahri,
    ProductWishart,
    critical_energy,
    critical_energy_curve,
    index,
    index_curve,
    pennington_bahri,
    product_wishart,
)
from curvscope.rmt.sampling import SampledSpectrum, sample_spectrum
from curvscope.rmt.scaling import IndexScalingFit, fit_index_scaling
from curvscope.rmt.spiked import (
    DeflatedExtremes,
    SpikedExtremes,
    deflated_extremes,
    noise_scale,
    spiked_extremes,
)

__all__ = [  # noqa: RUF022 (grouped by concept, not alphabetically)
    # laws
    "SpectralLaw",
    "Semicircle",
    "MarchenkoPastur",
    "ProductWishart",
    "PenningtonBahri",
    "DiscreteMeasure",
    "semicircle",
    "marchenko_pastur",
    "product_wishart",
    "pennington_bahri",
    "as_law",
    "moments_from_free_cumulants",
    "free_cumulants_from_moments",
    # free convolution
    "FreeConvolution",
    "free_convolution",
    "subordination",
    # paper 001: index and critical energy
    "MODELS",
    "index",
    "critical_energy",
    "IndexCurve",
    "index_curve",
    "CriticalEnergyCurve",
    "critical_energy_curve",
    "IndexScalingFit",
    "fit_index_scaling",
    # theory against a sampled matrix
    "SampledSpectrum",
    "sample_spectrum",
    # paper 000: spiked model
    "SpikedExtremes",
    "DeflatedExtremes",
    "spiked_extremes",
    "deflated_extremes",
    "noise_scale",
    # freeness
    "FreenessTest",
    "freeness_test",
    "haar_orthogonal",
    # results on disk
    "save",
    "load",
]
