"""curvscope.experiments: one module per study, each a function ``frozen config -> result``.

- :func:`true_vs_empirical` — paper 000: Empirical vs augmented ("True") curvature spectra at
  a checkpoint's weights, with the Theorem-1 comparison (spec ``theory.md`` §1);
- :func:`split_half_noise` — the Theorem-1 noise scale by the split-half estimator (§1.4(a)).
"""

from curvscope.experiments.config import StudyConfig
from curvscope.experiments.noise import NoiseEstimate, split_half_noise
from curvscope.experiments.registry import (
    STUDIES,
    Claim,
    FigureRef,
    Section,
    Study,
    Table,
    Text,
    get_study,
    register,
)
from curvscope.experiments.true_vs_empirical import (
    MATRICES,
    DataIdentity,
    ObservedExtremes,
    SetSummary,
    Theorem1Comparison,
    Theorem1Forward,
    Theorem1Reverse,
    TrueVsEmpiricalConfig,
    TrueVsEmpiricalResult,
    make_operator,
    summarize_density,
    theorem1_comparison,
    true_vs_empirical,
)

__all__ = [
    "MATRICES",
    "STUDIES",
    "Claim",
    "DataIdentity",
    "FigureRef",
    "NoiseEstimate",
    "ObservedExtremes",
    "Section",
    "SetSummary",
    "Study",
    "StudyConfig",
    "Table",
    "Text",
    "Theorem1Comparison",
    "Theorem1Forward",
    "Theorem1Reverse",
    "TrueVsEmpiricalConfig",
    "TrueVsEmpiricalResult",
    "get_study",
    "make_operator",
    "register",
    "split_half_noise",
    "summarize_density",
    "theorem1_comparison",
    "true_vs_empirical",
]

# Registered studies (each module registers itself on import).
from curvscope.experiments import paper000 as _paper000  # noqa: F401
