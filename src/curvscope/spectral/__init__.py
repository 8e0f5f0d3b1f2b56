"""Spectral algorithms on any symmetric operator (paper 000 §5; spec ``theory.md`` §1.5-1.7).

- :func:`lanczos` — the one Lanczos kernel (probes in lockstep, full reorthogonalisation,
  checkpoint/resume) returning :class:`LanczosResult`;
- :func:`slq` — stochastic Lanczos quadrature returning :class:`SpectralDensity`;
- :func:`hutchinson_trace`, :func:`hutchpp_trace` — :class:`TraceEstimate`;
- :func:`top_eigenpairs` — :class:`EigenResult`, by the thick-restart Lanczos of
  :mod:`curvscope.spectral.thick_restart` (stops on per-eigenvalue error bounds) or SciPy;
- :func:`exact_spectrum` — :class:`ExactSpectrum` for small operators;
- :func:`draw_probes`, :func:`make_generator`, :func:`mean_and_stderr` — the probes and the
  statistics of every randomised estimator.

Counts of products: ``num_matvecs`` (:class:`TraceEstimate`, :class:`EigenResult`, and the
budget argument of the trace estimators) counts matrix-vector products, i.e. columns;
``num_products`` (:class:`LanczosResult`, :class:`SpectralDensity`) counts block products,
one per Lanczos step for all probes together, which is what a data pass costs.
"""

from curvscope.operators.adapter import ScipyOperator, as_operator
from curvscope.spectral.eigen import EigenResult, top_eigenpairs
from curvscope.spectral.exact import ExactSpectrum, exact_spectrum
from curvscope.spectral.lanczos import LanczosResult, lanczos, ritz_pairs
from curvscope.spectral.probes import ProbeKind, draw_probes, make_generator
from curvscope.spectral.slq import Moments, NegativeMass, RitzPair, SpectralDensity, slq
from curvscope.spectral.trace import TraceEstimate, hutchinson_trace, hutchpp_trace, mean_and_stderr

__all__ = [
    # eigenpairs
    "EigenResult",
    # exact
    "ExactSpectrum",
    # lanczos / slq
    "LanczosResult",
    "Moments",
    "NegativeMass",
    # probes
    "ProbeKind",
    "RitzPair",
    # adapters
    "ScipyOperator",
    "SpectralDensity",
    # trace
    "TraceEstimate",
    "as_operator",
    "draw_probes",
    "exact_spectrum",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "make_generator",
    "mean_and_stderr",
    "ritz_pairs",
    "slq",
    "top_eigenpairs",
]
